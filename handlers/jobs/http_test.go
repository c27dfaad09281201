// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// scope is an admin's scope of tenant, whose data key exists (the audit
// log seals its details with it).
func scope(t *testing.T, p storage.Platform, tenant string) *web.Scope {
	t.Helper()
	ctx := context.Background()
	if _, err := p.SQL.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, tenant, tenant, 0); err != nil {
		t.Fatal(err)
	}
	if err := envelope.New(p).Ensure(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	return &web.Scope{P: p, Tenant: tenant, Keys: envelope.New(p), UserID: "u_" + tenant, Role: web.RoleAdmin}
}

type page struct {
	Jobs []jobs.View `json:"jobs"`
	Next string      `json:"next"`
}

// list calls GET /v1/jobs?query; a refusal is returned as its *web.Error.
func list(t *testing.T, s *web.Scope, query string) (page, *web.Error) {
	t.Helper()
	rt := &jobs.Routes{}
	w := httptest.NewRecorder()
	err := rt.List(w, httptest.NewRequest("GET", "/v1/jobs?"+query, nil), s)
	if err != nil {
		var we *web.Error
		if !errors.As(err, &we) {
			t.Fatalf("list %q: %v", query, err)
		}
		return page{}, we
	}
	var pg page
	if err := json.Unmarshal(w.Body.Bytes(), &pg); err != nil {
		t.Fatalf("list %q: %v: %s", query, err, w.Body)
	}
	return pg, nil
}

func retry(t *testing.T, s *web.Scope, id string) (jobs.View, *web.Error) {
	t.Helper()
	rt := &jobs.Routes{}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v1/jobs/x/retry", nil)
	r.SetPathValue("id", id)
	if err := rt.Retry(w, r, s); err != nil {
		var we *web.Error
		if !errors.As(err, &we) {
			t.Fatalf("retry %s: %v", id, err)
		}
		return jobs.View{}, we
	}
	if w.Code != http.StatusOK {
		t.Fatalf("retry %s: %d %s", id, w.Code, w.Body)
	}
	var v jobs.View
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v, nil
}

// TestListPagesWithEqualTimestamps: jobs that share a creation time are
// paged by (created_at, id) newest first, none skipped or repeated, even
// when jobs change state between pages; another tenant's never appear.
func TestListPagesWithEqualTimestamps(t *testing.T) {
	p, clk := open(t)
	s := scope(t, p, "t1")
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("job_same_%02d", i)
		enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.list", ID: id, Ref: "c_ref", Payload: json.RawMessage(`{}`)})
		want = append(want, id)
	}
	clk.Advance(time.Second)
	for i := range 3 {
		id := fmt.Sprintf("job_later_%d", i)
		enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.other", ID: id, Payload: json.RawMessage(`{}`)})
		want = append(want, id)
	}
	enqueue(t, p, jobs.Spec{Tenant: "t2", Kind: "test.list", ID: "job_same_99", Payload: json.RawMessage(`{}`)})
	// Newest first: the later ones, then the equal ones by id descending.
	slices.SortStableFunc(want, func(a, b string) int {
		la, lb := strings.HasPrefix(a, "job_later"), strings.HasPrefix(b, "job_later")
		if la != lb {
			if la {
				return -1
			}
			return 1
		}
		return strings.Compare(b, a)
	})

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the cursor never ends")
		}
		q := "limit=3"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		pg, e := list(t, s, q)
		if e != nil {
			t.Fatal(e)
		}
		if len(pg.Jobs) > 3 {
			t.Fatalf("page of %d", len(pg.Jobs))
		}
		for _, j := range pg.Jobs {
			got = append(got, j.ID)
		}
		// A job changing state while the client pages keeps its place.
		p.SQL.Exec(context.Background(), `UPDATE jobs SET state = 'dead', updated_at = updated_at + 5 WHERE tenant_id = ? AND id = ?`, "t1", "job_same_00")
		if pg.Next == "" {
			break
		}
		cursor = pg.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged\n %v\nwant\n %v", got, want)
	}

	// Filters.
	pg, _ := list(t, s, "state=dead")
	if len(pg.Jobs) != 1 || pg.Jobs[0].ID != "job_same_00" || pg.Jobs[0].State != "dead" {
		t.Fatalf("state=dead: %+v", pg.Jobs)
	}
	pg, _ = list(t, s, "kind=test.other&state=queued")
	if len(pg.Jobs) != 3 || pg.Next != "" {
		t.Fatalf("kind=test.other: %+v", pg)
	}
	pg, _ = list(t, s, "kind=test.list")
	if len(pg.Jobs) != 7 || pg.Jobs[0].Ref == nil || *pg.Jobs[0].Ref != "c_ref" {
		t.Fatalf("kind=test.list: %+v", pg.Jobs)
	}
	pg, _ = list(t, s, "kind=test.other")
	if pg.Jobs[0].Ref != nil {
		t.Fatalf("a job without a ref shows %q", *pg.Jobs[0].Ref)
	}
	// The page size and its limit: exactly a full page has no next.
	pg, _ = list(t, s, "limit=10")
	if len(pg.Jobs) != 10 || pg.Next != "" {
		t.Fatalf("limit=10 over 10 jobs: %d jobs, next %q", len(pg.Jobs), pg.Next)
	}
}

// TestListLimits: the page limit is crossed on both sides, and bad
// parameters are refused with a 400 naming the parameter.
func TestListLimits(t *testing.T) {
	p, _ := open(t)
	s := scope(t, p, "t1")
	for i := range jobs.MaxPageSize + 1 {
		enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.many", ID: fmt.Sprintf("job_%03d", i), Payload: json.RawMessage(`{}`)})
	}
	pg, e := list(t, s, "")
	if e != nil || len(pg.Jobs) != jobs.PageSize || pg.Next == "" {
		t.Fatalf("default page: %d jobs, next %q, %v", len(pg.Jobs), pg.Next, e)
	}
	pg, e = list(t, s, fmt.Sprintf("limit=%d", jobs.MaxPageSize))
	if e != nil || len(pg.Jobs) != jobs.MaxPageSize || pg.Next == "" {
		t.Fatalf("limit=%d: %d jobs, %v", jobs.MaxPageSize, len(pg.Jobs), e)
	}
	for q, want := range map[string]string{
		fmt.Sprintf("limit=%d", jobs.MaxPageSize+1): "invalid_limit",
		"limit=0":                         "invalid_limit",
		"limit=07":                        "invalid_limit",
		"limit=x":                         "invalid_limit",
		"state=failed":                    "invalid_state",
		"kind=Webhook.Deliver":            "invalid_kind",
		"kind=" + strings.Repeat("a", 65): "invalid_kind",
		"stat=dead":                       "unknown_parameter",
		"state=dead&state=queued":         "invalid_parameter",
		"cursor=bogus!":                   "invalid_cursor",
		"cursor=" + jobs.Cursor{At: 1, ID: "bad id"}.Encode(): "invalid_cursor",
		"cursor=MDEuam9iX3g": "invalid_cursor", // "01.job_x"
		"cursor=" + jobs.Cursor{At: 1 << 53, ID: "job"}.Encode(): "invalid_cursor",
	} {
		_, e := list(t, s, q)
		if e == nil || e.Status != 400 || e.Code != want {
			t.Errorf("%s: %+v, want 400 %s", q, e, want)
		}
	}
}

// TestListNeverShowsPayloads: the payload is stored in clear and belongs
// to its kind; the list shows none of it.
func TestListNeverShowsPayloads(t *testing.T) {
	p, _ := open(t)
	s := scope(t, p, "t1")
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.secret", ID: "job_secret", Payload: json.RawMessage(`{"token":"s3cr3t-value"}`)})
	w := httptest.NewRecorder()
	if err := (&jobs.Routes{}).List(w, httptest.NewRequest("GET", "/v1/jobs", nil), s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(w.Body.String(), "s3cr3t") || strings.Contains(w.Body.String(), "payload") {
		t.Fatalf("the list shows a payload: %s", w.Body)
	}
}

// TestRetryDeadJob: a job that died after its attempts goes back to the
// queue with its attempts reset when an admin retries it, is audited, and
// runs to done once its handler succeeds.
func TestRetryDeadJob(t *testing.T) {
	p, clk := open(t)
	ctx := context.Background()
	s := scope(t, p, "t1")
	reg := jobs.NewRegistry()
	reg.Log = quiet
	fail := true
	reg.Register("test.flaky", func(ctx context.Context, j jobs.Job) error {
		if fail {
			return errors.New("receiver down")
		}
		return nil
	})
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.flaky", ID: "job_flaky", Payload: json.RawMessage(`{}`), MaxAttempts: 2})
	for range 2 {
		if _, err := reg.Run(ctx, p, jobs.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Hour)
	}
	pg, _ := list(t, s, "state=dead")
	if len(pg.Jobs) != 1 || pg.Jobs[0].Attempts != 2 || pg.Jobs[0].MaxAttempts != 2 || pg.Jobs[0].LastError == nil || *pg.Jobs[0].LastError != "receiver down" {
		t.Fatalf("dead list: %+v", pg.Jobs)
	}

	v, e := retry(t, s, "job_flaky")
	if e != nil {
		t.Fatal(e)
	}
	if v.State != "queued" || v.Attempts != 0 || v.RunAt != web.Millis(clk.Now().UnixMilli()) {
		t.Fatalf("after retry: %+v", v)
	}
	// A second retry of the now queued job is refused and changes nothing.
	if _, e := retry(t, s, "job_flaky"); e == nil || e.Status != 409 || e.Code != "job_not_dead" || !strings.Contains(e.Message, "queued") {
		t.Fatalf("retry of a queued job: %+v", e)
	}
	evs, err := audit.New(p.SQL, p.Clock).Sealed(p.Keys).Query(ctx, "t1", audit.Filter{Action: "job.retried"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 1 || evs.Events[0].Target != "job:job_flaky" || evs.Events[0].ActorID != "u_t1" {
		t.Fatalf("audit: %+v", evs.Events)
	}

	fail = false
	if res, err := reg.Run(ctx, p, jobs.RunOptions{}); err != nil || res.Done != 1 {
		t.Fatalf("run after retry: %+v %v", res, err)
	}
	if r := jobRow(t, p, "t1", "job_flaky"); r.State != "done" || r.Attempts != 1 {
		t.Fatalf("after the retried run: %+v", r)
	}
	if _, e := retry(t, s, "job_flaky"); e == nil || e.Status != 409 || !strings.Contains(e.Message, "done") {
		t.Fatalf("retry of a done job: %+v", e)
	}
}

// TestRetryRefusals: unknown ids, malformed ids and another tenant's dead
// job are 404 and change nothing; queued and running jobs are 409.
func TestRetryRefusals(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	s := scope(t, p, "t1")
	enqueue(t, p, jobs.Spec{Tenant: "t2", Kind: "test.x", ID: "job_theirs", Payload: json.RawMessage(`{}`)})
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.x", ID: "job_running", Payload: json.RawMessage(`{}`)})
	p.SQL.Exec(ctx, `UPDATE jobs SET state = 'dead' WHERE tenant_id = ? AND id = ?`, "t2", "job_theirs")
	p.SQL.Exec(ctx, `UPDATE jobs SET state = 'running', lease_until = ? WHERE tenant_id = ? AND id = ?`, p.Clock.Now().Add(time.Minute).UnixMilli(), "t1", "job_running")
	for _, id := range []string{"job_theirs", "job_nope", "", "job/../x", "job x", strings.Repeat("j", 201)} {
		if _, e := retry(t, s, id); e == nil || e.Status != 404 || e.Code != "not_found" {
			t.Errorf("retry %q: %+v, want 404", id, e)
		}
	}
	if r := jobRow(t, p, "t2", "job_theirs"); r.State != "dead" {
		t.Fatalf("another tenant's job changed: %+v", r)
	}
	if _, e := retry(t, s, "job_running"); e == nil || e.Status != 409 || !strings.Contains(e.Message, "running") {
		t.Fatalf("retry of a running job: %+v", e)
	}
	pg, _ := list(t, s, "state=running")
	if len(pg.Jobs) != 1 || pg.Jobs[0].LeaseUntil == nil {
		t.Fatalf("a running job shows its lease: %+v", pg.Jobs)
	}
}

// FuzzParseQuery: the list's query parsing never panics; what it accepts
// is within its limits, and an accepted cursor is exactly one that Encode
// makes.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "state=dead", "kind=webhook.deliver&limit=5", "cursor=" + jobs.Cursor{At: 5, ID: "job_a"}.Encode(),
		"limit=100", "limit=101", "state=dead&state=dead", "cursor=MDEuam9iX3g", "x=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := jobs.ParseQuery(v)
		if err != nil {
			var we *web.Error
			if !errors.As(err, &we) || we.Status != 400 {
				t.Fatalf("%q: refusal %v is not a 400", raw, err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > jobs.MaxPageSize {
			t.Fatalf("%q: limit %d", raw, q.Limit)
		}
		if q.State != "" && !slices.Contains(jobs.States, q.State) {
			t.Fatalf("%q: state %q", raw, q.State)
		}
		if c := v.Get("cursor"); c != "" {
			if q.After.IsZero() || q.After.Encode() != c || !jobs.ValidID(q.After.ID) || q.After.At < 0 || q.After.At > 1<<53-1 {
				t.Fatalf("%q: cursor %+v", raw, q.After)
			}
		}
	})
}
