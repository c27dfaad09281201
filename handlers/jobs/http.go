package jobs

// The jobs API: a tenant's admins see its background jobs, above all the
// dead ones (a snooze wake-up that gave up is shown nowhere else), and send
// a dead job back to the queue. Its SQL is here, beside the engine that
// writes the rows.

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Limits of the API.
const (
	PageSize    = 50
	MaxPageSize = 100
	// maxJobID bounds a job id from a path or cursor; ids are made by
	// code (NewID, or derived from other ids such as "wake_<conv>_<ms>").
	maxJobID  = 200
	maxCursor = 300
)

// States a job can be in, as the table and the API name them.
var States = []string{"queued", "running", "done", "dead"}

// Routes serves the jobs API.
type Routes struct{}

// View is a job as the API shows it. The payload is never shown: it is
// stored in clear and belongs to its kind; ref (a webhook id, a
// conversation id) says what the job works for.
type View struct {
	ID          string  `json:"id"`
	Kind        string  `json:"kind"`
	Ref         *string `json:"ref"`
	State       string  `json:"state"`
	Attempts    int     `json:"attempts"`
	MaxAttempts int     `json:"max_attempts"`
	RunAt       string  `json:"run_at"`
	LeaseUntil  *string `json:"lease_until,omitempty"`
	LastError   *string `json:"last_error"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

// Query is a parsed GET /v1/jobs.
type Query struct {
	State, Kind string
	Limit       int
	// After is the keyset cursor: the page holds the jobs with (created_at,
	// id) below it. Zero: the first page.
	After Cursor
}

// Cursor is a position in the list, newest first.
type Cursor struct {
	At int64
	ID string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

// Encode is opaque to clients: base64url of "<ms>.<id>".
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At, 10) + "." + c.ID))
}

// ParseQuery reads the list's query parameters: state, kind, cursor,
// limit. Unknown or repeated parameters are refused, so that a typo does
// not silently list everything.
func ParseQuery(q url.Values) (Query, error) {
	out := Query{Limit: PageSize}
	if err := web.CheckQuery(q, "cursor", "kind", "limit", "state"); err != nil {
		return out, err
	}
	if s := q.Get("state"); s != "" {
		if !validState(s) {
			return out, web.FieldErrorf("invalid_state", "state", "state is one of %s", strings.Join(States, ", "))
		}
		out.State = s
	}
	if k := q.Get("kind"); k != "" {
		if !validKind(k) {
			return out, web.FieldErrorf("invalid_kind", "kind", "a kind is 1 to %d of a-z, 0-9, '.' and '_'", maxKind)
		}
		out.Kind = k
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize || strconv.Itoa(n) != s {
			return out, web.FieldErrorf("invalid_limit", "limit", "limit is an integer from 1 to %d", MaxPageSize)
		}
		out.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		c, err := parseCursor(s)
		if err != nil {
			return out, err
		}
		out.After = c
	}
	return out, nil
}

func validState(s string) bool {
	for _, x := range States {
		if s == x {
			return true
		}
	}
	return false
}

// parseCursor reads a cursor made by Cursor.Encode.
func parseCursor(s string) (Cursor, error) {
	bad := web.FieldErrorf("invalid_cursor", "cursor", "the cursor is not one this list returned")
	if len(s) > maxCursor {
		return Cursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, bad
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || !ValidID(id) || at == "" || len(at) > 16 || at[0] == '0' && at != "0" {
		return Cursor{}, bad
	}
	for i := 0; i < len(at); i++ {
		if at[i] < '0' || at[i] > '9' {
			return Cursor{}, bad
		}
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil || n > maxSafeInt {
		return Cursor{}, bad
	}
	c := Cursor{At: n, ID: id}
	// The decoder skips line breaks and ignores stray low bits: only the
	// one spelling Encode makes is a cursor.
	if c.Encode() != s {
		return Cursor{}, bad
	}
	return c, nil
}

// ValidID accepts the shapes of job ids the application makes: 1 to 200
// of a-z, A-Z, 0-9, '_', '-', '.', ':'. A path segment that is not one is
// no job (404) and never reaches SQL.
func ValidID(id string) bool {
	if id == "" || len(id) > maxJobID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// tenant-scoped: every use appends WHERE tenant_id = ?.
const selectJob = `SELECT id, kind, ref, state, attempts, max_attempts, run_at, lease_until, last_error, created_at, updated_at FROM jobs`

// scanView reads one row of selectJob; created is the cursor's time.
func scanView(rows *storage.Rows, i int) (v View, created int64, err error) {
	var ref string
	var lease *int64
	var lastErr any
	var runAt, updated int64
	if err := rows.Scan(i, &v.ID, &v.Kind, &ref, &v.State, &v.Attempts, &v.MaxAttempts, &runAt, &lease, &lastErr, &created, &updated); err != nil {
		return v, 0, err
	}
	if ref != "" {
		v.Ref = &ref
	}
	if lease != nil && v.State == "running" {
		s := web.Millis(*lease)
		v.LeaseUntil = &s
	}
	if e, ok := lastErr.(string); ok {
		v.LastError = &e
	}
	v.RunAt, v.CreatedAt, v.UpdatedAt = web.Millis(runAt), web.Millis(created), web.Millis(updated)
	return v, created, nil
}

// Page lists the tenant's jobs for q, newest first by (created_at, id): a
// keyset on values that never change, so rows sharing a timestamp are
// neither skipped nor repeated, and a job that changes state while a
// client pages keeps its place. next is "" on the last page.
func Page(ctx context.Context, p storage.Platform, tenant string, q Query) (list []View, next string, err error) {
	query, args := pageQuery(tenant, q)
	rows, err := p.SQL.Query(ctx, query, args...)
	if err != nil {
		return nil, "", err
	}
	n := min(rows.Len(), q.Limit)
	list = make([]View, n)
	var last Cursor
	for i := range list {
		var created int64
		if list[i], created, err = scanView(rows, i); err != nil {
			return nil, "", err
		}
		last = Cursor{At: created, ID: list[i].ID}
	}
	if rows.Len() > q.Limit {
		next = last.Encode()
	}
	return list, next, nil
}

// List is GET /v1/jobs: the tenant's jobs, newest first, filtered by
// state and kind.
func (rt *Routes) List(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	list, next, err := Page(r.Context(), s.P, s.Tenant, q)
	if err != nil {
		return err
	}
	resp := map[string]any{"jobs": list}
	if next != "" {
		resp["next"] = next
	}
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func load(r *http.Request, s *web.Scope, id string) (View, error) {
	notFound := web.Errorf(http.StatusNotFound, "not_found", "no such job")
	if !ValidID(id) {
		return View{}, notFound
	}
	rows, err := s.P.SQL.Query(r.Context(), selectJob+` WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return View{}, err
	}
	if rows.Len() == 0 {
		return View{}, notFound
	}
	v, _, err := scanView(rows, 0)
	return v, err
}

// Retry is POST /v1/jobs/{id}/retry: a dead job goes back to the queue,
// due now, with its attempts reset (so it gets its whole backoff schedule
// again). Only a dead job can be retried; anything else is 409. The change
// and its audit event are one batch, and the change is conditional on the
// job still being dead, so of two racing retries one takes effect.
func (rt *Routes) Retry(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	job, err := load(r, s, id)
	if err != nil {
		return err
	}
	if job.State != "dead" {
		return notDead(job.State)
	}
	now := s.Now().UnixMilli()
	ev := s.Event(r)
	ev.Action, ev.Target = "job.retried", "job:"+id
	ev.Details = map[string]string{"kind": job.Kind, "attempts": strconv.Itoa(job.Attempts)}
	res, err := web.AuditLog(s.P).RecordBatch(r.Context(), ev, []storage.Stmt{{
		Query: `UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?, lease_until = NULL, leased_by = NULL, updated_at = ?
			WHERE tenant_id = ? AND id = ? AND state = 'dead'`,
		Args: []any{now, now, s.Tenant, id},
	}})
	if err != nil {
		return err
	}
	after, err := load(r, s, id)
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		// Another retry (or the retention sweep) came first; the audit
		// event records an attempt that changed nothing.
		return notDead(after.State)
	}
	web.WriteJSON(w, http.StatusOK, after)
	return nil
}

func notDead(state string) error {
	return web.Errorf(http.StatusConflict, "job_not_dead",
		"only a dead job can be retried; this one is %s", state)
}

// pageQuery is Page's statement: the indexes of migration 0010 serve its
// order with and without a state (TestPageQueryUsesAnIndex).
func pageQuery(tenant string, q Query) (string, []any) {
	query := selectJob + ` WHERE tenant_id = ?`
	args := []any{tenant}
	if q.State != "" {
		query += ` AND state = ?`
		args = append(args, q.State)
	}
	if q.Kind != "" {
		query += ` AND kind = ?`
		args = append(args, q.Kind)
	}
	if !q.After.IsZero() {
		query += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, q.After.At, q.After.At, q.After.ID)
	}
	// One more than the page says whether there is a next one.
	query += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	return query, append(args, q.Limit+1)
}
