package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/streamclient"
)

// TestConversationStreamsThroughTheHub: the application's own streams,
// end to end in the local home: a person's conversation stream and inbox
// feed, held by the hub, get a message sent after they subscribed (the
// conversations' publish through the guest's realtime.publish), the feed
// without the message's text; when the person's session ends, the next
// poll is refused by the application and the stream ends with that error.
// The same scenario runs at the edge (tests/workerd, "conversation").
func TestConversationStreamsThroughTheHub(t *testing.T) {
	h := startHome(t, homeOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &http.Client{}
	api := &apitest.Client{Base: h.url, HTTP: &http.Client{Timeout: time.Minute}}
	o := api.Signup(t, "Local Realtime Co")
	key := o.NewKey(t, apitest.AllScopes...)
	bearer := []string{"Authorization", "Bearer " + key}
	ct := api.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Ann Visitor"}, bearer...).Expect(t, 201).JSON(t)
	conv := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": ct["id"]}).Expect(t, 201).JSON(t)["id"].(string)
	cookie := []string{"Cookie", apitest.SessionCookie + "=" + o.Token}
	cs, err := streamclient.Open(ctx, c, h.url+"/v1/conversations/"+conv+"/events/stream", "", cookie...)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	is, err := streamclient.Open(ctx, c, h.url+"/v1/inbox/events/stream", "", cookie...)
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	for _, s := range []*streamclient.Stream{cs, is} {
		if e, err := s.NextData(); err != nil || e.Type != "conversation.created" {
			t.Fatalf("first event: %+v, %v; want conversation.created", e, err)
		}
	}
	h.waitHeld(t, 2)
	if st := h.host.Stats(); st.Busy != 0 {
		t.Errorf("%d instances busy while two streams wait", st.Busy)
	}
	send := func(text string) {
		api.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": text},
			append(bearer, "Idempotency-Key", "local-rt-"+strings.ReplaceAll(text, " ", "-"))...).Expect(t, 201)
	}
	send("hello from the local home")
	e, err := cs.NextData()
	if err != nil || e.Type != "message.created" || !strings.Contains(e.Data, "hello from the local home") {
		t.Fatalf("conversation stream after a send: %+v, %v", e, err)
	}
	if e, err := is.NextData(); err != nil || e.Type != "message.created" || strings.Contains(e.Data, "hello from the local home") {
		t.Fatalf("inbox feed after a send: %+v, %v; want message.created without the text", e, err)
	}
	o.Do(t, "POST", "/v1/logout", nil).Expect(t, 204)
	send("after the logout")
	e, err = cs.NextData()
	var body struct{ Error struct{ Code string } }
	if err != nil || e.Type != "error" || json.Unmarshal([]byte(e.Data), &body) != nil || body.Error.Code == "" {
		t.Fatalf("conversation stream after its session ended: %+v, %v; want event error", e, err)
	}
	if e, err := cs.NextData(); err != io.EOF {
		t.Fatalf("after the error event: %+v, %v; want the end of the stream", e, err)
	}
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
