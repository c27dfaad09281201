// Package audit tests the audit HTTP handlers over real SQLite, mounted the
// way the route table is meant to mount them (docs/audit.md, "Routes").
package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/wasm/host/local"
)

// mount stands in for the router: it authenticates (here: a fixed caller
// per tenant header) and hands the handler the caller.
func mount(mux *http.ServeMux, pattern string, h audit.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		by := audit.Event{TenantID: r.Header.Get("X-Test-Tenant"), ActorType: audit.ActorUser, ActorID: "u_owner",
			IP: "192.0.2.1", UserAgent: r.UserAgent(), RequestID: "req-http-test"}
		if err := h(w, r, by); err != nil {
			http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		}
	})
}

func setup(t *testing.T) (*httptest.Server, *audit.Log) {
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	l := audit.New(p.SQL, p.Clock)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		for _, tenant := range []string{"t_a", "t_b"} {
			if err := l.Record(ctx, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: fmt.Sprintf("u_%d", i%2),
				Action: []string{"auth.login.succeeded", "conversation.read", "settings.changed"}[i%3], Target: fmt.Sprintf("conversation:c_%d", i),
				IP: "198.51.100.2", RequestID: fmt.Sprintf("req-%d", i), Details: map[string]string{"tenant": tenant}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mux := http.NewServeMux()
	mount(mux, "GET /v1/audit/events", audit.QueryHandler(l))
	mount(mux, "GET /v1/audit/export", audit.ExportHandler(l))
	mount(mux, "GET /v1/audit/verify", audit.VerifyHandler(l))
	mount(mux, "GET /v1/audit/notices", audit.NoticesHandler(l))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, l
}

func get(t *testing.T, srv *httptest.Server, tenant, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("X-Test-Tenant", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestQueryRoute(t *testing.T) {
	srv, _ := setup(t)
	resp, body := get(t, srv, "t_a", "/v1/audit/events?action=conversation.&limit=4")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var page audit.Page
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 4 || page.NextCursor == "" {
		t.Fatalf("page %s", body)
	}
	for _, e := range page.Events {
		if e.TenantID != "t_a" || e.Action != "conversation.read" || e.Details["tenant"] != "t_a" || len(e.Hash) != 64 {
			t.Fatalf("event %+v", e)
		}
	}
	_, body = get(t, srv, "t_a", "/v1/audit/events?action=conversation.&limit=4&cursor="+page.NextCursor)
	var next audit.Page
	json.Unmarshal(body, &next)
	if len(next.Events) != 4 || next.Events[0].Seq >= page.Events[3].Seq {
		t.Fatalf("next page %s", body)
	}
	if _, body := get(t, srv, "t_a", "/v1/audit/events?since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z&actor_id=u_1&limit=1000"); !strings.Contains(string(body), `"actor_id":"u_1"`) || strings.Contains(string(body), `"actor_id":"u_0"`) {
		t.Fatalf("actor filter: %s", body)
	}
	for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "since=yesterday", "cursor=abc", "actr_id=u_1",
		"since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "action=a&action=b"} {
		resp, body := get(t, srv, "t_a", "/v1/audit/events?"+bad)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != "invalid_filter" || e.Error.Message == "" {
			t.Errorf("%s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, srv, "", "/v1/audit/events"); resp.StatusCode != 401 {
		t.Fatalf("no caller: %d", resp.StatusCode)
	}
}

func TestExportRoute(t *testing.T) {
	srv, l := setup(t)
	resp, body := get(t, srv, "t_b", "/v1/audit/export?action=auth.")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	var n int
	var last int64
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, sc.Text())
		}
		if e.TenantID != "t_b" || !strings.HasPrefix(e.Action, "auth.") || e.Seq <= last {
			t.Fatalf("line %d: %+v", n+1, e)
		}
		last = e.Seq
		n++
	}
	if n != 10 {
		t.Fatalf("%d lines", n)
	}
	// The export itself is audited, with who asked.
	p, err := l.Query(context.Background(), "t_b", audit.Filter{Action: audit.ActionExported})
	if err != nil || len(p.Events) != 1 || p.Events[0].ActorID != "u_owner" || p.Events[0].Details["filter"] != "action=auth." {
		t.Fatalf("export event %+v, %v", p.Events, err)
	}
	if resp, _ := get(t, srv, "t_b", "/v1/audit/export?limit=-1"); resp.StatusCode != 400 {
		t.Fatalf("bad export filter: %d", resp.StatusCode)
	}
}

func TestVerifyRoute(t *testing.T) {
	srv, _ := setup(t)
	resp, body := get(t, srv, "t_a", "/v1/audit/verify")
	var rep audit.Report
	if resp.StatusCode != 200 || json.Unmarshal(body, &rep) != nil || !rep.OK || rep.Events != 30 || rep.Tenant != "t_a" || len(rep.HeadHash) != 64 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv, "t_a", "/v1/audit/verify?tenant=t_b"); resp.StatusCode != 400 {
		t.Fatalf("verify with a parameter: %d", resp.StatusCode)
	}
	resp, body = get(t, srv, "t_a", "/v1/audit/notices")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"notices":[]`) {
		t.Fatalf("notices %d %s", resp.StatusCode, body)
	}
}
