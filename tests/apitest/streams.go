package apitest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"pommy.ai/edge/tests/streamclient"
)

// ConversationStreams is the application's own streams end to end in one
// home: a person's conversation stream and inbox feed, held by the home,
// get a message sent after they subscribed (the conversations' publish),
// the feed without the message's text; when the person's session ends, the
// next poll is refused by the application and the stream ends with that
// error. held, if not nil, runs once both streams are open, for a home's
// own checks (the local host: no instance is busy while they wait).
func ConversationStreams(t *testing.T, ctx context.Context, c *Client, home string, held func(t *testing.T)) {
	hc := &http.Client{}
	o := c.Signup(t, "Realtime Co "+home)
	bearer := []string{"Authorization", "Bearer " + o.NewKey(t, AllScopes...)}
	ct := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Ann Visitor"}, bearer...).Expect(t, 201).JSON(t)
	conv := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": ct["id"]}).Expect(t, 201).JSON(t)["id"].(string)
	cookie := []string{"Cookie", SessionCookie + "=" + o.Token}
	open := func(path string) *streamclient.Stream {
		s, err := streamclient.Open(ctx, hc, c.Base+path, "", cookie...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if e, err := s.NextData(); err != nil || e.Type != "conversation.created" {
			t.Fatalf("%s: first event %+v, %v; want conversation.created", path, e, err)
		}
		return s
	}
	cs, is := open("/v1/conversations/"+conv+"/events/stream"), open("/v1/inbox/events/stream")
	if held != nil {
		held(t)
	}
	send := func(text string) {
		c.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": text},
			append(bearer, "Idempotency-Key", home+"-rt-"+strings.ReplaceAll(text, " ", "-"))...).Expect(t, 201)
	}
	hello := "hello from the " + home + " home"
	send(hello)
	e, err := cs.NextData()
	if err != nil || e.Type != "message.created" || !strings.Contains(e.Data, hello) {
		t.Fatalf("conversation stream after a send: %+v, %v", e, err)
	}
	if e, err := is.NextData(); err != nil || e.Type != "message.created" || strings.Contains(e.Data, hello) {
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
