package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/webhookrecv"
	"pommy.ai/edge/wasm/host/local"
)

// startReceiver starts the reference standardwebhooks receiver
// (tests/webhookrecv).
func startReceiver(t *testing.T) *webhookrecv.Receiver {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return webhookrecv.Start(t, root)
}

// waitFor polls cond until it holds; the bound only keeps a broken run
// from hanging (no timing is asserted).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func emit(t *testing.T, h *home, tenant, event, conv string, seq int64) int {
	t.Helper()
	body := fmt.Sprintf(`{"tenant":%q,"event_type":%q,"conversation_id":%q,"seq":%d,"data":{"conversation_id":%q,"seq":%d}}`, tenant, event, conv, seq, conv, seq)
	r := h.do(t, "POST", "/__test/webhooks/emit", strings.NewReader(body), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("emit: %v", r)
	}
	var out struct{ Enqueued int }
	json.Unmarshal(r.body, &out)
	return out.Enqueued
}

func api(t *testing.T, h *home, key, method, path string, body any) response {
	t.Helper()
	var rd *bytes.Reader
	hdr := []string{"Authorization", "Bearer " + key}
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
		hdr = append(hdr, "Content-Type", "application/json")
		return h.do(t, method, path, rd, hdr...)
	}
	return h.do(t, method, path, nil, hdr...)
}

type subscription struct {
	ID      string `json:"id"`
	Secret  string `json:"secret"`
	Enabled bool   `json:"enabled"`
}

type deliveryLog struct {
	Deliveries []struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		Attempts     int    `json:"attempts"`
		ResponseCode *int   `json:"response_code"`
		LastError    string `json:"last_error"`
	} `json:"deliveries"`
}

func deliveries(t *testing.T, h *home, key, id string) deliveryLog {
	t.Helper()
	r := api(t, h, key, "GET", "/v1/webhooks/"+id+"/deliveries", nil)
	if r.status != 200 {
		t.Fatalf("deliveries: %v", r)
	}
	var l deliveryLog
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWebhooksReferenceReceiver: a subscription's deliveries, made by the
// host's job workers from events enqueued with Fanout, are verified by the
// reference standardwebhooks library; after a rotation both secrets
// verify; the receiver refuses a replay older than 5 minutes.
func TestWebhooksReferenceReceiver(t *testing.T) {
	rc := startReceiver(t)
	h := startHome(t, homeOptions{webhookAllow: []string{rc.Addr}, runJobs: true})
	tenant, key := (&apitest.Client{Base: h.url}).Tenant(t, "Hooks")
	_, otherKey := (&apitest.Client{Base: h.url}).Tenant(t, "Other")

	for _, bad := range []map[string]any{
		{"url": "http://hooks.example.com/x", "events": []string{"message.created"}},
		{"url": "https://10.1.2.3/x", "events": []string{"message.created"}},
		{"url": "https://127.0.0.1:1/x", "events": []string{"message.created"}}, // loopback, not the test allow-list's
		{"url": "https://hooks.example.com/x", "events": []string{"message.deleted"}},
		{"url": "https://hooks.example.com/x", "events": []string{}},
	} {
		if r := api(t, h, key, "POST", "/v1/webhooks", bad); r.status != 400 {
			t.Errorf("subscribing %v: %v, want 400", bad, r)
		}
	}
	r := api(t, h, key, "POST", "/v1/webhooks", map[string]any{"url": "http://" + rc.Addr + "/hook", "events": []string{"message.created", "conversation.created"}})
	if r.status != 201 {
		t.Fatalf("subscribe: %v", r)
	}
	var sub subscription
	json.Unmarshal(r.body, &sub)
	if !strings.HasPrefix(sub.Secret, "whsec_") {
		t.Fatalf("no secret: %s", r.body)
	}
	if g := api(t, h, key, "GET", "/v1/webhooks/"+sub.ID, nil); g.status != 200 || strings.Contains(string(g.body), "whsec_") {
		t.Fatalf("get shows the secret again or fails: %v", g)
	}
	if g := api(t, h, otherKey, "GET", "/v1/webhooks/"+sub.ID, nil); g.status != 404 {
		t.Fatalf("another tenant read the subscription: %v", g)
	}
	rc.SetSecrets(t, sub.Secret)

	if n := emit(t, h, tenant, "conversation.created", "tc_1", 1); n != 1 {
		t.Fatalf("enqueued %d", n)
	}
	emit(t, h, tenant, "message.created", "tc_1", 2)
	emit(t, h, tenant, "conversation.status_changed", "tc_1", 3) // not subscribed
	waitFor(t, "two deliveries", func() bool { return len(rc.Received(t)) >= 2 })
	got := rc.Received(t)
	for _, g := range got {
		if !g.Verified {
			t.Fatalf("the reference library refused a delivery: %+v", g)
		}
	}
	if len(got) != 2 || got[0].Type == got[1].Type {
		t.Fatalf("received %+v", got)
	}
	l := deliveries(t, h, key, sub.ID)
	if len(l.Deliveries) != 2 || l.Deliveries[0].Status != "delivered" || *l.Deliveries[0].ResponseCode != 204 {
		t.Fatalf("delivery log %+v", l)
	}

	// Rotation: the receiver is configured with both secrets and requires
	// each to verify.
	r = api(t, h, key, "POST", "/v1/webhooks/"+sub.ID+"/rotate", nil)
	var rot subscription
	json.Unmarshal(r.body, &rot)
	if r.status != 200 || rot.Secret == sub.Secret || !strings.HasPrefix(rot.Secret, "whsec_") {
		t.Fatalf("rotate: %v", r)
	}
	rc.SetSecrets(t, rot.Secret, sub.Secret)
	emit(t, h, tenant, "message.created", "tc_1", 4)
	waitFor(t, "the delivery after the rotation", func() bool { return len(rc.Received(t)) >= 3 })
	if g := rc.Received(t)[2]; !g.Verified || g.Signatures != 2 {
		t.Fatalf("after rotation: %+v", g)
	}

	// A replay of a correctly signed delivery whose timestamp is 6 minutes
	// old is refused by the receiver's library.
	secretKey, _ := webhooks.SecretKey(rot.Secret)
	body := []byte(`{"type":"message.created","timestamp":"2026-01-01T00:00:00Z","data":{}}`)
	old := time.Now().Add(-6 * time.Minute).Unix()
	req, _ := http.NewRequest("POST", "http://"+rc.Addr+"/hook", bytes.NewReader(body))
	req.Header.Set("webhook-id", "msg_replay")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(old, 10))
	req.Header.Set("webhook-signature", webhooks.Sign(secretKey, "msg_replay", old, body))
	rc.SetSecrets(t, rot.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("a 6-minute-old delivery was accepted: %d", resp.StatusCode)
	}

	// Disabled: no delivery is enqueued; deleted: gone.
	if r := api(t, h, key, "PATCH", "/v1/webhooks/"+sub.ID, map[string]any{"enabled": false}); r.status != 200 {
		t.Fatalf("disable: %v", r)
	}
	if n := emit(t, h, tenant, "message.created", "tc_1", 5); n != 0 {
		t.Fatalf("a disabled subscription got %d jobs", n)
	}
	if r := api(t, h, key, "PATCH", "/v1/webhooks/"+sub.ID, map[string]any{"enabled": false, "bogus": 1}); r.status != 400 {
		t.Fatalf("unknown key: %v", r)
	}
	if r := api(t, h, key, "DELETE", "/v1/webhooks/"+sub.ID, nil); r.status != 204 {
		t.Fatalf("delete: %v", r)
	}
	if r := api(t, h, key, "GET", "/v1/webhooks/"+sub.ID, nil); r.status != 404 {
		t.Fatalf("after delete: %v", r)
	}
	// The limit of subscriptions per tenant: the one past it is refused
	// and nothing is stored.
	for i := 0; i < webhooks.MaxSubscriptions; i++ {
		r := api(t, h, key, "POST", "/v1/webhooks", map[string]any{"url": fmt.Sprintf("https://hooks.example.com/%d", i), "events": []string{"message.created"}})
		if r.status != 201 {
			t.Fatalf("subscription %d: %v", i+1, r)
		}
	}
	r = api(t, h, key, "POST", "/v1/webhooks", map[string]any{"url": "https://hooks.example.com/over", "events": []string{"message.created"}})
	if r.status != 409 || r.errorCode() != "too_many_webhooks" {
		t.Fatalf("subscription past the limit: %v", r)
	}
	var list struct{ Webhooks []subscription }
	json.Unmarshal(api(t, h, key, "GET", "/v1/webhooks", nil).body, &list)
	if len(list.Webhooks) != webhooks.MaxSubscriptions {
		t.Fatalf("%d subscriptions stored", len(list.Webhooks))
	}
	if r := api(t, h, key, "PATCH", "/v1/webhooks/"+list.Webhooks[0].ID, map[string]any{"description": strings.Repeat("d", 201)}); r.status != 400 {
		t.Fatalf("description past its limit: %v", r)
	}
}

// TestWebhookFaults: an endpoint that hangs is cut at the delivery timeout
// and retried while other deliveries and requests go on; one that answers
// 500 is retried with backoff until its delivery is dead, the log showing
// each code; a redirect to a private address is a failure, not followed.
func TestWebhookFaults(t *testing.T) {
	var hung atomic.Int32
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	var fastGot atomic.Int32
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fastGot.Add(1); w.WriteHeader(204) }))
	defer fast.Close()
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer fail.Close()
	var metadataHit atomic.Int32
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { metadataHit.Add(1) }))
	defer metadata.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, metadata.URL+"/latest/meta-data", http.StatusFound)
	}))
	defer redirect.Close()
	addr := func(s *httptest.Server) string { return s.Listener.Addr().String() }

	clk := storagetest.NewClock(time.Now().UTC())
	h := startHome(t, homeOptions{
		webhookAllow: []string{addr(hang), addr(fast), addr(fail), addr(redirect)},
		runJobs:      true,
		local:        func(c *local.Config) { c.Clock = clk },
	})
	tenant, key := (&apitest.Client{Base: h.url}).Tenant(t, "Faults")
	subscribe := func(s *httptest.Server, event string) string {
		r := api(t, h, key, "POST", "/v1/webhooks", map[string]any{"url": s.URL + "/hook", "events": []string{event}})
		if r.status != 201 {
			t.Fatalf("subscribe: %v", r)
		}
		var sub subscription
		json.Unmarshal(r.body, &sub)
		return sub.ID
	}
	hangID := subscribe(hang, "conversation.assigned")
	fastID := subscribe(fast, "message.created")
	failID := subscribe(fail, "conversation.status_changed")
	redirID := subscribe(redirect, "conversation.created")

	emit(t, h, tenant, "conversation.assigned", "tc_h", 1)
	waitFor(t, "the hanging endpoint to be called", func() bool { return hung.Load() > 0 })
	// While one job worker waits on the hanging endpoint, the other
	// delivers, and requests are served.
	emit(t, h, tenant, "message.created", "tc_f", 1)
	waitFor(t, "the fast delivery", func() bool { return fastGot.Load() == 1 })
	if r := h.get(t, "/healthz"); r.status != 200 {
		t.Fatalf("healthz while a delivery hangs: %v", r)
	}
	waitFor(t, "the hanging delivery to time out", func() bool {
		l := deliveries(t, h, key, hangID)
		return len(l.Deliveries) == 1 && l.Deliveries[0].Status == "pending" && l.Deliveries[0].Attempts == 1
	})
	if l := deliveries(t, h, key, hangID); !strings.Contains(l.Deliveries[0].LastError, "no answer within") || l.Deliveries[0].ResponseCode != nil {
		t.Fatalf("hanging endpoint's log: %+v", l)
	}
	if l := deliveries(t, h, key, fastID); len(l.Deliveries) != 1 || l.Deliveries[0].Status != "delivered" {
		t.Fatalf("fast endpoint's log: %+v", l)
	}

	// 500s: each attempt is retried after a backoff; the clock moves past
	// the longest one between attempts.
	emit(t, h, tenant, "conversation.status_changed", "tc_s", 1)
	for i := 1; i <= webhooks.MaxAttempts; i++ {
		waitFor(t, fmt.Sprintf("attempt %d", i), func() bool {
			l := deliveries(t, h, key, failID)
			return len(l.Deliveries) == 1 && l.Deliveries[0].Attempts == i && l.Deliveries[0].Status != "sending"
		})
		clk.Advance(webhooks.DeliveryPolicy.Cap + time.Second)
	}
	l := deliveries(t, h, key, failID)
	if d := l.Deliveries[0]; d.Status != "failed" || d.ResponseCode == nil || *d.ResponseCode != 500 || d.Attempts != webhooks.MaxAttempts {
		t.Fatalf("after %d failures: %+v", webhooks.MaxAttempts, d)
	}

	// A redirect is the answer: logged as 302, never followed.
	emit(t, h, tenant, "conversation.created", "tc_r", 1)
	waitFor(t, "the redirected delivery's first attempt", func() bool {
		l := deliveries(t, h, key, redirID)
		return len(l.Deliveries) == 1 && l.Deliveries[0].Attempts == 1 && l.Deliveries[0].Status == "pending"
	})
	if l := deliveries(t, h, key, redirID); *l.Deliveries[0].ResponseCode != 302 || metadataHit.Load() != 0 {
		t.Fatalf("redirect: %+v, followed %d times", l, metadataHit.Load())
	}
}
