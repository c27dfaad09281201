// Package audit is the tenant's tamper-evident audit log: who did what, to
// what, when and from where. Each tenant's events form a SHA-256 hash chain,
// so an edited, deleted or reordered event is detected by Verify.
//
// The encoding that is hashed, the tables and what is and is not detected
// are specified in docs/audit.md.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// Actor types.
const (
	ActorUser   = "user"
	ActorAPIKey = "api_key"
	// ActorContact is a widget visitor, by the contact id their visitor
	// token names.
	ActorContact   = "contact"
	ActorSystem    = "system"
	ActorAnonymous = "anonymous"
)

// Actions this package reads or writes itself. Other actions are free-form
// dotted names chosen by the caller.
const (
	ActionLoginSucceeded   = "auth.login.succeeded"
	ActionLoginFailed      = "auth.login.failed"
	ActionLoginBurst       = "security.login_burst"
	ActionNewLocation      = "security.new_location"
	ActionPruned           = "audit.pruned"
	ActionRetentionChanged = "audit.retention.changed"
	ActionExported         = "audit.exported"
)

// Event is one audited action.
type Event struct {
	TenantID  string
	ActorType string // ActorUser, ActorAPIKey, ActorContact, ActorSystem, ActorAnonymous
	ActorID   string
	// Action names what happened, dotted, e.g. "auth.login.succeeded",
	// "member.role.changed", "api_key.revoked", "conversation.read".
	Action    string
	Target    string // e.g. "user:u_…", "api_key:key_…", "note:n_…"
	IP        string
	UserAgent string
	RequestID string
	// Details are facts about the action as text ("reason": "bad_password").
	Details map[string]string
	// Values are facts that are not text: objects, arrays, integers,
	// booleans, null (a settings change's before and after). They share
	// the stored and exported details object with Details; a key is in one
	// of the two only. A value that encodes as a JSON string is kept as a
	// Detail.
	Values map[string]any
	At     time.Time // set by Record
}

// Limits on what one event may hold. Fields a client controls (user agent)
// are cut to size; fields the application chooses are refused when too big,
// since that is a bug, not an attack.
const (
	maxField     = 512
	maxDetails   = 32
	maxDetailLen = 4096
	// appendAttempts bounds Record's optimistic retries under contention.
	appendAttempts = 64
)

// ErrInvalidEvent is returned for an event that cannot be recorded as
// given (no tenant or action, unknown actor type, oversized details).
var ErrInvalidEvent = errors.New("audit: invalid event")

// Log records and checks a tenant's events.
type Log struct {
	sql    storage.SQL
	clock  storage.Clock
	policy Policy
	keys   storage.Keys // nil: unsealed (see Sealed)
}

// New returns the audit log over the platform's SQL store.
func New(sql storage.SQL, clock storage.Clock) *Log {
	if clock == nil {
		clock = storage.SystemClock{}
	}
	return &Log{sql: sql, clock: clock}
}

// Sealed returns the log with keyed seals: Record stores, with every event,
// an HMAC of its tenant and chain hash under a key only the home's key
// custodian holds, and Verify requires a valid seal on every event. The
// application always uses a sealed log; an unsealed one serves tests of the
// chain alone.
func (l *Log) Sealed(keys storage.Keys) *Log {
	c := *l
	c.keys = keys
	return &c
}

// sealPurpose names the custodian's MAC key for audit seals.
const sealPurpose = "audit-seal"

// seal is the keyed seal of an event's chain hash, or nil for an unsealed log.
func (l *Log) seal(ctx context.Context, tenant string, hash []byte) ([]byte, error) {
	if l.keys == nil {
		return nil, nil
	}
	msg := make([]byte, 0, len(tenant)+1+len(hash))
	msg = append(append(append(msg, tenant...), 0), hash...)
	return l.keys.MAC(ctx, sealPurpose, msg)
}

// Record appends e to its tenant's chain. It fails rather than drop an
// event: an action whose audit record cannot be written must not be
// reported as done.
func (l *Log) Record(ctx context.Context, e Event) error {
	_, _, err := l.append(ctx, e, nil)
	return err
}

// RecordBatch appends e in the same atomic batch as stmts, so that a change
// and its audit record take effect together or not at all (e.g. a role
// change). It returns the results of stmts. The batch may be sent more than
// once when another writer wins the race for the next seq (the failed
// attempts roll back whole); a statement that fails on its own with a
// constraint violation makes RecordBatch fail with storage.ErrConflict after
// the bounded retries.
func (l *Log) RecordBatch(ctx context.Context, e Event, stmts []storage.Stmt) ([]storage.Result, error) {
	_, res, err := l.append(ctx, e, stmts)
	return res, err
}

// row is an event as stored.
type row struct {
	Event
	Seq      int64
	AtMS     int64
	Detail   string // the stored details JSON
	PrevHash []byte
	Hash     []byte
	Seal     []byte // nil when unsealed
}

// normalize validates e and brings it to the exact form it is stored and
// hashed in.
func normalize(e Event) (Event, error) {
	clean := func(s string, max int) string {
		s = strings.ToValidUTF8(s, "\uFFFD")
		if len(s) > max {
			s = s[:max]
			for !utf8.ValidString(s) {
				s = s[:len(s)-1]
			}
		}
		return s
	}
	if e.TenantID == "" || e.Action == "" {
		return e, fmt.Errorf("%w: tenant and action are required", ErrInvalidEvent)
	}
	switch e.ActorType {
	case ActorUser, ActorAPIKey, ActorContact, ActorSystem, ActorAnonymous:
	case "":
		return e, fmt.Errorf("%w: actor type is required", ErrInvalidEvent)
	default:
		return e, fmt.Errorf("%w: unknown actor type %q", ErrInvalidEvent, e.ActorType)
	}
	for _, s := range []string{e.TenantID, e.ActorID, e.Action, e.Target} {
		if len(s) > maxField || !utf8.ValidString(s) {
			return e, fmt.Errorf("%w: tenant, actor, action and target must be valid UTF-8 of at most %d bytes", ErrInvalidEvent, maxField)
		}
	}
	e.IP = clean(e.IP, 64)
	e.UserAgent = clean(e.UserAgent, maxField)
	e.RequestID = clean(e.RequestID, 128)
	if len(e.Details)+len(e.Values) > maxDetails {
		return e, fmt.Errorf("%w: more than %d details", ErrInvalidEvent, maxDetails)
	}
	var d map[string]string
	if e.Details != nil {
		d = make(map[string]string, len(e.Details))
		for k, v := range e.Details {
			if len(k) > 64 || len(v) > maxDetailLen || !utf8.ValidString(k) {
				return e, fmt.Errorf("%w: detail %.64q too large or not UTF-8", ErrInvalidEvent, k)
			}
			d[k] = clean(v, maxDetailLen)
		}
	}
	var vals map[string]any
	for k, v := range e.Values {
		if len(k) > 64 || !utf8.ValidString(k) {
			return e, fmt.Errorf("%w: detail %.64q too large or not UTF-8", ErrInvalidEvent, k)
		}
		if _, dup := d[k]; dup {
			return e, fmt.Errorf("%w: detail %.64q is both in Details and in Values", ErrInvalidEvent, k)
		}
		nv, err := normalizeValue(v)
		if err != nil {
			return e, fmt.Errorf("%w: detail %.64q: %v", ErrInvalidEvent, k, err)
		}
		d, vals = putDetail(d, vals, k, nv)
	}
	e.Details, e.Values = d, vals
	return e, nil
}

// putDetail files a normalized detail: a string among the text details
// (hashed as before structured values existed), anything else among the
// structured values. Recording and verifying sort details the same way.
func putDetail(d map[string]string, vals map[string]any, k string, v any) (map[string]string, map[string]any) {
	if str, ok := v.(string); ok {
		if d == nil {
			d = map[string]string{}
		}
		d[k] = str
		return d, vals
	}
	if vals == nil {
		vals = map[string]any{}
	}
	vals[k] = v
	return d, vals
}

// normalizeValue brings a structured detail to the one form it is stored
// and hashed in: what encoding/json makes of it, read back as
// map[string]any, []any, string, bool, nil and json.Number, with every
// number an integer in int64 range in its shortest decimal spelling (so
// any JSON reader can re-verify it exactly).
func normalizeValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > maxDetailLen {
		return nil, fmt.Errorf("more than %d bytes", maxDetailLen)
	}
	return decodeValue(b)
}

// decodeValue reads one stored JSON value in the normal form (see
// normalizeValue).
func decodeValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return integers(out)
}

func integers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("number %.32s is not an integer in int64 range", x)
		}
		return json.Number(strconv.FormatInt(n, 10)), nil
	case []any:
		for i := range x {
			var err error
			if x[i], err = integers(x[i]); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k := range x {
			var err error
			if x[k], err = integers(x[k]); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// detailsJSON is the stored form of details and values: encoding/json of
// the one object holding both, which sorts keys and escapes
// deterministically. Empty details are "{}".
func detailsJSON(d map[string]string, vals map[string]any) string {
	if len(d)+len(vals) == 0 {
		return "{}"
	}
	var b []byte
	var err error
	if len(vals) == 0 {
		b, err = json.Marshal(d)
	} else {
		all := make(map[string]any, len(d)+len(vals))
		for k, v := range d {
			all[k] = v
		}
		for k, v := range vals {
			all[k] = v
		}
		b, err = json.Marshal(all)
	}
	if err != nil { // cannot happen for normalized details
		panic(err)
	}
	return string(b)
}

// canonical is the byte string that is hashed for an event (docs/audit.md,
// "Canonical encoding"). An event whose details are all text is encoded as
// version 1:
//
//	"pommy-audit-v1\x00"
//	u64be(seq) || u64be(at as Unix ms, two's complement)
//	for tenant_id, actor_type, actor_id, action, target, ip, user_agent,
//	request_id: u32be(len) || UTF-8 bytes
//	u32be(number of details) || for each detail in byte order of its key:
//	u32be(len key) || key || u32be(len value) || value
//
// An event with any structured value is version 2: "pommy-audit-v2\x00",
// the same fields, then u32be(number of details) and for each detail in
// byte order of its key: u32be(len key) || key || value(v), where value is
// the typed encoding of a JSON value (see encodeValue). Which version an
// event has follows from its stored details alone, so the two cannot be
// confused: changing a value's type changes the hash.
func canonical(seq, atMS int64, e *Event) []byte {
	b := make([]byte, 0, 256)
	if len(e.Values) == 0 {
		b = append(b, "pommy-audit-v1\x00"...)
	} else {
		b = append(b, "pommy-audit-v2\x00"...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = binary.BigEndian.AppendUint64(b, uint64(atMS))
	for _, s := range []string{e.TenantID, e.ActorType, e.ActorID, e.Action, e.Target, e.IP, e.UserAgent, e.RequestID} {
		b = appendStr(b, s)
	}
	keys := make([]string, 0, len(e.Details)+len(e.Values))
	for k := range e.Details {
		keys = append(keys, k)
	}
	for k := range e.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		if v, ok := e.Values[k]; ok {
			b = encodeValue(b, v)
		} else if len(e.Values) == 0 {
			b = appendStr(b, e.Details[k])
		} else {
			b = encodeValue(b, e.Details[k])
		}
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// encodeValue is the typed encoding of a normalized JSON value in version
// 2: one tag byte, then
//
//	's' str(text)       'n' str(decimal integer)    't' / 'f'    'z' (null)
//	'a' u32be(n) n × value                      'o' u32be(n) n × (str(key) value), keys in byte order
func encodeValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'z')
	case bool:
		if x {
			return append(b, 't')
		}
		return append(b, 'f')
	case string:
		return appendStr(append(b, 's'), x)
	case json.Number:
		return appendStr(append(b, 'n'), string(x))
	case []any:
		b = binary.BigEndian.AppendUint32(append(b, 'a'), uint32(len(x)))
		for _, e := range x {
			b = encodeValue(b, e)
		}
		return b
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = binary.BigEndian.AppendUint32(append(b, 'o'), uint32(len(keys)))
		for _, k := range keys {
			b = encodeValue(appendStr(b, k), x[k])
		}
		return b
	}
	panic(fmt.Sprintf("audit: value of type %T is not normalized", v)) // normalize makes only the types above
}

// chainHash is SHA-256(prev || canonical(seq, at, e)).
func chainHash(prev []byte, seq, atMS int64, e *Event) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(canonical(seq, atMS, e))
	return h.Sum(nil)
}

// genesis is the prev_hash of every tenant's first event.
var genesis = make([]byte, sha256.Size)

// head reads the tenant's chain head: the seq and hash of the newest event
// ever appended (0 and the genesis hash before the first).
func (l *Log) head(ctx context.Context, tenant string) (int64, []byte, bool, error) {
	rows, err := l.sql.Query(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = ?`, tenant)
	if err != nil {
		return 0, nil, false, err
	}
	if rows.Len() == 0 {
		return 0, genesis, false, nil
	}
	var seq int64
	var hash []byte
	if err := rows.Scan(0, &seq, &hash); err != nil {
		return 0, nil, false, err
	}
	return seq, hash, true, nil
}

// append writes e as the tenant's next event, with extra statements in the
// same batch. There is no transaction: it reads the head, then sends one
// batch that inserts seq+1 (failing on the primary key if another writer
// took it) and moves the head. On a conflict it rereads and tries again.
func (l *Log) append(ctx context.Context, e Event, extra []storage.Stmt) (int64, []storage.Result, error) {
	e, err := normalize(e)
	if err != nil {
		return 0, nil, err
	}
	details := detailsJSON(e.Details, e.Values)
	var lastErr error
	lastSeq := int64(-1)
	for attempt := 0; attempt < appendAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return 0, nil, err
			}
		}
		prevSeq, prevHash, _, err := l.head(ctx, e.TenantID)
		if err != nil {
			return 0, nil, fmt.Errorf("audit: record %s: %w", e.Action, err)
		}
		if prevSeq == lastSeq {
			// The last attempt conflicted, yet no one advanced the head: the
			// conflict was not a lost race for the seq (an extra statement
			// failed, or the tables disagree). Retrying cannot help.
			return 0, nil, fmt.Errorf("audit: record %s: %w", e.Action, lastErr)
		}
		lastSeq = prevSeq
		seq := prevSeq + 1
		atMS := l.clock.Now().UnixMilli()
		hash := chainHash(prevHash, seq, atMS, &e)
		seal, err := l.seal(ctx, e.TenantID, hash)
		if err != nil {
			return 0, nil, fmt.Errorf("audit: record %s: sealing: %w", e.Action, err)
		}
		stmts := make([]storage.Stmt, 0, 2+len(extra))
		stmts = append(stmts,
			storage.Stmt{Query: `INSERT INTO audit_events (tenant_id, seq, at, actor_type, actor_id, action, target, ip, user_agent, request_id, details, prev_hash, hash, seal)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				Args: []any{e.TenantID, seq, atMS, e.ActorType, e.ActorID, e.Action, e.Target, e.IP, e.UserAgent, e.RequestID, details, prevHash, hash, seal}},
			storage.Stmt{Query: `INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
				WHERE audit_heads.seq = excluded.seq - 1`,
				Args: []any{e.TenantID, seq, hash}},
		)
		stmts = append(stmts, extra...)
		res, err := l.sql.Batch(ctx, stmts)
		if errors.Is(err, storage.ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return 0, nil, fmt.Errorf("audit: record %s: %w", e.Action, err)
		}
		if res[1].RowsAffected != 1 {
			// The event went in but the head did not move: the head and the
			// events disagree, which only tampering can cause.
			return seq, res[2:], fmt.Errorf("audit: record %s: chain head of tenant %s did not advance to %d (audit tables tampered?)", e.Action, e.TenantID, seq)
		}
		return seq, res[2:], nil
	}
	return 0, nil, fmt.Errorf("audit: record %s: gave up after %d attempts: %w", e.Action, appendAttempts, lastErr)
}

// backoff sleeps a short random time growing with attempt, so that writers
// racing for the same seq spread out.
func backoff(ctx context.Context, attempt int) error {
	max := time.Duration(min(attempt, 20)) * 2 * time.Millisecond
	t := time.NewTimer(time.Duration(rand.Int64N(int64(max)) + 1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PurgeTenantStmts are the statements that delete all of a tenant's audit
// data, for the tenant deletion batch. Only tenant deletion may use them:
// they end the tenant's chain for good.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	var out []storage.Stmt
	for _, t := range []string{"audit_events", "audit_heads", "audit_checkpoints", "audit_settings", "security_notices"} {
		out = append(out, storage.Stmt{Query: `DELETE FROM ` + t + ` WHERE tenant_id = ?`, Args: []any{tenant}})
	}
	return out
}
