//go:build !windows

package workerd

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/webhookrecv"
	"pommy.ai/edge/tests/workerd/wrangler"
)

// TestEdgeJobs runs background jobs in real workerd, the way the edge runs
// them: the cron trigger (wrangler dev's --test-scheduled route) calls
// handlers.Scheduled in the worker. A webhook subscribed to message.created
// on the reference standardwebhooks receiver (tests/webhookrecv) gets a
// message's delivery with a signature the library verifies, and the
// delivery log says delivered with the receiver's 200; a receiver that
// answers 500 leaves the delivery pending with its next attempt later, and
// the retry after it delivers; a redirect is logged as the answer, a
// failure, and never followed. A snoozed conversation's wake-up job opens
// it again. The receiver is on loopback over http, which only a test build
// with POMMY_TEST_WEBHOOK_ALLOW lets a subscription name.
func TestEdgeJobs(t *testing.T) {
	root, build := testWorker(t)
	rc := webhookrecv.Start(t, root)
	// An endpoint that redirects to another loopback server: the delivery
	// must log the 302 as a failure and never reach the target.
	var targetHits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/latest/meta-data", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	redirectAddr := redirect.Listener.Addr().String()
	w := start(t, wrangler.Options{Root: root, Name: "jobs", SkipBuild: true, BuildDir: build,
		Vars: []string{"POMMY_TEST_ROUTES:1", "POMMY_TEST_WEBHOOK_ALLOW:" + rc.Addr + "," + redirectAddr}})
	c := &apitest.Client{Base: w.URL, HTTP: &http.Client{Timeout: 2 * time.Minute}}
	_, key := c.Tenant(t, "Edge Jobs Co")
	auth := []string{"Authorization", "Bearer " + key}
	idem := func(k string) []string { return append([]string{"Idempotency-Key", k}, auth...) }

	// The receiver's loopback address is honoured as a test destination;
	// another loopback port is not.
	c.Do(t, "POST", "/v1/webhooks", map[string]any{"url": "http://127.0.0.1:1/hook", "events": []string{"message.created"}}, auth...).Expect(t, 400)
	sub := c.Do(t, "POST", "/v1/webhooks", map[string]any{"url": "http://" + rc.Addr + "/hook", "events": []string{"message.created"}}, auth...).Expect(t, 201).JSON(t)
	hook, secret := sub["id"].(string), sub["secret"].(string)
	rc.SetSecrets(t, secret)
	rc.SetStatus(t, http.StatusOK)

	contact := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Edge Visitor"}, auth...).Expect(t, 201).JSON(t)["id"].(string)
	conv := c.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": contact}, auth...).Expect(t, 201).JSON(t)["id"].(string)
	send := func(k, text string) (id string, seq int64) {
		m := c.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": text}, idem(k)...).Expect(t, 201).JSON(t)
		return m["id"].(string), int64(m["seq"].(float64))
	}

	t.Run("delivered", func(t *testing.T) {
		msg, seq := send("edge-jobs-1", "hello from the edge")
		d := untilDelivery(t, w, c, auth, hook, seq, func(d delivery) bool { return d.Status != "pending" })
		if d.Status != "delivered" || d.Attempts != 1 || d.ResponseCode == nil || *d.ResponseCode != 200 || d.EventType != "message.created" || d.ConversationID != conv {
			t.Fatalf("delivery log after the cron run: %+v, want delivered once with code 200", d)
		}
		got := rc.Received(t)
		if len(got) != 1 {
			t.Fatalf("the receiver got %d requests, want 1: %+v", len(got), got)
		}
		h := got[0]
		if !h.Verified || h.Type != "message.created" || h.ID != d.ID || h.Signatures != 1 {
			t.Fatalf("the reference library's view of the delivery: %+v (log %+v)", h, d)
		}
		var data struct {
			ID             string `json:"id"`
			ConversationID string `json:"conversation_id"`
			Text           string `json:"text"`
		}
		if err := json.Unmarshal(h.Data, &data); err != nil || data.ConversationID != conv || !strings.Contains(string(h.Data), msg) {
			t.Fatalf("delivered data %s: want the message %s of %s (%v)", h.Data, msg, conv, err)
		}
	})

	t.Run("retried", func(t *testing.T) {
		rc.SetStatus(t, http.StatusInternalServerError)
		_, seq := send("edge-jobs-2", "the receiver is down")
		d := untilDelivery(t, w, c, auth, hook, seq, func(d delivery) bool { return d.Attempts > 0 })
		if d.Status != "pending" || d.Attempts != 1 || d.ResponseCode == nil || *d.ResponseCode != 500 || d.LastError == nil ||
			!strings.Contains(*d.LastError, "500") || d.NextAttempt == nil {
			t.Fatalf("delivery log after a 500: %+v, want pending after 1 attempt with code 500 and a next attempt", d)
		}
		next, err1 := time.Parse(time.RFC3339Nano, *d.NextAttempt)
		updated, err2 := time.Parse(time.RFC3339Nano, d.UpdatedAt)
		if err1 != nil || err2 != nil || !next.After(updated) {
			t.Fatalf("next attempt %s is not after the failed attempt's update %s (%v, %v)", *d.NextAttempt, d.UpdatedAt, err1, err2)
		}
		if got := rc.Received(t); len(got) != 2 || !got[1].Verified || got[1].Status != 500 {
			t.Fatalf("the receiver's log: %+v, want a second, verified delivery answered 500", got)
		}
		// The retry: once its time has come, a cron run delivers it.
		rc.SetStatus(t, http.StatusOK)
		time.Sleep(time.Until(next) + 500*time.Millisecond)
		d = untilDelivery(t, w, c, auth, hook, seq, func(d delivery) bool { return d.Attempts > 1 })
		if d.Status != "delivered" || d.Attempts != 2 || d.ResponseCode == nil || *d.ResponseCode != 200 {
			t.Fatalf("delivery log after the retry: %+v, want delivered on attempt 2 with code 200", d)
		}
	})

	t.Run("redirect-not-followed", func(t *testing.T) {
		r := c.Do(t, "POST", "/v1/webhooks", map[string]any{"url": redirect.URL + "/hook", "events": []string{"message.created"}}, auth...).Expect(t, 201).JSON(t)
		_, seq := send("edge-jobs-3", "to a redirecting endpoint")
		d := untilDelivery(t, w, c, auth, r["id"].(string), seq, func(d delivery) bool { return d.Attempts > 0 })
		if d.Status != "pending" || d.ResponseCode == nil || *d.ResponseCode != http.StatusFound || d.LastError == nil || !strings.Contains(*d.LastError, "redirect") {
			t.Fatalf("delivery to a redirecting endpoint: %+v, want pending with code 302 and a redirect error", d)
		}
		if n := targetHits.Load(); n != 0 {
			t.Fatalf("the redirect was followed %d times", n)
		}
	})

	t.Run("snooze-wake", func(t *testing.T) {
		// The worker has no test clock: snooze until shortly ahead, wait
		// for that time, then run due jobs (only the jobs: Scheduled's
		// sweep would wake it too, and would hide a broken job).
		until := time.Now().Add(3 * time.Second).UTC()
		cv := c.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"status": "snoozed", "snoozed_until": until.Format(time.RFC3339Nano)}, auth...).Expect(t, 200).JSON(t)
		if cv["status"] != "snoozed" {
			t.Fatalf("after snoozing: %v", cv)
		}
		time.Sleep(time.Until(until) + 500*time.Millisecond)
		deadline := time.Now().Add(time.Minute)
		for {
			var ran struct{ Taken int }
			if err := json.Unmarshal(c.Do(t, "POST", "/__test/jobs/run", nil).Expect(t, 200).Body, &ran); err != nil {
				t.Fatal(err)
			}
			cv = c.Do(t, "GET", "/v1/conversations/"+conv, nil, auth...).Expect(t, 200).JSON(t)
			if cv["status"] == "open" {
				if cv["snoozed_until"] != nil {
					t.Errorf("woken conversation still has snoozed_until %v", cv["snoozed_until"])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the snooze's wake-up job never opened the conversation: %v", cv)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
}

// delivery is an entry of GET /v1/webhooks/{id}/deliveries.
type delivery struct {
	ID             string  `json:"id"`
	EventType      string  `json:"event_type"`
	ConversationID string  `json:"conversation_id"`
	Seq            int64   `json:"seq"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	ResponseCode   *int    `json:"response_code"`
	LastError      *string `json:"last_error"`
	NextAttempt    *string `json:"next_attempt_at"`
	UpdatedAt      string  `json:"updated_at"`
}

// untilDelivery fires the cron trigger and reads the delivery log until the
// delivery of event seq satisfies done. The bound only keeps a broken run
// from hanging the suite; nothing about timing is asserted.
func untilDelivery(t *testing.T, w *wrangler.Dev, c *apitest.Client, auth []string, hook string, seq int64, done func(delivery) bool) delivery {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, body := get(t, w, "/__scheduled?cron=*+*+*+*+*", time.Minute)
		if status != http.StatusOK {
			t.Fatalf("scheduled run: %d %s", status, body)
		}
		var log struct{ Deliveries []delivery }
		if err := json.Unmarshal(c.Do(t, "GET", "/v1/webhooks/"+hook+"/deliveries", nil, auth...).Expect(t, 200).Body, &log); err != nil {
			t.Fatal(err)
		}
		var found *delivery
		for i := range log.Deliveries {
			if log.Deliveries[i].Seq == seq {
				found = &log.Deliveries[i]
			}
		}
		if found != nil && done(*found) {
			return *found
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery of event %d: %+v after the cron runs (log %+v)", seq, found, log.Deliveries)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
