package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/wasm/host/local"
)

// switchable is a webhook receiver that answers fail (500) until told to
// accept, and records the webhook-id of every request.
type switchable struct {
	srv    *httptest.Server
	accept atomic.Bool
	mu     sync.Mutex
	ids    []string
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ids = append(s.ids, r.Header.Get("webhook-id"))
		s.mu.Unlock()
		if s.accept.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *switchable) addr() string { return s.srv.Listener.Addr().String() }

func (s *switchable) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

type jobList struct {
	Jobs []struct {
		ID          string  `json:"id"`
		Kind        string  `json:"kind"`
		Ref         *string `json:"ref"`
		State       string  `json:"state"`
		Attempts    int     `json:"attempts"`
		MaxAttempts int     `json:"max_attempts"`
		LastError   *string `json:"last_error"`
	} `json:"jobs"`
	Next string `json:"next"`
}

func listJobs(t *testing.T, o *apitest.Session, query string) jobList {
	t.Helper()
	var l jobList
	decode(t, o.Do(t, "GET", "/v1/jobs?"+query, nil).Expect(t, 200).Body, &l)
	return l
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// jobHome is a home running its job workers on a clock the test moves,
// with a fresh tenant's owner and API key; every exchange through c is
// checked against docs/openapi.yaml. The clock moves days, past the
// session's absolute timeout: signIn gives a fresh session of the owner.
func jobHome(t *testing.T, allow ...string) (h *home, clk *storagetest.Clock, tenant string, signIn func() *apitest.Session, key string) {
	clk = storagetest.NewClock(time.Now().UTC())
	h = startHome(t, homeOptions{webhookAllow: allow, runJobs: true, local: func(c *local.Config) { c.Clock = clk }})
	c := &apitest.Client{Base: h.url}
	openapi.Attach(t, c)
	o := c.Signup(t, "Jobs")
	return h, clk, o.Tenant, func() *apitest.Session { return c.LoginSession(t, o.Email) }, o.NewKey(t, apitest.AllScopes...)
}

// driveToDead moves the clock past each backoff until the subscription's
// n newest deliveries have used their attempts (the receiver answers 500).
func driveToDead(t *testing.T, h *home, clk *storagetest.Clock, key, sub string, n int) {
	t.Helper()
	for i := 1; i <= webhooks.MaxAttempts; i++ {
		waitFor(t, fmt.Sprintf("attempt %d of %d deliveries", i, n), func() bool {
			l := deliveries(t, h, key, sub)
			if len(l.Deliveries) < n {
				return false
			}
			for _, d := range l.Deliveries[:n] {
				if d.Attempts != i || d.Status == "sending" {
					return false
				}
			}
			return true
		})
		clk.Advance(webhooks.DeliveryPolicy.Cap + time.Second)
	}
	for _, d := range deliveries(t, h, key, sub).Deliveries[:n] {
		if d.Status != "failed" {
			t.Fatalf("after %d attempts a delivery is %s", webhooks.MaxAttempts, d.Status)
		}
	}
}

// TestDeadDeliveryRetried: a webhook delivery that keeps getting 500 goes
// dead through the real guest's job workers, is listed by GET
// /v1/jobs?state=dead with what it works for and why it died (never its
// payload), and once the receiver answers again POST /v1/jobs/{id}/retry
// delivers it, with the same webhook-id, and the delivery log shows the
// success. The retry is audited and cannot be repeated.
func TestDeadDeliveryRetried(t *testing.T) {
	rc := newSwitchable(t)
	h, clk, tenant, signIn, key := jobHome(t, rc.addr())
	sub := subscribeMessages(t, h, key, rc.srv.URL+"/hook")
	emit(t, h, tenant, "message.created", "tc_dead", 1)
	driveToDead(t, h, clk, key, sub.ID, 1)
	o := signIn()

	dead := listJobs(t, o, "state=dead")
	if len(dead.Jobs) != 1 {
		t.Fatalf("dead jobs: %+v", dead)
	}
	j := dead.Jobs[0]
	if j.Kind != webhooks.KindDeliver || j.Ref == nil || *j.Ref != sub.ID || j.Attempts != webhooks.MaxAttempts ||
		j.MaxAttempts != webhooks.MaxAttempts || j.LastError == nil || !strings.Contains(*j.LastError, "500") {
		t.Fatalf("the dead delivery as listed: %+v", j)
	}
	if l := listJobs(t, o, "state=dead&kind=conversation.wake"); len(l.Jobs) != 0 {
		t.Fatalf("kind filter: %+v", l)
	}
	// The jobs scope is what an API key needs; the list never shows the
	// payload ({webhook_id, event_type, conversation_id, seq}).
	if r := api(t, h, key, "GET", "/v1/jobs?state=dead", nil); r.status != 200 || strings.Contains(string(r.body), "payload") || strings.Contains(string(r.body), "message.created") {
		t.Fatalf("list by key: %v", r)
	}
	before := len(rc.received())

	rc.accept.Store(true)
	rt := o.Do(t, "POST", "/v1/jobs/"+j.ID+"/retry", nil).Expect(t, 200).JSON(t)
	if rt["state"] != "queued" || rt["attempts"] != float64(0) {
		t.Fatalf("retry: %v", rt)
	}
	waitFor(t, "the retried delivery", func() bool {
		l := deliveries(t, h, key, sub.ID)
		return l.Deliveries[0].Status == "delivered"
	})
	d := deliveries(t, h, key, sub.ID).Deliveries[0]
	if d.Attempts != 1 || d.ResponseCode == nil || *d.ResponseCode != 204 {
		t.Fatalf("the delivery log after the retry: %+v", d)
	}
	got := rc.received()
	if len(got) != before+1 || got[len(got)-1] != j.ID || got[0] != j.ID {
		t.Fatalf("the receiver saw webhook-ids %v; want %d deliveries, all %s", got, before+1, j.ID)
	}
	if l := listJobs(t, o, "state=done"); len(l.Jobs) != 1 || l.Jobs[0].ID != j.ID || l.Jobs[0].LastError != nil {
		t.Fatalf("done jobs: %+v", l)
	}
	// Done is not dead: a second retry is refused and changes nothing.
	if r := o.Do(t, "POST", "/v1/jobs/"+j.ID+"/retry", nil); r.Status != 409 || !strings.Contains(string(r.Body), "job_not_dead") {
		t.Fatalf("retry of a done job: %d %s", r.Status, r.Body)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=job.retried", nil).Expect(t, 200).JSON(t)["events"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["target"] != "job:"+j.ID {
		t.Fatalf("audit: %v", ev)
	}
}

// TestWebhookAutoDisabled: the disable rule through the real guest, its
// count crossed. Four deliveries die (12 attempts each against a 500) over
// days of the fake clock and the subscription stays enabled; the fifth
// dies and it is disabled, with its reason, an audit event
// webhook.disabled and a security notice the tenant's admins read in GET
// /v1/audit/notices; a disabled subscription gets no new deliveries.
func TestWebhookAutoDisabled(t *testing.T) {
	rc := newSwitchable(t)
	h, clk, tenant, signIn, key := jobHome(t, rc.addr())
	sub := subscribeMessages(t, h, key, rc.srv.URL+"/hook")
	if webhooks.MaxAttempts*(webhooks.DeliveryPolicy.Cap+time.Second) < webhooks.DisableAfter {
		t.Fatal("one delivery's attempts span less than the rule's day here; the test would prove nothing")
	}
	var got struct {
		Enabled        bool   `json:"enabled"`
		DisabledReason string `json:"disabled_reason"`
	}
	read := func() {
		decode(t, signIn().Do(t, "GET", "/v1/webhooks/"+sub.ID, nil).Expect(t, 200).Body, &got)
	}
	for seq := int64(1); seq < webhooks.DisableAfterDead; seq++ {
		if n := emit(t, h, tenant, "message.created", "tc_off", seq); n != 1 {
			t.Fatalf("event %d enqueued %d deliveries", seq, n)
		}
	}
	driveToDead(t, h, clk, key, sub.ID, webhooks.DisableAfterDead-1)
	// Four dead deliveries, days apart from the first failure: still
	// enabled (and the next event is still fanned out to it, which only
	// an enabled subscription gets).
	if read(); !got.Enabled {
		t.Fatalf("disabled after %d dead deliveries: %q", webhooks.DisableAfterDead-1, got.DisabledReason)
	}

	if n := emit(t, h, tenant, "message.created", "tc_off", webhooks.DisableAfterDead); n != 1 {
		t.Fatalf("the last event enqueued %d deliveries", n)
	}
	driveToDead(t, h, clk, key, sub.ID, 1)
	waitFor(t, "the subscription to be disabled", func() bool { read(); return !got.Enabled })
	o := signIn()
	if !strings.Contains(got.DisabledReason, fmt.Sprintf("%d deliveries in a row", webhooks.DisableAfterDead)) {
		t.Fatalf("disabled reason %q", got.DisabledReason)
	}
	var notices struct {
		Notices []struct {
			Kind, Message string
		} `json:"notices"`
	}
	decode(t, o.Do(t, "GET", "/v1/audit/notices", nil).Expect(t, 200).Body, &notices)
	found := false
	for _, n := range notices.Notices {
		if n.Kind == "webhook.disabled" && strings.Contains(n.Message, rc.srv.URL) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no webhook.disabled notice naming the endpoint: %+v", notices)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=webhook.disabled", nil).Expect(t, 200).JSON(t)["events"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["target"] != "webhook:"+sub.ID {
		t.Fatalf("audit: %v", ev)
	}
	if l := listJobs(t, o, "state=dead&kind="+webhooks.KindDeliver); len(l.Jobs) != webhooks.DisableAfterDead {
		t.Fatalf("dead deliveries listed: %d", len(l.Jobs))
	}
	if n := emit(t, h, tenant, "message.created", "tc_off", 99); n != 0 {
		t.Fatalf("a disabled subscription got %d new deliveries", n)
	}
}

// subscribeMessages subscribes url to message.created.
func subscribeMessages(t *testing.T, h *home, key, url string) subscription {
	t.Helper()
	r := api(t, h, key, "POST", "/v1/webhooks", map[string]any{"url": url, "events": []string{"message.created"}})
	if r.status != 201 {
		t.Fatalf("subscribe: %v", r)
	}
	var sub subscription
	decode(t, r.body, &sub)
	return sub
}
