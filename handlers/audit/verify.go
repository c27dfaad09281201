package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// pageSize bounds every query that walks the log.
const pageSize = 500

// Problems Verify reports.
const (
	ProblemEdited        = "edited"         // a row's contents do not match its hash
	ProblemBadLink       = "bad_link"       // prev_hash is not the previous event's hash
	ProblemMissing       = "missing"        // a seq is missing in the middle
	ProblemTruncated     = "truncated"      // events after the last row are missing (head is ahead)
	ProblemBeyondHead    = "beyond_head"    // rows exist past the head (appended outside Record)
	ProblemNoHead        = "no_head"        // events exist but the head row is gone
	ProblemBadCheckpoint = "bad_checkpoint" // the checkpoint is not attested by an audit.pruned event
	ProblemMalformed     = "malformed"      // a row cannot be read (bad details JSON, hash size)
	ProblemBadSeal       = "bad_seal"       // a sealed log's event lacks a valid keyed seal (forged)
)

// Report is the outcome of Verify.
type Report struct {
	Tenant string `json:"tenant"`
	OK     bool   `json:"ok"`
	// Events is the number of events checked (from the checkpoint on).
	Events int64 `json:"events"`
	// FirstSeq and LastSeq are the seqs of the first and last event checked.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// CheckpointSeq is where verification started (0: the genesis).
	CheckpointSeq int64 `json:"checkpoint_seq"`
	// HeadSeq and HeadHash are the recorded chain head. An auditor who keeps
	// a copy of them detects a later rewrite of the whole chain.
	HeadSeq  int64  `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	// BadSeq is the first seq found wrong, Problem its class and Reason a
	// sentence, when OK is false.
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Problem string `json:"problem,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func (r *Report) fail(seq int64, problem, format string, args ...any) {
	r.OK, r.BadSeq, r.Problem, r.Reason = false, seq, problem, fmt.Sprintf(format, args...)
}

// String is the one-line summary the CLI prints.
func (r Report) String() string {
	if r.OK {
		return fmt.Sprintf("%s: OK, %d events (seq %d..%d, checkpoint %d), head %d %s", r.Tenant, r.Events, r.FirstSeq, r.LastSeq, r.CheckpointSeq, r.HeadSeq, r.HeadHash)
	}
	return fmt.Sprintf("%s: TAMPERED at seq %d (%s): %s", r.Tenant, r.BadSeq, r.Problem, r.Reason)
}

const eventColumns = `seq, at, actor_type, actor_id, action, target, ip, user_agent, request_id, details, prev_hash, hash, seal`

// scanRows reads rows selected with eventColumns.
func scanRows(tenant string, rows interface {
	Len() int
	Scan(int, ...any) error
}) ([]row, error) {
	out := make([]row, rows.Len())
	for i := range out {
		r := &out[i]
		r.TenantID = tenant
		if err := rows.Scan(i, &r.Seq, &r.AtMS, &r.ActorType, &r.ActorID, &r.Action, &r.Target, &r.IP, &r.UserAgent,
			&r.RequestID, &r.Detail, &r.PrevHash, &r.Hash, &r.Seal); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeDetails parses the stored details into text details and
// structured values and checks that they are in the canonical stored form,
// so that two texts with one meaning (reordered keys, duplicate keys,
// spacing, another spelling of a number) cannot both verify.
func decodeDetails(s string) (map[string]string, map[string]any, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, nil, err
	}
	var d map[string]string
	var vals map[string]any
	for k, r := range raw {
		v, err := decodeValue(r)
		if err != nil {
			return nil, nil, err
		}
		d, vals = putDetail(d, vals, k, v)
	}
	if detailsJSON(d, vals) != s {
		return nil, nil, fmt.Errorf("details are not in canonical form")
	}
	return d, vals, nil
}

// checkpoint reads where verification starts.
func (l *Log) checkpoint(ctx context.Context, tenant string) (int64, []byte, error) {
	rows, err := l.sql.Query(ctx, `SELECT seq, hash FROM audit_checkpoints WHERE tenant_id = ?`, tenant)
	if err != nil {
		return 0, nil, err
	}
	if rows.Len() == 0 {
		return 0, genesis, nil
	}
	var seq int64
	var hash []byte
	err = rows.Scan(0, &seq, &hash)
	return seq, hash, err
}

// Verify walks the tenant's chain from its checkpoint in seq order, page by
// page, recomputing every hash. It returns an error only when the store
// cannot be read; tampering is reported in the Report.
func (l *Log) Verify(ctx context.Context, tenant string) (Report, error) {
	rep := Report{Tenant: tenant, OK: true}
	cpSeq, cpHash, err := l.checkpoint(ctx, tenant)
	if err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	headSeq, headHash, haveHead, err := l.head(ctx, tenant)
	if err != nil {
		return rep, fmt.Errorf("audit: verify: %w", err)
	}
	rep.CheckpointSeq, rep.HeadSeq, rep.HeadHash = cpSeq, headSeq, hex.EncodeToString(headHash)

	expect, prev := cpSeq+1, cpHash
	attested := cpSeq == 0
	for {
		rows, err := l.sql.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
			tenant, expect-1, pageSize)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		page, err := scanRows(tenant, rows)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		for i := range page {
			r := &page[i]
			if !haveHead {
				rep.fail(r.Seq, ProblemNoHead, "events exist but the chain head is missing")
				return rep, nil
			}
			if r.Seq > headSeq {
				rep.fail(r.Seq, ProblemBeyondHead, "event %d is past the recorded head %d (inserted outside the log)", r.Seq, headSeq)
				return rep, nil
			}
			if r.Seq != expect {
				rep.fail(expect, ProblemMissing, "events %d..%d are missing (deleted)", expect, r.Seq-1)
				return rep, nil
			}
			if !bytes.Equal(r.PrevHash, prev) {
				rep.fail(r.Seq, ProblemBadLink, "prev_hash of event %d is not the hash of event %d (deleted, reordered or replaced)", r.Seq, r.Seq-1)
				return rep, nil
			}
			d, vals, err := decodeDetails(r.Detail)
			if err != nil {
				rep.fail(r.Seq, ProblemMalformed, "event %d has malformed details: %v", r.Seq, err)
				return rep, nil
			}
			r.Details, r.Values = d, vals
			sum := chainHash(prev, r.Seq, r.AtMS, &r.Event)
			if !bytes.Equal(sum, r.Hash) {
				rep.fail(r.Seq, ProblemEdited, "event %d does not match its hash (edited or moved)", r.Seq)
				return rep, nil
			}
			if l.keys != nil {
				want, err := l.seal(ctx, tenant, r.Hash)
				if err != nil {
					return rep, fmt.Errorf("audit: verify: %w", err)
				}
				if !hmac.Equal(want, r.Seal) {
					rep.fail(r.Seq, ProblemBadSeal, "event %d has no valid seal: it was not written by this deployment's audit log (forged, or the chain rewritten)", r.Seq)
					return rep, nil
				}
			}
			if !attested && r.Action == ActionPruned && d["through_seq"] == strconv.FormatInt(cpSeq, 10) && d["through_hash"] == hex.EncodeToString(cpHash) {
				attested = true
			}
			if rep.Events == 0 {
				rep.FirstSeq = r.Seq
			}
			rep.Events++
			rep.LastSeq = r.Seq
			prev, expect = sum, r.Seq+1
		}
		if len(page) < pageSize {
			break
		}
	}
	if expect-1 < headSeq {
		rep.fail(expect, ProblemTruncated, "the head is at %d but the log ends at %d: events %d..%d are missing (deleted)", headSeq, expect-1, expect, headSeq)
		return rep, nil
	}
	if haveHead && !bytes.Equal(prev, headHash) {
		rep.fail(headSeq, ProblemBadLink, "the last event's hash does not match the recorded head")
		return rep, nil
	}
	if !attested {
		rep.fail(cpSeq, ProblemBadCheckpoint, "the checkpoint at %d is not attested by an %s event (events deleted outside retention)", cpSeq, ActionPruned)
		return rep, nil
	}
	return rep, nil
}

// Head returns the tenant's chain head: the seq and hex hash of the newest
// event. Auditors may keep heads to detect a later rewrite of the chain.
func (l *Log) Head(ctx context.Context, tenant string) (int64, string, error) {
	seq, hash, _, err := l.head(ctx, tenant)
	return seq, hex.EncodeToString(hash), err
}

// Tenants lists, in order and a page at a time, the tenants that have any
// audit data, starting after the tenant id after ("" for the first page).
func (l *Log) Tenants(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 || limit > pageSize {
		limit = pageSize
	}
	// tenant-lookup: enumerating tenants is the one query not scoped to one.
	rows, err := l.sql.Query(ctx, `SELECT tenant_id FROM audit_heads WHERE tenant_id > ?
		UNION SELECT DISTINCT tenant_id FROM audit_events WHERE tenant_id > ?
		UNION SELECT tenant_id FROM audit_checkpoints WHERE tenant_id > ?
		ORDER BY 1 LIMIT ?`, after, after, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]string, rows.Len())
	for i := range out {
		if err := rows.Scan(i, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// VerifyAll verifies one tenant's chain, or every tenant's that has audit
// data when tenant is "", printing each Report's summary line to out. It
// reports whether every chain verified.
func (l *Log) VerifyAll(ctx context.Context, tenant string, out io.Writer) (bool, error) {
	ok := true
	check := func(t string) error {
		rep, err := l.Verify(ctx, t)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, rep.String())
		ok = ok && rep.OK
		return nil
	}
	if tenant != "" {
		return ok, check(tenant)
	}
	after, n := "", 0
	for {
		ts, err := l.Tenants(ctx, after, pageSize)
		if err != nil {
			return false, err
		}
		for _, t := range ts {
			if err := check(t); err != nil {
				return false, err
			}
			after = t
			n++
		}
		if len(ts) < pageSize {
			break
		}
	}
	if n == 0 {
		fmt.Fprintln(out, "no audit data")
	}
	return ok, nil
}
