// Package jobs is the application's background work: an outbox table in SQL
// (migration 0008) whose rows are written in the same batch as the change
// that causes them, taken with a lease by a conditional UPDATE, retried with
// exponential backoff and full jitter, and given up after a limit into the
// visible state "dead".
//
// There are no interactive transactions (D1 has none), so every step is one
// conditional statement:
//
//   - take:   UPDATE … SET state='running', attempts=attempts+1, lease … WHERE
//     id = ? AND attempts = ? AND (queued and due, or running with an expired
//     lease). One runner of several racing for a job wins (RowsAffected 1).
//   - finish: UPDATE … WHERE id = ? AND leased_by = ? AND state = 'running'.
//     A runner whose lease expired and was taken over changes nothing.
//
// A job may therefore run more than once (a lease that expires while its
// handler still runs, a home killed after the side effect but before the
// finish): handlers are idempotent by design (a webhook delivery keeps its
// webhook-id, so receivers deduplicate). Who runs jobs is the home's
// business: the host's job workers and the edge's cron trigger call Run.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// Job is one taken job, as its handler sees it.
type Job struct {
	Tenant  string
	ID      string
	Kind    string
	Ref     string
	Payload json.RawMessage
	// Attempt counts from 1 (this run included); MaxAttempts is the limit.
	Attempt     int
	MaxAttempts int
	CreatedAt   time.Time
}

// Spec describes a job to enqueue.
type Spec struct {
	Tenant string
	Kind   string
	// ID, when set, makes the enqueue idempotent: a second job with the
	// same tenant and id is not inserted. Empty: a fresh random id.
	ID string
	// Ref names what the job works for (e.g. a webhook id), for listings.
	Ref string
	// Payload is JSON: ids and numbers, never sealed content or secrets
	// (the row is stored in clear).
	Payload json.RawMessage
	// RunAt is the earliest time to run, Unix ms (0: now).
	RunAt int64
	// MaxAttempts is the number of runs before the job is dead (0: the
	// default, DefaultMaxAttempts).
	MaxAttempts int
}

// Limits of the table.
const (
	DefaultMaxAttempts = 8
	MaxAttemptsLimit   = 50
	maxKind            = 64
	maxPayload         = 16 << 10
	maxError           = 500
)

// Enqueue returns the statement that inserts the job, for the batch of the
// change that causes it. It panics on a malformed Spec: specs are built by
// code, not from input, so that is a bug (and the request fails with 500
// before anything is written).
func Enqueue(s Spec, now int64) storage.Stmt {
	if err := s.check(); err != nil {
		panic(err)
	}
	if s.ID == "" {
		s.ID = NewID()
	}
	if s.RunAt == 0 {
		s.RunAt = now
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	return storage.Stmt{
		Query: `INSERT INTO jobs (tenant_id, id, kind, ref, payload, state, run_at, attempts, max_attempts, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING`,
		Args: []any{s.Tenant, s.ID, s.Kind, s.Ref, string(s.Payload), s.RunAt, s.MaxAttempts, now, now},
	}
}

func (s Spec) check() error {
	switch {
	case s.Tenant == "":
		return errors.New("jobs: Spec without a tenant")
	case !validKind(s.Kind):
		return fmt.Errorf("jobs: bad kind %q", s.Kind)
	case len(s.Payload) > maxPayload || !json.Valid(s.Payload):
		return fmt.Errorf("jobs: payload of %s is not JSON of at most %d bytes", s.Kind, maxPayload)
	case s.MaxAttempts < 0 || s.MaxAttempts > MaxAttemptsLimit:
		return fmt.Errorf("jobs: max attempts %d outside 0..%d", s.MaxAttempts, MaxAttemptsLimit)
	case s.RunAt < 0 || s.RunAt > maxSafeInt:
		return fmt.Errorf("jobs: run_at %d out of range", s.RunAt)
	}
	return nil
}

// validKind: a dotted lower-case name such as "webhook.deliver".
func validKind(k string) bool {
	if k == "" || len(k) > maxKind {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

const maxSafeInt = 1<<53 - 1

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a fresh job id: "job_" and 128 random bits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return "job_" + idEncoding.EncodeToString(b[:])
}

// Handler runs one job. A nil error finishes it (done); an error schedules
// a retry with backoff, or makes the job dead after its last attempt;
// Permanent(err) makes it dead at once. The context ends before the lease
// does.
type Handler func(ctx context.Context, j Job) error

// Policy is how a kind of job is retried.
type Policy struct {
	// Base and Cap shape the backoff: before attempt n+1 the job waits a
	// uniformly random time in [0, min(Cap, Base·2^(n-1))] ("full
	// jitter"), but at least MinDelay.
	Base, Cap time.Duration
	// Timeout bounds one run of the handler (its context's deadline).
	Timeout time.Duration
}

// DefaultPolicy: 10 s doubling to at most 1 h; 60 s per run.
var DefaultPolicy = Policy{Base: 10 * time.Second, Cap: time.Hour, Timeout: time.Minute}

// MinDelay is the shortest wait before a retry, so that a failing job
// never spins.
const MinDelay = time.Second

// Backoff is the wait before the attempt after attempt n (n >= 1), drawn
// with full jitter from [MinDelay, max(MinDelay, min(Cap, Base·2^(n-1)))].
func (p Policy) Backoff(n int, r *mrand.Rand) time.Duration {
	ceil := p.Cap
	if n < 1 {
		n = 1
	}
	if n-1 < 40 {
		if d := p.Base << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	if ceil <= MinDelay {
		return MinDelay
	}
	var d time.Duration
	if r != nil {
		d = time.Duration(r.Int64N(int64(ceil) + 1))
	} else {
		d = time.Duration(mrand.Int64N(int64(ceil) + 1))
	}
	return max(d, MinDelay)
}

// permanent marks an error that no retry can fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the job becomes dead at once.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err (or an error it wraps) was made by
// Permanent: the job will not run again.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Outcome is what a handler's run came to, for a kind's OnDone hook.
type Outcome struct {
	Job   Job
	Err   error // nil: done
	Dead  bool  // the job will not run again
	Retry time.Time
}

type kind struct {
	fn     Handler
	policy Policy
	// after runs once the outcome is recorded (e.g. a webhook's
	// failure streak); its error is logged, not retried.
	after func(ctx context.Context, o Outcome) error
}

// Registry maps kinds to handlers. It is built at wiring time (the root
// handlers package), not kept in package globals.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]kind
	// Log receives the runner's lines (default: the log package).
	Log func(format string, args ...any)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]kind{}} }

// Register sets the handler of kind with DefaultPolicy.
func (r *Registry) Register(k string, fn Handler) { r.RegisterPolicy(k, fn, DefaultPolicy, nil) }

// RegisterPolicy sets the handler of kind with its retry policy and an
// optional hook that sees each recorded outcome.
func (r *Registry) RegisterPolicy(k string, fn Handler, p Policy, after func(context.Context, Outcome) error) {
	if !validKind(k) {
		panic(fmt.Sprintf("jobs: bad kind %q", k))
	}
	if p.Base <= 0 || p.Cap <= 0 || p.Timeout <= 0 {
		panic("jobs: a policy needs Base, Cap and Timeout")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kinds[k] = kind{fn: fn, policy: p, after: after}
}

func (r *Registry) kind(k string) (kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	x, ok := r.kinds[k]
	return x, ok
}

func (r *Registry) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Result counts what one Run did.
type Result struct {
	Taken, Done, Retried, Dead int
}

// RunOptions bound one Run.
type RunOptions struct {
	// Limit is the most jobs taken (default 10).
	Limit int
	// Concurrency is the most handlers running at once (default 1). At
	// the edge handlers wait on fetch concurrently; in the wasip1 guest
	// host calls block the instance, so the host runs several instances
	// instead.
	Concurrency int
	// Runner names the runner in leased_by (default: random).
	Runner string
	// Lease is how long a taken job is reserved (default: the kind's
	// Timeout plus 30 s). A job whose lease passes is taken over.
	Lease time.Duration
}

// Run takes up to opts.Limit due jobs and runs them. Jobs of unknown kinds
// are left alone (another build of the application may know them), except
// that they never block the others. It returns what it did; the error is
// one of the SQL store's (a handler's failure is recorded on its job, not
// returned).
func (r *Registry) Run(ctx context.Context, p storage.Platform, opts RunOptions) (Result, error) {
	if opts.Limit <= 0 {
		opts.Limit = 10
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Runner == "" {
		opts.Runner = "r_" + NewID()[4:]
	}
	now := p.Clock.Now().UnixMilli()
	// Candidates are read across tenants; each take is then conditional
	// on the row being exactly as read.
	// tenant-lookup: the runner serves every tenant's due jobs; each take below is by (tenant_id, id).
	rows, err := p.SQL.Query(ctx, `SELECT tenant_id, id, kind, ref, payload, state, attempts, max_attempts, created_at FROM jobs
		WHERE (state = 'queued' AND run_at <= ?) OR (state = 'running' AND lease_until < ?)
		ORDER BY run_at LIMIT ?`, now, now, opts.Limit*4)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var mu sync.Mutex
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	for i := 0; i < rows.Len() && res.Taken < opts.Limit; i++ {
		if ctx.Err() != nil {
			break
		}
		var j Job
		var state string
		var created int64
		var payload string
		if err := rows.Scan(i, &j.Tenant, &j.ID, &j.Kind, &j.Ref, &payload, &state, &j.Attempt, &j.MaxAttempts, &created); err != nil {
			return res, err
		}
		j.Payload = json.RawMessage(payload)
		j.CreatedAt = time.UnixMilli(created).UTC()
		k, known := r.kind(j.Kind)
		if !known {
			continue
		}
		if j.Attempt >= j.MaxAttempts {
			// Only a running job whose lease expired gets here (a
			// queued one has attempts left): its last run never
			// finished.
			if err := r.bury(ctx, p, j, now); err != nil {
				return res, err
			}
			mu.Lock()
			res.Dead++
			mu.Unlock()
			continue
		}
		lease := opts.Lease
		if lease <= 0 {
			lease = k.policy.Timeout + 30*time.Second
		}
		token := opts.Runner + "/" + NewID()[4:12]
		took, err := p.SQL.Exec(ctx, `UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, leased_by = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ? AND attempts = ? AND ((state = 'queued' AND run_at <= ?) OR (state = 'running' AND lease_until < ?))`,
			now+lease.Milliseconds(), token, now, j.Tenant, j.ID, j.Attempt, now, now)
		if err != nil {
			return res, err
		}
		if took.RowsAffected != 1 {
			continue // another runner took it first
		}
		j.Attempt++
		res.Taken++
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o := r.runOne(ctx, p, k, j, token, lease)
			mu.Lock()
			switch {
			case o.Err == nil:
				res.Done++
			case o.Dead:
				res.Dead++
			default:
				res.Retried++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res, nil
}

// runOne runs a taken job and records its outcome under its lease.
func (r *Registry) runOne(ctx context.Context, p storage.Platform, k kind, j Job, token string, lease time.Duration) Outcome {
	timeout := min(k.policy.Timeout, lease)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	err := safeRun(hctx, k.fn, j)
	cancel()
	now := p.Clock.Now().UnixMilli()
	o := Outcome{Job: j, Err: err}
	var q string
	var args []any
	if err == nil {
		q = `UPDATE jobs SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = ? WHERE tenant_id = ? AND id = ? AND leased_by = ? AND state = 'running'`
		args = []any{now, j.Tenant, j.ID, token}
	} else {
		var perm permanent
		o.Dead = errors.As(err, &perm) || j.Attempt >= j.MaxAttempts
		msg := Truncate(err.Error(), maxError)
		if o.Dead {
			q = `UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND leased_by = ? AND state = 'running'`
			args = []any{msg, now, j.Tenant, j.ID, token}
		} else {
			o.Retry = time.UnixMilli(now).Add(k.policy.Backoff(j.Attempt, nil))
			q = `UPDATE jobs SET state = 'queued', run_at = ?, lease_until = NULL, last_error = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND leased_by = ? AND state = 'running'`
			args = []any{o.Retry.UnixMilli(), msg, now, j.Tenant, j.ID, token}
		}
	}
	// The outcome is written even if the run's context has ended: it is
	// what lets the next runner skip or retry the job correctly.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer wcancel()
	res, werr := p.SQL.Exec(wctx, q, args...)
	switch {
	case werr != nil:
		r.logf("jobs: recording the outcome of %s %s: %v (the lease will expire and the job run again)", j.Kind, j.ID, werr)
		return o
	case res.RowsAffected != 1:
		// The lease expired and another runner took the job over; its
		// outcome is the one that counts.
		r.logf("jobs: %s %s finished after its lease was taken over; outcome dropped", j.Kind, j.ID)
		return o
	}
	if err != nil {
		r.logf("jobs: %s %s attempt %d/%d failed: %v", j.Kind, j.ID, j.Attempt, j.MaxAttempts, Truncate(err.Error(), maxError))
	}
	if k.after != nil {
		if aerr := k.after(wctx, o); aerr != nil {
			r.logf("jobs: after %s %s: %v", j.Kind, j.ID, aerr)
		}
	}
	return o
}

// bury makes dead a job whose last run never finished.
func (r *Registry) bury(ctx context.Context, p storage.Platform, j Job, now int64) error {
	res, err := p.SQL.Exec(ctx, `UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ? AND attempts = ? AND state = 'running' AND lease_until < ?`,
		"the last attempt did not finish within its lease", now, j.Tenant, j.ID, j.Attempt, now)
	if err != nil || res.RowsAffected != 1 {
		return err
	}
	if k, ok := r.kind(j.Kind); ok && k.after != nil {
		if aerr := k.after(ctx, Outcome{Job: j, Err: errors.New("the last attempt did not finish within its lease"), Dead: true}); aerr != nil {
			r.logf("jobs: after %s %s: %v", j.Kind, j.ID, aerr)
		}
	}
	return nil
}

// safeRun turns a handler's panic into an error for that job alone.
func safeRun(ctx context.Context, fn Handler, j Job) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return fn(ctx, j)
}

// Retention of finished jobs: done ones are kept a week (the delivery log
// reads them), dead ones 30 days.
const (
	keepDone = 7 * 24 * time.Hour
	keepDead = 30 * 24 * time.Hour
)

// Prune deletes finished jobs past their retention, at most limit rows of
// each state per call (a bounded statement each).
func Prune(ctx context.Context, p storage.Platform, limit int) error {
	now := p.Clock.Now()
	for _, x := range []struct {
		state string
		keep  time.Duration
	}{{"done", keepDone}, {"dead", keepDead}} {
		// tenant-lookup: retention applies to every tenant alike; rows are chosen by state and age only.
		if _, err := p.SQL.Exec(ctx, `DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE state = ? AND updated_at < ? LIMIT ?)`,
			x.state, now.Add(-x.keep).UnixMilli(), limit); err != nil {
			return err
		}
	}
	return nil
}

// Truncate cuts s to at most n bytes on a rune boundary and removes
// control characters, for error text stored in a row.
func Truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// PurgeTenantStmts delete a tenant's jobs (tenant deletion). A job taken
// while the tenant is deleted finds nothing to do: every job kind reads its
// subject under the tenant first.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{{Query: `DELETE FROM jobs WHERE tenant_id = ?`, Args: []any{tenant}}}
}
