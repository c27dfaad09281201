package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"pommy.ai/edge/storage"
)

// Policy tunes login anomaly detection. Zero fields take the defaults.
type Policy struct {
	// Window is the span failures are counted over, and the period within
	// which one burst raises one notice (default 15 minutes).
	Window time.Duration
	// AccountFailures failed logins for one account (the login event's
	// Target) within Window raise a burst (default 5).
	AccountFailures int
	// IPFailures failed logins from one IP within Window, over all
	// accounts, raise a burst (default 20).
	IPFailures int
}

func (p Policy) withDefaults() Policy {
	if p.Window <= 0 {
		p.Window = 15 * time.Minute
	}
	if p.AccountFailures <= 0 {
		p.AccountFailures = 5
	}
	if p.IPFailures <= 0 {
		p.IPFailures = 20
	}
	return p
}

// SetPolicy replaces the anomaly detection policy (before use; not safe
// concurrently with CheckLogin).
func (l *Log) SetPolicy(p Policy) { l.policy = p }

// Notice kinds.
const (
	NoticeLoginBurst  = "login_burst"
	NoticeNewLocation = "new_location"
)

// Notice is a security notice for the tenant's owners.
type Notice struct {
	ID      string     `json:"id"`
	At      time.Time  `json:"at"`
	Kind    string     `json:"kind"`
	Message string     `json:"message"`
	ReadAt  *time.Time `json:"read_at,omitempty"`
}

// RecordLogin records a login event (action ActionLoginSucceeded or
// ActionLoginFailed) and then runs CheckLogin on it. It returns the
// security events raised.
func (l *Log) RecordLogin(ctx context.Context, e Event) ([]Event, error) {
	if e.Action != ActionLoginSucceeded && e.Action != ActionLoginFailed {
		return nil, fmt.Errorf("%w: RecordLogin takes %s or %s, not %q", ErrInvalidEvent, ActionLoginSucceeded, ActionLoginFailed, e.Action)
	}
	if err := l.Record(ctx, e); err != nil {
		return nil, err
	}
	return l.CheckLogin(ctx, e)
}

// CheckLogin looks for anomalies around a login event that has just been
// recorded (with Record), and raises each one found as a security event in
// the audit log plus a notice to the tenant's owners:
//
//   - security.login_burst: at least Policy.AccountFailures failed logins
//     for e.Target, or Policy.IPFailures from e.IP, within Policy.Window;
//     raised once per account or IP per window.
//   - security.new_location: a successful login by e.ActorID from an IP, or
//     a country (e.Details["country"], e.g. from the edge's CF-IPCountry),
//     not seen in that person's successful logins still in the log. A
//     person's first login raises nothing (there is no baseline).
//
// The queries are bounded by LIMIT and served by the audit indexes. It
// returns the security events raised.
func (l *Log) CheckLogin(ctx context.Context, e Event) ([]Event, error) {
	p := l.policy.withDefaults()
	now := l.clock.Now()
	since := now.Add(-p.Window).UnixMilli()
	bucket := strconv.FormatInt(now.UnixMilli()/p.Window.Milliseconds(), 10)
	var raised []Event
	raise := func(kind, dedupe, message string, ev Event) error {
		ok, err := l.raise(ctx, e.TenantID, kind, dedupe, message, now, ev)
		if ok {
			raised = append(raised, ev)
		}
		return err
	}
	sec := func(action, target string, details map[string]string) Event {
		return Event{TenantID: e.TenantID, ActorType: ActorSystem, Action: action, Target: target,
			IP: e.IP, UserAgent: e.UserAgent, RequestID: e.RequestID, Details: details}
	}
	switch e.Action {
	case ActionLoginFailed:
		if e.Target != "" {
			n, err := l.count(ctx, p.AccountFailures, `target = ?`, e.TenantID, ActionLoginFailed, since, e.Target)
			if err != nil {
				return raised, err
			}
			if n >= p.AccountFailures {
				msg := fmt.Sprintf("%d or more failed logins for %s within %v", n, e.Target, p.Window)
				ev := sec(ActionLoginBurst, e.Target, map[string]string{"scope": "account", "failures": strconv.Itoa(n), "window": p.Window.String()})
				if err := raise(NoticeLoginBurst, "burst:account:"+e.Target+":"+bucket, msg, ev); err != nil {
					return raised, err
				}
			}
		}
		if e.IP != "" {
			n, err := l.count(ctx, p.IPFailures, `ip = ?`, e.TenantID, ActionLoginFailed, since, e.IP)
			if err != nil {
				return raised, err
			}
			if n >= p.IPFailures {
				msg := fmt.Sprintf("%d or more failed logins from IP %s within %v", n, e.IP, p.Window)
				ev := sec(ActionLoginBurst, "ip:"+e.IP, map[string]string{"scope": "ip", "failures": strconv.Itoa(n), "window": p.Window.String()})
				if err := raise(NoticeLoginBurst, "burst:ip:"+e.IP+":"+bucket, msg, ev); err != nil {
					return raised, err
				}
			}
		}
	case ActionLoginSucceeded:
		if e.ActorID == "" {
			return nil, nil
		}
		// Counts include the event just recorded, hence "< 2" means never
		// seen before.
		total, err := l.count(ctx, 2, `actor_id = ?`, e.TenantID, ActionLoginSucceeded, 0, e.ActorID)
		if err != nil || total < 2 {
			return nil, err
		}
		var newWhat []string
		if e.IP != "" {
			n, err := l.count(ctx, 2, `actor_id = ? AND ip = ?`, e.TenantID, ActionLoginSucceeded, 0, e.ActorID, e.IP)
			if err != nil {
				return nil, err
			}
			if n < 2 {
				newWhat = append(newWhat, "ip")
			}
		}
		country := e.Details["country"]
		if country != "" {
			n, err := l.count(ctx, 2, `actor_id = ? AND json_extract(details, '$.country') = ?`, e.TenantID, ActionLoginSucceeded, 0, e.ActorID, country)
			if err != nil {
				return nil, err
			}
			if n < 2 {
				newWhat = append(newWhat, "country")
			}
		}
		if len(newWhat) == 0 {
			return nil, nil
		}
		what := newWhat[0]
		if len(newWhat) == 2 {
			what = "ip,country"
		}
		target := e.Target
		if target == "" {
			target = "user:" + e.ActorID
		}
		msg := fmt.Sprintf("login by %s from a new %s: IP %s, country %s", target, what, e.IP, orUnknown(country))
		ev := sec(ActionNewLocation, target, map[string]string{"new": what, "ip": e.IP, "country": country, "actor_id": e.ActorID})
		if err := raise(NoticeNewLocation, "newloc:"+e.ActorID+":"+e.IP+":"+country, msg, ev); err != nil {
			return raised, err
		}
	default:
		return nil, fmt.Errorf("%w: CheckLogin takes %s or %s, not %q", ErrInvalidEvent, ActionLoginSucceeded, ActionLoginFailed, e.Action)
	}
	return raised, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// count counts, up to cap, the tenant's events with action at or after
// since (Unix ms) that also match cond.
func (l *Log) count(ctx context.Context, cap int, cond, tenant, action string, since int64, args ...any) (int, error) {
	a := append([]any{tenant, action, since}, args...)
	a = append(a, cap)
	rows, err := l.sql.Query(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM audit_events
		WHERE tenant_id = ? AND action = ? AND at >= ? AND `+cond+` LIMIT ?)`, a...)
	if err != nil {
		return 0, fmt.Errorf("audit: check login: %w", err)
	}
	var n int
	err = rows.Scan(0, &n)
	return n, err
}

func noticeID(dedupe string) string {
	h := sha256.Sum256([]byte(dedupe))
	return "ntc_" + hex.EncodeToString(h[:12])
}

// raise records ev and its notice in one batch, once per dedupe key. It
// reports whether it raised them (false: already raised).
func (l *Log) raise(ctx context.Context, tenant, kind, dedupe, message string, now time.Time, ev Event) (bool, error) {
	id := noticeID(dedupe)
	exists := func() (bool, error) {
		rows, err := l.sql.Query(ctx, `SELECT 1 FROM security_notices WHERE tenant_id = ? AND dedupe = ?`, tenant, dedupe)
		if err != nil {
			return false, err
		}
		return rows.Len() > 0, nil
	}
	if ok, err := exists(); err != nil || ok {
		return false, err
	}
	ev.Details["notice_id"] = id
	_, err := l.RecordBatch(ctx, ev, []storage.Stmt{{
		Query: `INSERT INTO security_notices (tenant_id, id, at, kind, message, dedupe) VALUES (?, ?, ?, ?, ?, ?)`,
		Args:  []any{tenant, id, now.UnixMilli(), kind, message, dedupe},
	}, NoticeJob(tenant, id, noticeSubject(ev), now.UnixMilli())})
	if errors.Is(err, storage.ErrConflict) {
		// Another request raised it first (the notice's unique dedupe).
		if ok, xerr := exists(); xerr == nil && ok {
			return false, nil
		}
	}
	return err == nil, err
}

// Notices lists the tenant's security notices, newest first, at most limit
// (1 to 100; default 50).
func (l *Log) Notices(ctx context.Context, tenant string, limit int) ([]Notice, error) {
	if limit <= 0 || limit > 100 {
		limit = 50
	}
	rows, err := l.sql.Query(ctx, `SELECT id, at, kind, message, read_at FROM security_notices
		WHERE tenant_id = ? ORDER BY at DESC, id LIMIT ?`, tenant, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Notice, rows.Len())
	for i := range out {
		var at int64
		var read *int64
		if err := rows.Scan(i, &out[i].ID, &at, &out[i].Kind, &out[i].Message, &read); err != nil {
			return nil, err
		}
		out[i].At = time.UnixMilli(at).UTC()
		if read != nil {
			t := time.UnixMilli(*read).UTC()
			out[i].ReadAt = &t
		}
	}
	return out, nil
}

// MarkNoticeRead marks one notice read; storage.ErrNotFound if the tenant
// has no such notice.
func (l *Log) MarkNoticeRead(ctx context.Context, tenant, id string) error {
	res, err := l.sql.Exec(ctx, `UPDATE security_notices SET read_at = ? WHERE tenant_id = ? AND id = ? AND read_at IS NULL`,
		l.clock.Now().UnixMilli(), tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		rows, err := l.sql.Query(ctx, `SELECT 1 FROM security_notices WHERE tenant_id = ? AND id = ?`, tenant, id)
		if err != nil {
			return err
		}
		if rows.Len() == 0 {
			return storage.ErrNotFound
		}
	}
	return nil
}

// Raise records ev and a security notice for the tenant's owners in one
// batch, once per dedupe key, for other capabilities' notices (a webhook
// subscription disabled after failing). It reports whether it raised them.
func (l *Log) Raise(ctx context.Context, tenant, kind, dedupe, message string, ev Event) (bool, error) {
	if ev.Details == nil {
		ev.Details = map[string]string{}
	}
	return l.raise(ctx, tenant, kind, dedupe, message, l.clock.Now(), ev)
}

// NoticeJobKind is the job that mails a raised notice (package identity
// runs it: to the person the notice is about and, if the tenant wants, to
// its owners).
const NoticeJobKind = "notice.deliver"

// NoticePayload is a notice job's payload.
type NoticePayload struct {
	Tenant string `json:"tenant"`
	Notice string `json:"notice"`
	// User is the person the notice is about ("" when it is about no one:
	// failures from one address over many accounts, a webhook).
	User string `json:"user,omitempty"`
}

// NoticeJob is the statement that queues the delivery of notice id, for
// the batch that raises it. It is the row handlers/jobs' Enqueue writes
// (this package sits below jobs and cannot call it; the root package's
// TestNoticeJobIsAJobsRow holds the two together). Its id derives from
// the notice's, so a notice is queued for delivery once.
func NoticeJob(tenant, id, user string, now int64) storage.Stmt {
	payload, _ := json.Marshal(NoticePayload{Tenant: tenant, Notice: id, User: user})
	return storage.Stmt{
		Query: `INSERT INTO jobs (tenant_id, id, kind, ref, payload, state, run_at, attempts, max_attempts, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING`,
		Args: []any{tenant, "deliver_" + id, NoticeJobKind, id, string(payload), now, noticeJobAttempts, now, now},
	}
}

// noticeJobAttempts: the delivery only queues mail (each mail retries on
// its own), so its own failures are storage faults.
const noticeJobAttempts = 8

// noticeSubject is the person a security event is about: its target when
// that is a user ("user:u_…"), else the actor it names in its details.
func noticeSubject(ev Event) string {
	if u, ok := strings.CutPrefix(ev.Target, "user:"); ok {
		return u
	}
	return ev.Details["actor_id"]
}
