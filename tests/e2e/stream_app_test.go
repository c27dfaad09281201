package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/streamclient"
)

// TestConversationStreamsThroughTheHub: apitest.ConversationStreams in
// the local home, where the hub holds the streams without an instance.
// The same scenario runs at the edge (tests/workerd, "conversation").
func TestConversationStreamsThroughTheHub(t *testing.T) {
	h := startHome(t, homeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := &apitest.Client{Base: h.url, HTTP: &http.Client{Timeout: time.Minute}}
	apitest.ConversationStreams(t, ctx, api, "local", func(t *testing.T) {
		h.waitHeld(t, 2)
		if st := h.host.Stats(); st.Busy != 0 {
			t.Errorf("%d instances busy while two streams wait", st.Busy)
		}
	})
}

// TestStreamLatency logs the delivery latency through the hub (append ->
// event on a held SSE stream), as tests/workerd does for the edge; make
// bench reports it. Nothing is asserted about it.
func TestStreamLatency(t *testing.T) {
	h := startHome(t, homeOptions{})
	lat, err := streamclient.MeasureLatency(context.Background(), &http.Client{}, h.url, "t/latency/c/1", 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local delivery latency, append -> SSE event through the hub: %v", lat)
}

// TestStreamPollsSpendNoRateLimit: a viewer whose API key allows three
// requests a minute keeps its conversation stream through a burst of
// messages sent by someone else. The hub's re-polls are the viewer's
// request run again on each wake-up; were they counted against its key,
// the fourth would be refused and the stream would end with rate_limited.
func TestStreamPollsSpendNoRateLimit(t *testing.T) {
	h := startHome(t, homeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := &apitest.Client{Base: h.url, HTTP: &http.Client{Timeout: time.Minute}}
	o := api.Signup(t, "Busy Conversation Co")
	viewer := o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "slow viewer",
		"scopes": []string{"conversations:read"}, "rate_limit_per_minute": 3}).Expect(t, 201).JSON(t)["key"].(string)
	sender := []string{"Authorization", "Bearer " + o.NewKey(t, apitest.AllScopes...)}
	ct := api.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Busy Visitor"}, sender...).Expect(t, 201).JSON(t)
	conv := api.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": ct["id"]}, sender...).Expect(t, 201).JSON(t)["id"].(string)
	s, err := streamclient.Open(ctx, &http.Client{}, h.url+"/v1/conversations/"+conv+"/events/stream", "", "Authorization", "Bearer "+viewer)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e, err := s.NextData(); err != nil || e.Type != "conversation.created" {
		t.Fatalf("first event: %+v, %v", e, err)
	}
	h.waitHeld(t, 1)
	const n = 8
	for i := range n {
		api.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": "burst " + strconv.Itoa(i)},
			append(sender, "Idempotency-Key", "burst-"+strconv.Itoa(i))...).Expect(t, 201)
		// One message per wake-up, so that each costs the viewer a poll.
		e, err := s.NextData()
		if err != nil || e.Type != "message.created" {
			t.Fatalf("message %d: %+v, %v; want message.created (a poll counted against the viewer's limit?)", i, e, err)
		}
	}
	// The key's own limit still holds for its own requests.
	var last int
	for range 4 {
		last = api.Do(t, "GET", "/v1/conversations/"+conv, nil, "Authorization", "Bearer "+viewer).Status
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("the viewer's 4th request of the minute: %d, want 429", last)
	}
}
