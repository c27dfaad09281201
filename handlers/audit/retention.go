package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"pommy.ai/edge/storage"
)

const (
	// MinRetentionDays is the floor the issue sets: events are kept at least
	// this long, whatever a tenant asks.
	MinRetentionDays = 90
	// DefaultRetentionDays applies until a tenant raises it: a year covers
	// an annual audit period (SOC 2 type II, PCI DSS 10.5.1 keep one year).
	DefaultRetentionDays = 365
	// MaxRetentionDays caps the setting at ten years.
	MaxRetentionDays = 3650
)

// Errors of SetRetention.
var (
	ErrRetentionTooShort = errors.New("audit: retention must be at least 90 days")
	ErrRetentionTooLong  = errors.New("audit: retention must be at most 3650 days")
	ErrRetentionLowered  = errors.New("audit: retention can only be raised")
)

// Retention returns the tenant's retention in days.
func (l *Log) Retention(ctx context.Context, tenant string) (int, error) {
	rows, err := l.sql.Query(ctx, `SELECT retention_days FROM audit_settings WHERE tenant_id = ?`, tenant)
	if err != nil {
		return 0, err
	}
	if rows.Len() == 0 {
		return DefaultRetentionDays, nil
	}
	var d int
	if err := rows.Scan(0, &d); err != nil {
		return 0, err
	}
	return max(d, MinRetentionDays), nil
}

// SetRetention sets the tenant's retention to days. It refuses less than
// MinRetentionDays and any value below the current one (the default counts
// as current): retention is configurable upward only. by names who made the
// change (actor, IP, user agent, request id); the change is recorded as
// "audit.retention.changed" in the same batch as the setting.
func (l *Log) SetRetention(ctx context.Context, tenant string, days int, by Event) error {
	switch {
	case days < MinRetentionDays:
		return ErrRetentionTooShort
	case days > MaxRetentionDays:
		return ErrRetentionTooLong
	}
	cur, err := l.Retention(ctx, tenant)
	if err != nil {
		return err
	}
	if days < cur {
		return fmt.Errorf("%w (now %d days, asked %d)", ErrRetentionLowered, cur, days)
	}
	if days == cur {
		return nil
	}
	by.TenantID, by.Action, by.Target = tenant, ActionRetentionChanged, "audit_settings"
	by.Details = map[string]string{"from_days": strconv.Itoa(cur), "to_days": strconv.Itoa(days)}
	// The insert path (no row yet) is guarded in Go by the check above
	// against the default; the update path is conditional, so a concurrent
	// raise cannot be undone.
	res, err := l.RecordBatch(ctx, by, []storage.Stmt{{
		Query: `INSERT INTO audit_settings (tenant_id, retention_days, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET retention_days = excluded.retention_days, updated_at = excluded.updated_at
			WHERE excluded.retention_days >= audit_settings.retention_days`,
		Args: []any{tenant, days, l.clock.Now().UnixMilli()},
	}})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		// A concurrent change raised it above days between our read and
		// write; the setting stands, but the event just recorded claims a
		// change that did not happen. Record the correction.
		now, _ := l.Retention(ctx, tenant)
		by.Action = "audit.retention.change_refused"
		by.Details = map[string]string{"asked_days": strconv.Itoa(days), "kept_days": strconv.Itoa(now)}
		if rerr := l.Record(ctx, by); rerr != nil {
			return rerr
		}
		return fmt.Errorf("%w (now %d days, asked %d)", ErrRetentionLowered, now, days)
	}
	return nil
}

// PruneResult says what one Prune did.
type PruneResult struct {
	// ThroughSeq is the checkpoint after the prune (0: nothing ever pruned).
	ThroughSeq int64
	// Deleted is the number of rows deleted in this call.
	Deleted int64
	// Done is false when the deletion budget ran out; call Prune again.
	Done bool
}

// pruneDeleteBudget bounds the rows one Prune call deletes.
const pruneDeleteBudget = 20 * pageSize

// Prune deletes the tenant's events older than its retention (never less
// than MinRetentionDays before now), in bounded batches. So that the chain
// still verifies, it first records an "audit.pruned" event naming the seq
// and hash of the newest event to go, then moves the checkpoint there, then
// deletes. A failure at any step leaves a state that verifies, and the next
// Prune finishes the deletion.
func (l *Log) Prune(ctx context.Context, tenant string, now time.Time) (PruneResult, error) {
	days, err := l.Retention(ctx, tenant)
	if err != nil {
		return PruneResult{}, err
	}
	cutoff := now.Add(-time.Duration(max(days, MinRetentionDays)) * 24 * time.Hour).UnixMilli()
	cpSeq, _, err := l.checkpoint(ctx, tenant)
	if err != nil {
		return PruneResult{}, err
	}
	// Read the head first: events appended after this read are never
	// pruned by this call.
	headSeq, _, _, err := l.head(ctx, tenant)
	if err != nil {
		return PruneResult{}, err
	}
	// The newest event to prune is the one before the oldest event that is
	// still within retention, so that no event younger than the cutoff goes
	// even when clocks made `at` not quite monotonic along seq.
	rows, err := l.sql.Query(ctx, `SELECT MIN(seq) FROM audit_events WHERE tenant_id = ? AND at >= ? AND seq > ? AND seq <= ?`, tenant, cutoff, cpSeq, headSeq)
	if err != nil {
		return PruneResult{}, err
	}
	var keep *int64
	if err := rows.Scan(0, &keep); err != nil {
		return PruneResult{}, err
	}
	var through int64
	if keep != nil {
		through = *keep - 1
	} else {
		// Nothing is young enough to keep: prune through the head. The
		// audit.pruned event recorded below stays and carries the chain.
		through = headSeq
	}
	if through > cpSeq {
		rows, err := l.sql.Query(ctx, `SELECT hash FROM audit_events WHERE tenant_id = ? AND seq = ?`, tenant, through)
		if err != nil {
			return PruneResult{}, err
		}
		if rows.Len() != 1 {
			return PruneResult{}, fmt.Errorf("audit: prune %s: event %d is missing; run verify", tenant, through)
		}
		var hash []byte
		if err := rows.Scan(0, &hash); err != nil {
			return PruneResult{}, err
		}
		if err := l.Record(ctx, Event{
			TenantID: tenant, ActorType: ActorSystem, Action: ActionPruned, Target: "audit_events",
			Details: map[string]string{
				"through_seq": strconv.FormatInt(through, 10), "through_hash": hex.EncodeToString(hash),
				"retention_days": strconv.Itoa(days),
			},
		}); err != nil {
			return PruneResult{}, err
		}
		if _, err := l.sql.Exec(ctx, `INSERT INTO audit_checkpoints (tenant_id, seq, hash, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, at = excluded.at
			WHERE excluded.seq > audit_checkpoints.seq`, tenant, through, hash, now.UnixMilli()); err != nil {
			return PruneResult{}, err
		}
		cpSeq = through
	}
	// Delete everything at or before the checkpoint, a page at a time
	// (also what an interrupted earlier Prune left behind).
	res := PruneResult{ThroughSeq: cpSeq}
	for res.Deleted < pruneDeleteBudget {
		r, err := l.sql.Exec(ctx, `DELETE FROM audit_events WHERE tenant_id = ? AND seq IN
			(SELECT seq FROM audit_events WHERE tenant_id = ? AND seq <= ? ORDER BY seq LIMIT ?)`, tenant, tenant, cpSeq, pageSize)
		if err != nil {
			return res, err
		}
		res.Deleted += r.RowsAffected
		if r.RowsAffected < pageSize {
			res.Done = true
			return res, nil
		}
	}
	return res, nil
}

// PruneAll prunes every tenant that has audit data, for the scheduled work.
// It stops early, without error, when ctx ends; the next run continues.
func (l *Log) PruneAll(ctx context.Context, now time.Time) error {
	after := ""
	for {
		ts, err := l.Tenants(ctx, after, pageSize)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if ctx.Err() != nil {
				return nil
			}
			if _, err := l.Prune(ctx, t, now); err != nil {
				return fmt.Errorf("audit: prune %s: %w", t, err)
			}
			after = t
		}
		if len(ts) < pageSize {
			return nil
		}
	}
}
