// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/egress"
	"pommy.ai/edge/wasm/host/local"
)

// The specification's published vector (standard-webhooks, libraries/go).
func TestSignVector(t *testing.T) {
	key, err := SecretKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!", "whsec_" + strings.Repeat("A", 8)} {
		if _, err := SecretKey(bad); err == nil {
			t.Errorf("SecretKey(%q) accepted", bad)
		}
	}
	s := NewSecret()
	if k, err := SecretKey(s); err != nil || len(k) != 32 {
		t.Fatalf("NewSecret %q: %v", s, err)
	}
}

type fakeRenderer struct{}

func (fakeRenderer) Event(ctx context.Context, tenant, conv string, seq int64) (string, json.RawMessage, error) {
	if conv == "c_gone" {
		return "", nil, storage.ErrNotFound
	}
	return "message.created", json.RawMessage(`{"conversation_id":"` + conv + `","seq":` + strconv.FormatInt(seq, 10) + `}`), nil
}

type received struct {
	header http.Header
	body   []byte
}

type env struct {
	p     storage.Platform
	clk   *storagetest.Clock
	reg   *jobs.Registry
	mu    sync.Mutex
	got   []received
	reply func(w http.ResponseWriter, r *http.Request)
	url   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clk: storagetest.NewClock(time.Now().UTC().Truncate(time.Millisecond))}
	e.reply = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.got = append(e.got, received{r.Header.Clone(), b})
		reply := e.reply
		e.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	lp, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: e.clk, Synchronous: "NORMAL",
		Egress: egress.Options{TestPublicAllow: []string{addr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lp.Close() })
	e.p, e.url = lp.Platform, srv.URL+"/hook"
	e.reg = jobs.NewRegistry()
	e.reg.Log = func(string, ...any) {}
	Register(e.reg, &Deliverer{P: e.p, Renderer: fakeRenderer{}, URLs: URLPolicy{TestAllow: []string{addr}}, Timeout: 2 * time.Second})
	return e
}

// subscribe makes a subscription the way Create stores one and returns its secret.
func (e *env) subscribe(t *testing.T, tenant, id string) string {
	t.Helper()
	ctx := context.Background()
	keys := envelope.New(e.p)
	if err := keys.Ensure(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	secret := NewSecret()
	sealed, err := keys.Seal(ctx, tenant, secretKind, id, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.SQL.Exec(ctx, `INSERT INTO webhooks (tenant_id, id, url, events, enabled, secret_sealed, created_at, updated_at) VALUES (?, ?, ?, 'message.created', 1, ?, 1, 1)`,
		tenant, id, e.url, sealed); err != nil {
		t.Fatal(err)
	}
	return secret
}

func (e *env) emit(t *testing.T, tenant, conv string, seq int64) {
	t.Helper()
	if _, err := e.p.SQL.Batch(context.Background(), []storage.Stmt{Fanout(tenant, "message.created", conv, seq, e.clk.Now().UnixMilli())}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) run(t *testing.T) jobs.Result {
	t.Helper()
	res, err := e.reg.Run(context.Background(), e.p, jobs.RunOptions{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) received() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.got...)
}

func verify(t *testing.T, secret string, r received) bool {
	t.Helper()
	key, err := SecretKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return Verify(key, r.header.Get("webhook-id"), ts, r.body, r.header.Get("webhook-signature"))
}

func TestDeliverSigned(t *testing.T) {
	e := newEnv(t)
	secret := e.subscribe(t, "t1", "wh_a")
	e.emit(t, "t1", "c_1", 3)
	if res := e.run(t); res.Done != 1 {
		t.Fatalf("%+v", res)
	}
	got := e.received()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	r := got[0]
	if !verify(t, secret, r) || r.header.Get("webhook-id") != "msg_a_c_1_3" || r.header.Get(storage.EgressPolicyHeader) != "" {
		t.Fatalf("headers %v", r.header)
	}
	var body Body
	if err := json.Unmarshal(r.body, &body); err != nil || body.Type != "message.created" || string(body.Data) != `{"conversation_id":"c_1","seq":3}` {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if verify(t, NewSecret(), r) {
		t.Fatal("a signature verified under another secret")
	}
}

func TestRotationOverlap(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := e.subscribe(t, "t1", "wh_a")
	// Rotate as the route does.
	fresh := NewSecret()
	sealed, _ := envelope.New(e.p).Seal(ctx, "t1", secretKind, "wh_a", []byte(fresh))
	until := e.clk.Now().Add(RotationOverlap).UnixMilli()
	if _, err := e.p.SQL.Exec(ctx, `UPDATE webhooks SET secret_sealed = ?, prev_sealed = secret_sealed, prev_until = ? WHERE tenant_id = ? AND id = ?`, sealed, until, "t1", "wh_a"); err != nil {
		t.Fatal(err)
	}
	e.emit(t, "t1", "c_1", 1)
	e.run(t)
	e.clk.Advance(RotationOverlap + time.Second)
	e.emit(t, "t1", "c_1", 2)
	e.run(t)
	got := e.received()
	if len(got) != 2 {
		t.Fatalf("%d deliveries", len(got))
	}
	if n := len(strings.Fields(got[0].header.Get("webhook-signature"))); n != 2 || !verify(t, old, got[0]) || !verify(t, fresh, got[0]) {
		t.Fatalf("during the overlap: %d signatures, old ok %v, new ok %v", n, verify(t, old, got[0]), verify(t, fresh, got[0]))
	}
	if n := len(strings.Fields(got[1].header.Get("webhook-signature"))); n != 1 || verify(t, old, got[1]) || !verify(t, fresh, got[1]) {
		t.Fatalf("after the overlap: %d signatures, old still verifies: %v", n, verify(t, old, got[1]))
	}
}

func attempts(t *testing.T, p storage.Platform, job string) []any {
	t.Helper()
	rows, err := p.SQL.Query(context.Background(), `SELECT response_code FROM webhook_attempts WHERE tenant_id = ? AND job_id = ? ORDER BY attempt`, "t1", job)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, v := range rows.Values {
		out = append(out, v[0])
	}
	return out
}

// TestFailuresRetryDieAndDisable: 500s are retried with backoff until the
// delivery is dead; five dead deliveries over more than a day disable the
// subscription with an audited notice; a redirect is a failure, not
// followed.
func TestFailuresRetryDieAndDisable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.subscribe(t, "t1", "wh_a")
	e.reply = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	for seq := int64(1); seq <= DisableAfterDead; seq++ {
		e.emit(t, "t1", "c_1", seq)
		for range MaxAttempts {
			e.run(t)
			e.clk.Advance(DeliveryPolicy.Cap + time.Second)
		}
	}
	codes := attempts(t, e.p, "msg_a_c_1_1")
	if len(codes) != MaxAttempts || codes[0] != int64(500) {
		t.Fatalf("attempt codes %v", codes)
	}
	rows, _ := e.p.SQL.Query(ctx, `SELECT state, COUNT(*) FROM jobs WHERE tenant_id = ? AND kind = ? GROUP BY state`, "t1", KindDeliver)
	if rows.Len() != 1 || rows.Values[0][0] != "dead" {
		t.Fatalf("job states %v", rows.Values)
	}
	// The notice raised below is queued for mailing in the same batch.
	rows, _ = e.p.SQL.Query(ctx, `SELECT state FROM jobs WHERE tenant_id = ? AND kind = 'notice.deliver'`, "t1")
	if rows.Len() != 1 || rows.Values[0][0] != "queued" {
		t.Fatalf("notice delivery jobs %v", rows.Values)
	}
	rows, _ = e.p.SQL.Query(ctx, `SELECT enabled, disabled_reason FROM webhooks WHERE tenant_id = ? AND id = ?`, "t1", "wh_a")
	if rows.Values[0][0] != int64(0) {
		t.Fatalf("still enabled after %d dead deliveries: %v", DisableAfterDead, rows.Values)
	}
	rows, _ = e.p.SQL.Query(ctx, `SELECT kind FROM security_notices WHERE tenant_id = ?`, "t1")
	if rows.Len() != 1 || rows.Values[0][0] != "webhook.disabled" {
		t.Fatalf("notices %v", rows.Values)
	}
	rows, _ = e.p.SQL.Query(ctx, `SELECT actor_type FROM audit_events WHERE tenant_id = ? AND action = 'webhook.disabled'`, "t1")
	if rows.Len() != 1 {
		t.Fatalf("no audit event for the disabling")
	}
	// A disabled subscription gets no more deliveries.
	n := len(e.received())
	e.emit(t, "t1", "c_1", 99)
	e.run(t)
	if len(e.received()) != n {
		t.Fatal("a disabled subscription was delivered to")
	}
}

func TestRedirectIsAFailure(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "t1", "wh_a")
	e.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
			return
		}
		w.WriteHeader(204)
	}
	e.emit(t, "t1", "c_1", 1)
	if res := e.run(t); res.Retried != 1 {
		t.Fatalf("%+v", res)
	}
	if got := e.received(); len(got) != 1 {
		t.Fatalf("the redirect was followed: %d requests", len(got))
	}
	if codes := attempts(t, e.p, "msg_a_c_1_1"); len(codes) != 1 || codes[0] != int64(302) {
		t.Fatalf("codes %v", codes)
	}
}

func TestGoneEventIsDeadAtOnce(t *testing.T) {
	e := newEnv(t)
	e.subscribe(t, "t1", "wh_a")
	e.emit(t, "t1", "c_gone", 1)
	if res := e.run(t); res.Dead != 1 || len(e.received()) != 0 {
		t.Fatalf("%+v", res)
	}
}
