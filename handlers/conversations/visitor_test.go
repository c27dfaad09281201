//go:build !js && !wasip1

package conversations

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// The visitor's routes, called as the route table calls them, with the
// scope the widget capability makes from its tokens (made by hand here).

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not JSON (%d): %s", a.status, a.body)
	}
	return m
}

func (a answer) code(t testing.TB) string {
	t.Helper()
	e, _ := a.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) want(t testing.TB, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	return a
}

func (a answer) wantErr(t testing.TB, status int, code string) answer {
	t.Helper()
	if a.status != status || a.code(t) != code {
		t.Fatalf("got %d %s, want %d %s", a.status, a.body, status, code)
	}
	return a
}

// visitorScope is a visitor's scope in tenant t_a.
func (f *fixture) visitor(id string) *web.Scope {
	return &web.Scope{P: f.p, Tenant: "t_a", Keys: envelope.New(f.p), VisitorID: id, WidgetOrigin: "https://shop.example",
		Visitor: web.VisitorPolicy{AgentName: "Pommy", AttachmentMaxBytes: DefaultVisitorAttachment, CSAT: true}}
}

// routes has a PersonNames hook that knows one member, u_a, as Ayşe
// (identity.MemberNames is tested in its package).
var routes = &Routes{PersonNames: func(ctx context.Context, p storage.Platform, tenant string, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range ids {
		if tenant == "t_a" && id == "u_a" {
			out[id] = "Ayşe"
		}
	}
	return out, nil
}}

// call runs handler h as the route table would: path values set, an
// error written as the API writes it.
func call(t testing.TB, h web.Handler, s *web.Scope, method, target string, body any, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	r := httptest.NewRequest(method, target, rd)
	if b, ok := body.([]byte); ok {
		r.ContentLength = int64(len(b))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	// .../conversations/{id}[/messages/{mid}/...]
	parts := strings.Split(strings.SplitN(target, "?", 2)[0], "/")
	for i, p := range parts {
		if p == "conversations" && i+1 < len(parts) {
			r.SetPathValue("id", parts[i+1])
			if i+3 < len(parts) && parts[i+2] == "messages" {
				r.SetPathValue("mid", parts[i+3])
			}
			break
		}
	}
	w := httptest.NewRecorder()
	if err := h(w, r, s); err != nil {
		web.WriteError(w, r, err)
	}
	return answer{w.Code, w.Result().Header, w.Body.Bytes()}
}

var keyN int

func idem() []string {
	keyN++
	return []string{"Idempotency-Key", fmt.Sprintf("k-%d", keyN)}
}

// start makes a conversation for visitor s with a first message.
func (f *fixture) start(t testing.TB, s *web.Scope, text string) string {
	t.Helper()
	a := call(t, routes.VisitorStart, s, "POST", "/v1/widget/conversations", map[string]any{"text": text}, idem()...).want(t, 201).json(t)
	return a["conversation"].(map[string]any)["id"].(string)
}

func base(conv string) string { return "/v1/widget/conversations/" + conv }

// TestVisitorOwnConversationsOnly: a visitor finds their own conversations
// and nobody else's; another visitor's id is the same 404 on every route
// as an unknown one, so ids cannot be probed.
func TestVisitorOwnConversationsOnly(t *testing.T) {
	f := open(t)
	a, b := f.visitor("ct_"+strings.Repeat("a", 26)), f.visitor("ct_"+strings.Repeat("b", 26))
	conv := f.start(t, a, "hello, I need help")
	list := call(t, routes.VisitorConversations, a, "GET", "/v1/widget/conversations", nil).want(t, 200).json(t)["conversations"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != conv {
		t.Fatalf("visitor a lists %v", list)
	}
	if l := call(t, routes.VisitorConversations, b, "GET", "/v1/widget/conversations", nil).want(t, 200).json(t)["conversations"].([]any); len(l) != 0 {
		t.Fatalf("visitor b lists a's conversations: %v", l)
	}
	m := call(t, routes.VisitorMessages, a, "GET", base(conv)+"/messages", nil).want(t, 200).json(t)["messages"].([]any)
	if len(m) != 1 {
		t.Fatalf("messages %v", m)
	}
	mid := m[0].(map[string]any)["id"].(string)
	for _, c := range []struct {
		h            web.Handler
		method, path string
		body         any
		hdr          []string
	}{
		{routes.VisitorConversation, "GET", base(conv), nil, nil},
		{routes.VisitorMessages, "GET", base(conv) + "/messages", nil, nil},
		{routes.VisitorSend, "POST", base(conv) + "/messages", map[string]any{"text": "hijack"}, idem()},
		{routes.VisitorTyping, "POST", base(conv) + "/typing", map[string]any{"typing": true}, nil},
		{routes.VisitorRead, "POST", base(conv) + "/read", map[string]any{}, nil},
		{routes.VisitorCSAT, "POST", base(conv) + "/csat", map[string]any{"rating": 1}, nil},
		{routes.VisitorEvents, "GET", base(conv) + "/events", nil, nil},
		{routes.VisitorEventStream, "GET", base(conv) + "/events/stream", nil, nil},
		{routes.VisitorGetAttachment, "GET", base(conv) + "/messages/" + mid + "/attachment", nil, nil},
		{routes.VisitorPutAttachment, "PUT", base(conv) + "/messages/" + mid + "/attachment", []byte("hello"), nil},
	} {
		got := call(t, c.h, b, c.method, c.path, c.body, c.hdr...)
		if got.status != 404 || got.code(t) != "not_found" {
			t.Errorf("%s %s by another visitor: %d %s", c.method, c.path, got.status, got.body)
		}
		// ... exactly as for an id that does not exist.
		unknown := strings.Replace(c.path, conv, "c_"+strings.Repeat("a", 26), 1)
		if u := call(t, c.h, b, c.method, unknown, c.body, c.hdr...); u.status != got.status || u.code(t) != got.code(t) {
			t.Errorf("%s %s: another's answers %d, an unknown id %d", c.method, c.path, got.status, u.status)
		}
	}
	// Nothing b tried reached a's conversation.
	evs, _, _, _ := f.s.Events(context.Background(), conv, 0, AudienceTeam)
	for _, e := range evs {
		if strings.Contains(e.Actor, strings.Repeat("b", 26)) {
			t.Fatalf("visitor b wrote to a's conversation: %+v", e)
		}
	}
	// A route of permission visitor refuses a scope without a visitor.
	call(t, routes.VisitorConversations, &web.Scope{P: f.p, Tenant: "t_a", UserID: "u_a"}, "GET", "/v1/widget/conversations", nil).
		wantErr(t, 401, "visitor_token_invalid")
}

// TestVisitorStart: the contact row is made on the first start (pre-chat
// name and email sealed in its PII; a verified visitor's claims first), an
// Idempotency-Key is required and a retry replays the first result; an
// email another contact holds makes a contact without the email's index.
func TestVisitorStart(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor("ct_" + strings.Repeat("c", 26))
	call(t, routes.VisitorStart, v, "POST", "/v1/widget/conversations", map[string]any{"text": "hi"}).wantErr(t, 400, "idempotency_key_required")
	if _, err := f.s.Contact(ctx, v.VisitorID); err == nil {
		t.Fatal("a refused start made the contact")
	}
	key := idem()
	body := map[string]any{"text": "hi there", "pre_chat": map[string]any{"name": "Zeynep", "email": "Zeynep@Example.com"}}
	first := call(t, routes.VisitorStart, v, "POST", "/v1/widget/conversations", body, key...).want(t, 201)
	again := call(t, routes.VisitorStart, v, "POST", "/v1/widget/conversations", body, key...).want(t, 201)
	if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.body, again.body) {
		t.Fatalf("replay:\n%s\n%s", first.body, again.body)
	}
	got := first.json(t)
	c := got["conversation"].(map[string]any)
	m := got["message"].(map[string]any)
	if c["status"] != "open" || c["last_seq"] != 2.0 || c["csat"] != nil || m["author_type"] != "visitor" || m["author_name"] != "" || m["text"] != "hi there" || m["attachment"] != nil {
		t.Fatalf("started %s", first.body)
	}
	for _, k := range []string{"contact_id", "assignee_id", "labels", "priority", "subject"} {
		if _, ok := c[k]; ok {
			t.Errorf("the visitor's conversation shows %s", k)
		}
	}
	ct, err := f.s.Contact(ctx, v.VisitorID)
	if err != nil || ct.Name != "Zeynep" || ct.Email != "zeynep@example.com" {
		t.Fatalf("contact %+v %v", ct, err)
	}
	// A typed email is nobody's word: it is not indexed (the team does not
	// find this contact by it; a verified owner of the address would be).
	if byEmail, err := f.s.ContactByEmail(ctx, "zeynep@example.com"); err == nil {
		t.Fatalf("an anonymous visitor's typed email is indexed: %+v", byEmail)
	}
	// A second conversation: the contact stays as it was.
	f.start(t, v, "")
	if l := call(t, routes.VisitorConversations, v, "GET", "/v1/widget/conversations", nil).json(t)["conversations"].([]any); len(l) != 2 {
		t.Fatalf("two conversations, listed %d", len(l))
	}

	// Ann (the fixture's contact) owns ann@example.com: a visitor who
	// types it gets a contact of their own, without the index.
	w := f.visitor("ct_" + strings.Repeat("d", 26))
	call(t, routes.VisitorStart, w, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"email": "ann@example.com"}}, idem()...).want(t, 201)
	if c, err := f.s.ContactByEmail(ctx, "ann@example.com"); err != nil || c.ID != f.ct {
		t.Fatalf("the email now finds %+v %v", c, err)
	}
	if c, err := f.s.Contact(ctx, w.VisitorID); err != nil || c.Email != "ann@example.com" {
		t.Fatalf("the visitor's contact %+v %v", c, err)
	}

	// A verified visitor: the claims are the contact's name and email, and
	// the email is indexed, even though an anonymous visitor typed it
	// first (no squatting).
	squatter := f.visitor("ct_" + strings.Repeat("g", 26))
	call(t, routes.VisitorStart, squatter, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"email": "mehmet@example.com"}}, idem()...).want(t, 201)
	vv := f.visitor("ct_" + strings.Repeat("e", 26))
	vv.VisitorVerified, vv.VisitorName, vv.VisitorEmail = true, "Mehmet Yılmaz", "mehmet@example.com"
	call(t, routes.VisitorStart, vv, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"name": "Someone Else"}}, idem()...).want(t, 201)
	if c, err := f.s.Contact(ctx, vv.VisitorID); err != nil || c.Name != "Mehmet Yılmaz" || c.Email != "mehmet@example.com" {
		t.Fatalf("verified contact %+v %v", c, err)
	}
	if c, err := f.s.ContactByEmail(ctx, "mehmet@example.com"); err != nil || c.ID != vv.VisitorID {
		t.Fatalf("the verified email finds %+v %v", c, err)
	}
	// A verified email another contact already holds: a contact of its
	// own, without the index (never merged).
	ann := f.visitor("ct_" + strings.Repeat("h", 26))
	ann.VisitorVerified, ann.VisitorEmail = true, "ann@example.com"
	call(t, routes.VisitorUpdate, ann, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"plan": "pro"}}).want(t, 200)
	if c, err := f.s.ContactByEmail(ctx, "ann@example.com"); err != nil || c.ID != f.ct {
		t.Fatalf("ann@example.com now finds %+v %v", c, err)
	}
	if c, err := f.s.Contact(ctx, ann.VisitorID); err != nil || c.Email != "ann@example.com" {
		t.Fatalf("the verified visitor's contact %+v %v", c, err)
	}

	// Bad pre-chat input is refused with its field, and writes nothing.
	x := f.visitor("ct_" + strings.Repeat("f", 26))
	bad := call(t, routes.VisitorStart, x, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"email": "not an email"}}, idem()...)
	bad.wantErr(t, 400, "invalid_email")
	if fld := bad.json(t)["error"].(map[string]any)["field"]; fld != "pre_chat.email" {
		t.Errorf("field %v", fld)
	}
	call(t, routes.VisitorStart, x, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"name": strings.Repeat("n", MaxName+1)}}, idem()...).
		wantErr(t, 422, "name_too_long")
	long := call(t, routes.VisitorStart, x, "POST", "/v1/widget/conversations", map[string]any{"text": strings.Repeat("x", MaxText+1)}, idem()...)
	if long.wantErr(t, 422, "text_too_long").json(t)["error"].(map[string]any)["field"] != "text" {
		t.Errorf("text too long: %s", long.body)
	}
	if _, err := f.s.Contact(ctx, x.VisitorID); err == nil {
		t.Fatal("a refused start made the contact")
	}
	call(t, routes.VisitorStart, x, "POST", "/v1/widget/conversations", map[string]any{"text": strings.Repeat("x", MaxText)}, idem()...).want(t, 201)
}

// TestVisitorSend: Idempotency-Key required; a retry is 200 with the
// first message; a send to a merged conversation is refused.
func TestVisitorSend(t *testing.T) {
	f := open(t)
	v := f.visitor("ct_" + strings.Repeat("a", 26))
	conv := f.start(t, v, "first")
	call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "x"}).wantErr(t, 400, "idempotency_key_required")
	key := idem()
	a := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "second"}, key...).want(t, 201)
	b := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "second"}, key...).want(t, 200)
	if b.header.Get("Idempotent-Replayed") != "true" || a.json(t)["id"] != b.json(t)["id"] || a.json(t)["seq"] != 3.0 {
		t.Fatalf("replay %s / %s", a.body, b.body)
	}
	call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "other"}, key...).wantErr(t, 422, "idempotency_key_reused")
	call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "  "}, idem()...).wantErr(t, 400, "invalid_text")
	call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "hi", "private": true}, idem()...).wantErr(t, 400, "unknown_field")
	msgs := call(t, routes.VisitorMessages, v, "GET", base(conv)+"/messages", nil).json(t)["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("%d messages after a send and its replay", len(msgs))
	}
}

// TestVisitorMessagesPaging: after/limit pages without gaps; limit is
// 1..200.
func TestVisitorMessagesPaging(t *testing.T) {
	f := open(t)
	v := f.visitor("ct_" + strings.Repeat("a", 26))
	conv := f.start(t, v, "m0")
	for i := 1; i < 5; i++ {
		call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)}, idem()...).want(t, 201)
	}
	var texts []string
	after := 0.0
	for range 10 {
		p := call(t, routes.VisitorMessages, v, "GET", fmt.Sprintf("%s/messages?after=%d&limit=2", base(conv), int(after)), nil).want(t, 200).json(t)
		for _, m := range p["messages"].([]any) {
			texts = append(texts, m.(map[string]any)["text"].(string))
		}
		after = p["next_after"].(float64)
		if p["more"] != true {
			break
		}
	}
	if strings.Join(texts, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("paged %v", texts)
	}
	for _, l := range []string{"0", "201", "-1", "x", "01"} {
		call(t, routes.VisitorMessages, v, "GET", base(conv)+"/messages?limit="+l, nil).wantErr(t, 400, "invalid_limit")
	}
	call(t, routes.VisitorMessages, v, "GET", base(conv)+"/messages?limit=200", nil).want(t, 200)
	call(t, routes.VisitorMessages, v, "GET", base(conv)+"/messages?after=x", nil).wantErr(t, 400, "invalid_cursor")
}

// TestVisitorNeverSeesTheTeamsPrivateSide: a private note, private typing,
// an assignment, labels and a priority reach the team's stream and never
// the visitor's (messages, long-poll, SSE); people appear by display
// name, never by id or email; the AI agent by the tenant's agent name.
func TestVisitorNeverSeesTheTeamsPrivateSide(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	st := f.s
	mustOK := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := st.Send(ctx, f.user, conv, SendInput{Text: "SECRET-NOTE about the customer", Private: true}, "")
	mustOK(err)
	_, err = st.Typing(ctx, f.user, conv, true, true)
	mustOK(err)
	_, _, err = st.UpdateConversation(ctx, f.user, conv, UpdateInput{AssigneeID: json.RawMessage(`"u_a"`), Labels: &[]string{"vip-secret"}, Priority: ptr("urgent")})
	mustOK(err)
	_, _, err = st.Send(ctx, f.user, conv, SendInput{Text: "Hello from the team"}, "")
	mustOK(err)
	_, err = st.Typing(ctx, f.user, conv, true, false)
	mustOK(err)
	_, _, err = st.Send(ctx, System, conv, SendInput{Text: "I am the bot", AuthorType: "agent"}, "")
	mustOK(err)
	_, err = st.MarkRead(ctx, f.user, conv)
	mustOK(err)

	// The team sees everything.
	team, _, _, _ := st.Events(ctx, conv, 0, AudienceTeam)
	var teamTypes []string
	for _, e := range team {
		teamTypes = append(teamTypes, e.Type)
	}
	for _, want := range []string{EvAssigned, EvLabelsChanged, EvPriorityChanged} {
		if !strings.Contains(strings.Join(teamTypes, " "), want) {
			t.Fatalf("the team's log lacks %s: %v", want, teamTypes)
		}
	}

	msgs := call(t, routes.VisitorMessages, v, "GET", base(conv)+"/messages", nil).want(t, 200)
	poll := call(t, routes.VisitorEvents, v, "GET", base(conv)+"/events", nil).want(t, 200)
	sse := call(t, routes.VisitorEventStream, v, "GET", base(conv)+"/events/stream", nil).want(t, 200)
	for name, body := range map[string][]byte{"messages": msgs.body, "events": poll.body, "stream": sse.body} {
		for _, secret := range []string{"SECRET-NOTE", "vip-secret", "urgent", "u_a", "u_a@example.com", "assign", "labels", "priority", "user:", "\"actor\""} {
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("the visitor's %s shows %q:\n%s", name, secret, body)
			}
		}
	}
	var list struct{ Messages []VMessage }
	json.Unmarshal(msgs.body, &list)
	if len(list.Messages) != 3 {
		t.Fatalf("visitor sees %d messages: %s", len(list.Messages), msgs.body)
	}
	if m := list.Messages[1]; m.AuthorType != "person" || m.AuthorName != "Ayşe" || m.Text != "Hello from the team" {
		t.Errorf("person's message %+v", m)
	}
	if m := list.Messages[2]; m.AuthorType != "agent" || m.AuthorName != "Pommy" {
		t.Errorf("agent's message %+v", m)
	}
	var evs struct{ Events []Event }
	json.Unmarshal(poll.body, &evs)
	var typing, read, msgEvents int
	for _, e := range evs.Events {
		switch e.Type {
		case EvTyping:
			typing++
			if string(e.Data) != `{"by":"person","name":"Ayşe","typing":true}` {
				t.Errorf("typing as the visitor sees it: %s", e.Data)
			}
		case EvRead:
			read++
			if !strings.HasPrefix(string(e.Data), `{"by":"team","seq":`) {
				t.Errorf("the team's read as the visitor sees it: %s", e.Data)
			}
		case EvMessageCreated:
			msgEvents++
			var m VMessage
			if err := json.Unmarshal(e.Data, &m); err != nil || m.ID == "" {
				t.Errorf("message event data %s", e.Data)
			}
		case EvCreated, "status.changed":
		default:
			t.Errorf("the visitor sees event %s: %s", e.Type, e.Data)
		}
	}
	if typing != 1 || read != 1 || msgEvents != 3 {
		t.Fatalf("typing %d read %d messages %d: %s", typing, read, msgEvents, poll.body)
	}
	if !bytes.Contains(sse.body, []byte("event: message.created\ndata: {")) || sse.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE %v %s", sse.header, sse.body)
	}
}

// TestVisitorStreamsShareTheConversationsTopic: the visitor's stream is
// held on the conversation's topic, which every write (theirs and the
// team's) publishes, so each wakes the other's stream.
func TestVisitorStreamsShareTheConversationsTopic(t *testing.T) {
	f := open(t)
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	a := call(t, routes.VisitorEvents, v, "GET", base(conv)+"/events?after=1&wait=25", nil).want(t, 200)
	if topic := a.header.Get(storage.StreamTopicHeader); topic != ConversationTopic("t_a", conv) {
		t.Fatalf("the visitor's stream is held on %q (headers %v)", topic, a.header)
	}
	// The team's stream of the same conversation is held on the same
	// topic: each side's writes publish it.
	team := &web.Scope{P: f.p, Tenant: "t_a", Keys: envelope.New(f.p), UserID: "u_a", Role: web.RoleAgent}
	tr := httptest.NewRequest("GET", "/v1/conversations/"+conv+"/events?wait=25", nil)
	tr.SetPathValue("id", conv)
	tw := httptest.NewRecorder()
	if err := routes.Events(tw, tr, team); err != nil || tw.Header().Get(storage.StreamTopicHeader) != a.header.Get(storage.StreamTopicHeader) {
		t.Fatalf("the team's stream: %v %v", err, tw.Header())
	}
	var got struct {
		Events []Event
		Cursor int64
	}
	json.Unmarshal(a.body, &got)
	if got.Cursor != 2 || len(got.Events) != 1 || got.Events[0].Seq != 2 {
		t.Fatalf("after=1: %s", a.body)
	}
	call(t, routes.VisitorEvents, v, "GET", base(conv)+"/events", nil, "Last-Event-ID", "x").wantErr(t, 400, "invalid_cursor")
}

// TestVisitorRead: the visitor's read position is the last message they
// read; an event {"by":"visitor","seq"} tells the team; reading again with
// nothing new appends nothing (so read events never ping-pong).
func TestVisitorRead(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")                            // seq 2
	f.s.Send(ctx, f.user, conv, SendInput{Text: "reply"}, "") // seq 3
	if got := call(t, routes.VisitorRead, v, "POST", base(conv)+"/read", map[string]any{"seq": 2}).want(t, 200).json(t); got["seq"] != 2.0 {
		t.Fatalf("read to 2: %v", got)
	}
	if got := call(t, routes.VisitorRead, v, "POST", base(conv)+"/read", map[string]any{}).want(t, 200).json(t); got["seq"] != 3.0 {
		t.Fatalf("read to the newest: %v", got)
	}
	c, _ := f.s.Conversation(ctx, conv)
	last := c.LastSeq
	// Nothing new (the read events themselves do not count): no event.
	for _, body := range []any{map[string]any{}, map[string]any{"seq": 99}, map[string]any{"seq": 1}} {
		if got := call(t, routes.VisitorRead, v, "POST", base(conv)+"/read", body).want(t, 200).json(t); got["seq"] != 3.0 {
			t.Fatalf("read again: %v", got)
		}
	}
	if c, _ := f.s.Conversation(ctx, conv); c.LastSeq != last {
		t.Fatalf("a read with nothing new appended events: %d -> %d", last, c.LastSeq)
	}
	vc := call(t, routes.VisitorConversation, v, "GET", base(conv), nil).want(t, 200).json(t)
	if vc["visitor_read_seq"] != 3.0 || vc["team_read_seq"] != 0.0 {
		t.Fatalf("conversation %v", vc)
	}
	evs, _, _, _ := f.s.Events(ctx, conv, 0, AudienceTeam)
	var reads []string
	for _, e := range evs {
		if e.Type == EvRead {
			reads = append(reads, string(e.Data)+" by "+e.Actor)
		}
	}
	if strings.Join(reads, "; ") != `{"by":"visitor","seq":2} by contact:`+f.ct+`; {"by":"visitor","seq":3} by contact:`+f.ct {
		t.Fatalf("the team sees reads %v", reads)
	}
	call(t, routes.VisitorRead, v, "POST", base(conv)+"/read", map[string]any{"seq": -1}).wantErr(t, 400, "invalid_seq")
	call(t, routes.VisitorRead, v, "POST", base(conv)+"/read", map[string]any{"seq": "3"}).want(t, 400)
}

// TestVisitorTyping: the visitor's typing reaches the team (and echoes to
// the visitor as by visitor); typing is required.
func TestVisitorTyping(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	call(t, routes.VisitorTyping, v, "POST", base(conv)+"/typing", map[string]any{}).wantErr(t, 400, "invalid_typing")
	seq := call(t, routes.VisitorTyping, v, "POST", base(conv)+"/typing", map[string]any{"typing": true}).want(t, 200).json(t)["seq"].(float64)
	evs, _, _, _ := f.s.Events(ctx, conv, int64(seq)-1, AudienceTeam)
	if len(evs) != 1 || evs[0].Type != EvTyping || evs[0].Actor != "contact:"+f.ct || string(evs[0].Data) != `{"typing":true}` {
		t.Fatalf("the team sees %+v", evs)
	}
	f.s.Visitor = f.ct
	ve, _, _, _ := f.s.Events(ctx, conv, int64(seq)-1, AudienceVisitor)
	if len(ve) != 1 || string(ve[0].Data) != `{"by":"visitor","name":"","typing":true}` {
		t.Fatalf("the visitor sees %+v", ve)
	}
}

// TestVisitorAttributes: attributes merge into the contact (null removes
// one), the contact is made if missing, the contacts' limits apply.
func TestVisitorAttributes(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor("ct_" + strings.Repeat("a", 26))
	got := call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"plan": "pro", "seats": 3}}).want(t, 200).json(t)
	if got["visitor_id"] != v.VisitorID || fmt.Sprint(got["attributes"]) != "map[plan:pro seats:3]" {
		t.Fatalf("got %v", got)
	}
	got = call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"plan": nil, "city": "İzmir"}}).want(t, 200).json(t)
	if fmt.Sprint(got["attributes"]) != "map[city:İzmir seats:3]" {
		t.Fatalf("merged %v", got)
	}
	c, err := f.s.Contact(ctx, v.VisitorID)
	if err != nil || string(c.Attributes) != `{"city":"İzmir","seats":3}` {
		t.Fatalf("contact %+v %v", c, err)
	}
	call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{}).wantErr(t, 400, "invalid_attributes")
	call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"x": map[string]any{}}}).wantErr(t, 400, "invalid_attributes")
	// The limit holds on the merged set: 48 more keys are 50, one more is
	// over.
	many := map[string]any{}
	for i := range MaxAttributes - 2 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": many}).want(t, 200)
	call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"one_more": true}}).wantErr(t, 422, "too_many_attributes")
}

// TestCSAT: only a resolved conversation is rated, once per resolution;
// the comment is sealed, shown to the team on the conversation, never in
// an event; a reopened and re-resolved conversation is rated again.
func TestCSAT(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	csat := func(body any) answer { return call(t, routes.VisitorCSAT, v, "POST", base(conv)+"/csat", body) }
	csat(map[string]any{"rating": 5}).wantErr(t, 409, "not_resolved")
	resolve := func(status string) {
		t.Helper()
		if _, _, err := f.s.UpdateConversation(ctx, f.user, conv, UpdateInput{Status: ptr(status)}); err != nil {
			t.Fatal(err)
		}
	}
	resolve(StatusResolved)
	for _, bad := range []map[string]any{{"rating": 0}, {"rating": 6}, {}, {"rating": 2.5}} {
		if a := csat(bad); a.status != 400 {
			t.Errorf("%v: %d %s", bad, a.status, a.body)
		}
	}
	csat(map[string]any{"rating": 4, "comment": strings.Repeat("ç", MaxCSATComment+1)}).wantErr(t, 422, "comment_too_long")
	comment := strings.Repeat("ç", MaxCSATComment-10) + "SECRETWORD"
	got := csat(map[string]any{"rating": 4, "comment": comment}).want(t, 201).json(t)
	if got["rating"] != 4.0 || got["comment"] != comment || got["at"] == "" {
		t.Fatalf("rated %v", got)
	}
	csat(map[string]any{"rating": 1}).wantErr(t, 409, "csat_already_given")

	team, err := f.s.Conversation(ctx, conv)
	if err != nil || team.CSAT == nil || team.CSAT.Rating != 4 || team.CSAT.Comment != comment {
		t.Fatalf("the team's conversation: %+v %v", team, err)
	}
	vc := call(t, routes.VisitorConversation, v, "GET", base(conv), nil).json(t)
	if c, _ := vc["csat"].(map[string]any); c == nil || c["rating"] != 4.0 || c["comment"] != nil {
		t.Fatalf("the visitor's conversation: %v", vc)
	}
	teamEvs, _, _, _ := f.s.Events(ctx, conv, 0, AudienceTeam)
	f.s.Visitor = f.ct
	visEvs, _, _, _ := f.s.Events(ctx, conv, 0, AudienceVisitor)
	for _, list := range [][]Event{teamEvs, visEvs} {
		last := list[len(list)-1]
		if last.Type != EvCSATSubmitted || strings.Contains(string(last.Data), "SECRETWORD") {
			t.Fatalf("csat event %s %s", last.Type, last.Data)
		}
	}
	if d := string(visEvs[len(visEvs)-1].Data); d != `{"rating":4}` {
		t.Fatalf("the visitor's csat event %s", d)
	}
	// The comment is sealed at rest.
	rows, _ := f.p.SQL.Query(ctx, `SELECT comment_sealed FROM conversation_csat WHERE tenant_id = ? AND conversation_id = ?`, "t_a", conv)
	var sealed []byte
	rows.Scan(0, &sealed)
	if len(sealed) == 0 || bytes.Contains(sealed, []byte("SECRETWORD")) {
		t.Fatalf("comment at rest: %q", sealed)
	}

	// Reopened: nothing to rate; resolved again: rated again.
	resolve(StatusOpen)
	if vc := call(t, routes.VisitorConversation, v, "GET", base(conv), nil).json(t); vc["csat"] != nil {
		t.Fatalf("reopened conversation shows %v", vc["csat"])
	}
	csat(map[string]any{"rating": 2}).wantErr(t, 409, "not_resolved")
	resolve(StatusResolved)
	csat(map[string]any{"rating": 2}).want(t, 201)
	if team, _ := f.s.Conversation(ctx, conv); team.CSAT.Rating != 2 || team.CSAT.Comment != "" {
		t.Fatalf("the newest rating: %+v", team.CSAT)
	}
	rows, _ = f.p.SQL.Query(ctx, `SELECT COUNT(*) FROM conversation_csat WHERE tenant_id = ? AND conversation_id = ?`, "t_a", conv)
	var n int64
	rows.Scan(0, &n)
	if n != 2 {
		t.Fatalf("%d ratings stored", n)
	}
	// A tenant that does not ask for ratings refuses them.
	v.Visitor.CSAT = false
	resolve(StatusOpen)
	resolve(StatusResolved)
	csat(map[string]any{"rating": 3}).wantErr(t, 409, "csat_disabled")
}

// TestCSATRace: racing ratings of one resolution: exactly one wins.
func TestCSATRace(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	f.s.UpdateConversation(ctx, f.user, conv, UpdateInput{Status: ptr(StatusResolved)})
	res := make(chan int, 8)
	for i := range 8 {
		go func() {
			res <- call(t, routes.VisitorCSAT, v, "POST", base(conv)+"/csat", map[string]any{"rating": 1 + i%5}).status
		}()
	}
	won := 0
	for range 8 {
		switch s := <-res; s {
		case 201:
			won++
		case 409:
		default:
			t.Errorf("status %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d ratings won", won)
	}
}

// stored reads an attachment's row.
func (f *fixture) attachmentRow(t testing.TB, msg string) (ctype string, named bool, ok bool) {
	rows, err := f.p.SQL.Query(context.Background(), `SELECT content_type, name_sealed FROM message_attachments WHERE tenant_id = ? AND message_id = ?`, "t_a", msg)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Len() == 0 {
		return "", false, false
	}
	var name []byte
	rows.Scan(0, &ctype, &name)
	return ctype, name != nil, true
}

// TestVisitorAttachments: a file goes on the visitor's own message that
// announced it, once; its type is sniffed from content (HTML named .png
// is 415 and leaves nothing), the tenant's limit holds to the byte (413
// with the limit), the download is a named attachment with nosniff, and
// another visitor cannot fetch it.
func TestVisitorAttachments(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	v.Visitor.AttachmentMaxBytes = 2048
	conv := f.start(t, v, "hello")
	announce := func(name string, size int) string {
		t.Helper()
		a := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "", "attachment": map[string]any{"name": name, "size": size}}, idem()...).want(t, 201).json(t)
		if a["text"] != "" || a["attachment"] != nil {
			t.Fatalf("announced %v", a)
		}
		return a["id"].(string)
	}
	put := func(mid string, data []byte) answer {
		return call(t, routes.VisitorPutAttachment, v, "PUT", base(conv)+"/messages/"+mid+"/attachment", data)
	}

	mid := announce("../../etc/<b>photo<b>.png", len(pngBytes))
	got := put(mid, pngBytes).want(t, 200).json(t)
	att := got["attachment"].(map[string]any)
	if att["name"] != "<b>photo<b>.png" || att["type"] != "image/png" || att["size"] != float64(len(pngBytes)) ||
		att["url"] != base(conv)+"/messages/"+mid+"/attachment" {
		t.Fatalf("attachment %v", att)
	}
	put(mid, pngBytes).wantErr(t, 409, "attachment_exists")
	dl := call(t, routes.VisitorGetAttachment, v, "GET", base(conv)+"/messages/"+mid+"/attachment", nil).want(t, 200)
	if !bytes.Equal(dl.body, pngBytes) || dl.header.Get("Content-Type") != "image/png" || dl.header.Get("X-Content-Type-Options") != "nosniff" ||
		dl.header.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("download %v", dl.header)
	}
	_, params, err := mime.ParseMediaType(dl.header.Get("Content-Disposition"))
	if err != nil || params["filename"] != "<b>photo<b>.png" || !strings.HasPrefix(dl.header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("disposition %q: %v %v", dl.header.Get("Content-Disposition"), params, err)
	}
	// The attachment event shows the visitor the message with its file.
	f.s.Visitor = f.ct
	evs, _, _, _ := f.s.Events(ctx, conv, 0, AudienceVisitor)
	last := evs[len(evs)-1]
	var vm VMessage
	json.Unmarshal(last.Data, &vm)
	if last.Type != "attachment.added" || vm.ID != mid || vm.Attachment == nil || vm.Attachment.Type != "image/png" || vm.Seq != 3 {
		t.Fatalf("attachment event %s %s", last.Type, last.Data)
	}

	// HTML (and SVG) named .png: refused by content, nothing kept.
	for _, evil := range []string{"<html><script>alert(1)</script></html>", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`} {
		m := announce("cat.png", len(evil))
		put(m, []byte(evil)).wantErr(t, 415, "unsupported_file_type")
		if _, _, ok := f.attachmentRow(t, m); ok || len(f.blobsUnder(t, "t_a", m)) != 0 {
			t.Fatalf("a refused upload left its row or blob")
		}
	}

	// The limit, to the byte: 2048 is accepted, 2049 refused with the
	// limit in the message, both at the announcement and at the upload.
	atLimit := bytes.Repeat([]byte("a"), 2048)
	m := announce("notes.txt", 2048)
	if a := put(m, atLimit).want(t, 200).json(t)["attachment"].(map[string]any); a["type"] != "text/plain; charset=utf-8" {
		t.Fatalf("text file %v", a)
	}
	over := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "", "attachment": map[string]any{"name": "big.txt", "size": 2049}}, idem()...)
	over.wantErr(t, 413, "attachment_too_large")
	if !bytes.Contains(over.body, []byte("2048")) {
		t.Errorf("the limit is not in the message: %s", over.body)
	}
	m = announce("big.txt", 2000)
	put(m, append(atLimit, 'a')).wantErr(t, 413, "attachment_too_large")
	// A body longer than its Content-Length claims is cut by the reader's
	// limit, never stored over the limit.
	r := httptest.NewRequest("PUT", base(conv)+"/messages/"+m+"/attachment", bytes.NewReader(append(atLimit, 'a')))
	r.ContentLength = -1
	r.SetPathValue("id", conv)
	r.SetPathValue("mid", m)
	w := httptest.NewRecorder()
	if err := routes.VisitorPutAttachment(w, r, v); err == nil {
		t.Fatal("an upload of unknown length was accepted")
	} else if s, c := code(err); s != 411 || c != "length_required" {
		t.Fatalf("unknown length: %d %s", s, c)
	}
	if _, _, ok := f.attachmentRow(t, m); ok {
		t.Fatal("an over-limit upload attached")
	}

	// Only on a message that announced a file; only by its sender.
	plain := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "just text"}, idem()...).want(t, 201).json(t)["id"].(string)
	put(plain, pngBytes).wantErr(t, 409, "attachment_not_announced")
	team, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "team's"}, "")
	put(team.ID, pngBytes).wantErr(t, 403, "not_message_sender")

	// Another visitor: the same 404 as an unknown message.
	other := f.visitor("ct_" + strings.Repeat("z", 26))
	call(t, routes.VisitorGetAttachment, other, "GET", base(conv)+"/messages/"+mid+"/attachment", nil).wantErr(t, 404, "not_found")
	// The team's attachment on a private note is not the visitor's.
	note, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "note", Private: true}, "")
	f.attach(t, f.user, conv, note.ID, pngBytes)
	call(t, routes.VisitorGetAttachment, v, "GET", base(conv)+"/messages/"+note.ID+"/attachment", nil).wantErr(t, 404, "not_found")

	// Bad announcements.
	for _, a := range []map[string]any{{"size": 1}, {"name": "", "size": 1}, {"name": "/", "size": 1}, {"name": "a.txt"}, {"name": "a.txt", "size": -1}} {
		got := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "", "attachment": a}, idem()...)
		if got.status != 400 {
			t.Errorf("announcement %v: %d %s", a, got.status, got.body)
		}
	}
}

// TestTeamAttachmentNamedAndTyped: the team's PUT takes ?name=; the type
// is sniffed; the download names the file and serves an off-list type as
// octet-stream.
func TestTeamAttachmentNamedAndTyped(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	conv := f.conv(t)
	s := &web.Scope{P: f.p, Tenant: "t_a", Keys: envelope.New(f.p), UserID: "u_a", Role: web.RoleAgent}
	for _, c := range []struct {
		name, query string
		data        []byte
		ctype       string
		disp        string
	}{
		{"pdf", "?name=" + "r%C3%A9sum%C3%A9%20%22final%22.pdf", []byte("%PDF-1.7\n..."), "application/pdf", `attachment; filename="r_sum_ _final_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf`},
		{"html", "?name=page.html", []byte("<!DOCTYPE html><p>hi"), "application/octet-stream", `attachment; filename="page.html"; filename*=UTF-8''page.html`},
		{"none", "", []byte{0, 1, 2, 3}, "application/octet-stream", "attachment"},
	} {
		m, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: c.name}, "")
		path := "/v1/conversations/" + conv + "/messages/" + m.ID + "/attachment" + c.query
		call(t, routes.PutAttachment, s, "PUT", path, c.data).want(t, 201)
		dl := call(t, routes.GetAttachment, s, "GET", path, nil).want(t, 200)
		if dl.header.Get("Content-Type") != c.ctype || dl.header.Get("Content-Disposition") != c.disp || !bytes.Equal(dl.body, c.data) {
			t.Errorf("%s: %q %q", c.name, dl.header.Get("Content-Type"), dl.header.Get("Content-Disposition"))
		}
	}
	m, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "bad name"}, "")
	call(t, routes.PutAttachment, s, "PUT", "/v1/conversations/"+conv+"/messages/"+m.ID+"/attachment?name=%2F%2F", []byte("x")).wantErr(t, 400, "invalid_file_name")
}

// TestVisitorMessageReopens: the visitor writing into a resolved (or
// snoozed) conversation opens it again, in the batch of the message; a
// person's message does not; the rating then waits for the next
// resolution.
func TestVisitorMessageReopens(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor(f.ct)
	conv := f.start(t, v, "hello")
	if _, _, err := f.s.UpdateConversation(ctx, f.user, conv, UpdateInput{Status: ptr(StatusResolved)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.s.Send(ctx, f.user, conv, SendInput{Text: "anything else?"}, ""); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.s.Conversation(ctx, conv); c.Status != StatusResolved {
		t.Fatalf("a person's message changed the status to %s", c.Status)
	}
	call(t, routes.VisitorCSAT, v, "POST", base(conv)+"/csat", map[string]any{"rating": 4}).want(t, 201)
	m := call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "one more question"}, idem()...).want(t, 201).json(t)
	vc := call(t, routes.VisitorConversation, v, "GET", base(conv), nil).want(t, 200).json(t)
	if vc["status"] != "open" || vc["csat"] != nil || m["seq"] != vc["last_seq"] {
		t.Fatalf("after the visitor wrote: %v (message %v)", vc, m)
	}
	f.s.Visitor = f.ct
	evs, _, _, _ := f.s.Events(ctx, conv, int64(m["seq"].(float64))-2, AudienceVisitor)
	if len(evs) != 2 || evs[0].Type != "status.changed" || string(evs[0].Data) != `{"from":"resolved","to":"open"}` || evs[1].Type != EvMessageCreated {
		t.Fatalf("events %+v", evs)
	}
	// Snoozed: the same.
	until := t0.Add(time.Hour).Format(time.RFC3339)
	if _, _, err := f.s.UpdateConversation(ctx, f.user, conv, UpdateInput{SnoozedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	call(t, routes.VisitorSend, v, "POST", base(conv)+"/messages", map[string]any{"text": "hello?"}, idem()...).want(t, 201)
	if c, _ := f.s.Conversation(ctx, conv); c.Status != StatusOpen || c.SnoozedUntil != nil {
		t.Fatalf("snoozed conversation after the visitor wrote: %+v", c)
	}
}

// TestVisitorPreChatFillsAnExistingContact: a contact made earlier by
// setting attributes gets the pre-chat name and email of the visitor's
// first conversation; what a contact has is never overwritten.
func TestVisitorPreChatFillsAnExistingContact(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	v := f.visitor("ct_" + strings.Repeat("k", 26))
	call(t, routes.VisitorUpdate, v, "PATCH", "/v1/widget/visitor", map[string]any{"attributes": map[string]any{"plan": "pro"}}).want(t, 200)
	call(t, routes.VisitorStart, v, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"name": "Deniz", "email": "deniz@example.com"}}, idem()...).want(t, 201)
	c, err := f.s.Contact(ctx, v.VisitorID)
	if err != nil || c.Name != "Deniz" || c.Email != "deniz@example.com" || string(c.Attributes) != `{"plan":"pro"}` {
		t.Fatalf("contact %+v %v", c, err)
	}
	call(t, routes.VisitorStart, v, "POST", "/v1/widget/conversations", map[string]any{"pre_chat": map[string]any{"name": "Someone", "email": "other@example.com"}}, idem()...).want(t, 201)
	if c, _ := f.s.Contact(ctx, v.VisitorID); c.Name != "Deniz" || c.Email != "deniz@example.com" {
		t.Fatalf("a later pre-chat overwrote the contact: %+v", c)
	}
	if _, err := f.s.ContactByEmail(ctx, "deniz@example.com"); err == nil {
		t.Fatal("a typed email was indexed")
	}
}
