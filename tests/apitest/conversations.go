package apitest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// The chat core over HTTP: contacts, conversations, messages with
// idempotency keys, private notes, events (long-poll and SSE), the inbox
// feed, merge, canned responses, and their bad input.

func runConversations(t *testing.T, c *Client) {
	t.Run("ConversationsRoundTrip", func(t *testing.T) { conversationsRoundTrip(t, c) })
	t.Run("MessageIdempotency", func(t *testing.T) { messageIdempotency(t, c) })
	t.Run("ConversationEvents", func(t *testing.T) { conversationEvents(t, c) })
	t.Run("ConversationMerge", func(t *testing.T) { conversationMerge(t, c) })
	t.Run("CannedResponses", func(t *testing.T) { cannedResponses(t, c) })
	t.Run("ConversationBadInput", func(t *testing.T) { conversationBadInput(t, c) })
}

// idem is a fresh Idempotency-Key header.
func idem() []string { return []string{"Idempotency-Key", "k-" + randomHex(8)} }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// chatFixture is a tenant with a contact and a conversation.
type chatFixture struct {
	owner   *Session
	key     string
	contact string
	conv    string
}

func newChat(t testing.TB, c *Client, name string) *chatFixture {
	t.Helper()
	o := c.Signup(t, name)
	f := &chatFixture{owner: o, key: o.NewKey(t, AllScopes...)}
	ct := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Ann Visitor", "email": randomEmail(), "attributes": map[string]any{"plan": "pro"}}, bearer(f.key)...).Expect(t, 201).JSON(t)
	f.contact = ct["id"].(string)
	cv := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": f.contact}).Expect(t, 201).JSON(t)
	f.conv = cv["id"].(string)
	return f
}

func conversationsRoundTrip(t *testing.T, c *Client) {
	o := c.Signup(t, "Chat Round Trip Co")
	key := o.NewKey(t, AllScopes...)
	email := randomEmail()
	ct := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Ann", "email": strings.ToUpper(email), "phone": "+1 555 0100",
		"attributes": map[string]any{"plan": "pro", "seats": 3}}, bearer(key)...).Expect(t, 201).JSON(t)
	contact := ct["id"].(string)
	if ct["email"] != email {
		t.Errorf("email not normalized: %v", ct["email"])
	}
	// Found by email (any case), without the email stored in clear.
	found := o.Do(t, "GET", "/v1/contacts?email="+strings.ToUpper(email), nil).Expect(t, 200).JSON(t)["contacts"].([]any)
	if len(found) != 1 || found[0].(map[string]any)["id"] != contact {
		t.Fatalf("find by email: %v", found)
	}
	if none := o.Do(t, "GET", "/v1/contacts?email=nobody@example.com", nil).Expect(t, 200).JSON(t)["contacts"].([]any); len(none) != 0 {
		t.Errorf("find by unknown email: %v", none)
	}
	if code := c.Do(t, "POST", "/v1/contacts", map[string]any{"email": email}, bearer(key)...).Expect(t, 409).ErrorCode(t); code != "email_taken" {
		t.Errorf("duplicate email: %s", code)
	}
	up := o.Do(t, "PATCH", "/v1/contacts/"+contact, map[string]any{"name": "Ann B."}).Expect(t, 200).JSON(t)
	if up["name"] != "Ann B." || up["email"] != email || up["attributes"].(map[string]any)["seats"] != float64(3) {
		t.Errorf("update: %v", up)
	}

	// A conversation started by an integration with the visitor's first message.
	cv := c.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": contact, "subject": "Where is my order?", "labels": []string{"Orders"},
		"message": map[string]any{"text": "Hello, my order is late"}}, bearer(key)...).Expect(t, 201).JSON(t)
	conv := cv["id"].(string)
	if cv["status"] != "open" || cv["last_seq"] != float64(2) || cv["unread"] != float64(1) || cv["subject"] != "Where is my order?" {
		t.Errorf("created: %v", cv)
	}
	first := cv["message"].(map[string]any)
	if first["author_type"] != "visitor" || first["author_id"] != contact || first["seq"] != float64(2) {
		t.Errorf("first message: %v", first)
	}
	// A person answers, and writes a private note.
	m := o.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": "Let me check."}, idem()...).Expect(t, 201).JSON(t)
	if m["author_type"] != "person" || m["author_id"] != o.UserID || m["seq"] != float64(3) {
		t.Errorf("reply: %v", m)
	}
	o.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": "VIP customer", "private": true}, idem()...).Expect(t, 201)
	// Integrations cannot write private notes.
	if code := c.Do(t, "POST", "/v1/conversations/"+conv+"/messages", map[string]any{"text": "x", "private": true}, append(bearer(key), idem()...)...).Expect(t, 403).ErrorCode(t); code != "private_notes_people_only" {
		t.Errorf("key private note: %s", code)
	}
	msgs := o.Do(t, "GET", "/v1/conversations/"+conv+"/messages", nil).Expect(t, 200).JSON(t)["messages"].([]any)
	var texts []string
	for _, x := range msgs {
		texts = append(texts, x.(map[string]any)["text"].(string))
	}
	if strings.Join(texts, "|") != "Hello, my order is late|Let me check.|VIP customer" {
		t.Errorf("messages: %v", texts)
	}
	if later := o.Do(t, "GET", "/v1/conversations/"+conv+"/messages?after=3", nil).Expect(t, 200).JSON(t)["messages"].([]any); len(later) != 1 {
		t.Errorf("after=3: %v", later)
	}

	// Status, snooze, assignment, labels, priority: one event each.
	agent := o.Invite(t, "agent")
	p := o.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"assignee_id": agent.UserID, "add_labels": []string{"vip"}, "priority": "high"}).Expect(t, 200).JSON(t)
	if p["assignee_id"] != agent.UserID || p["priority"] != "high" || fmt.Sprint(p["labels"]) != "[orders vip]" || p["last_seq"] != float64(7) {
		t.Errorf("patch: %v", p)
	}
	agent.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"status": "snoozed", "snoozed_until": "2099-01-01T00:00:00Z"}).Expect(t, 422)
	p = agent.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"status": "resolved"}).Expect(t, 200).JSON(t)
	if p["status"] != "resolved" {
		t.Errorf("resolve: %v", p)
	}
	if code := o.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"assignee_id": "u_" + strings.Repeat("a", 26)}).Expect(t, 422).ErrorCode(t); code != "invalid_assignee" {
		t.Errorf("foreign assignee: %s", code)
	}
	// Lists and filters.
	list := func(q string) int {
		return len(o.Do(t, "GET", "/v1/conversations"+q, nil).Expect(t, 200).JSON(t)["conversations"].([]any))
	}
	if list("") != 1 || list("?status=resolved") != 1 || list("?status=open") != 0 || list("?assignee="+agent.UserID) != 1 ||
		list("?label=vip") != 1 || list("?label=nope") != 0 || list("?contact_id="+contact) != 1 {
		t.Errorf("filters")
	}
	hist := o.Do(t, "GET", "/v1/contacts/"+contact+"/conversations", nil).Expect(t, 200).JSON(t)["conversations"].([]any)
	if len(hist) != 1 || hist[0].(map[string]any)["id"] != conv {
		t.Errorf("history: %v", hist)
	}
	read := o.Do(t, "POST", "/v1/conversations/"+conv+"/read", nil).Expect(t, 200).JSON(t)
	if got := o.Do(t, "GET", "/v1/conversations/"+conv, nil).Expect(t, 200).JSON(t); got["unread"] != float64(0) || read["read_seq"] != got["last_seq"] {
		t.Errorf("read: %v %v", read, got)
	}
	// Data access was audited, once per request.
	for _, action := range []string{"contact.read", "contacts.listed", "conversation.read", "messages.listed", "conversations.listed", "conversation.updated"} {
		if action == "contact.read" {
			o.Do(t, "GET", "/v1/contacts/"+contact, nil).Expect(t, 200)
		}
		evs := o.Do(t, "GET", "/v1/audit/events?action="+action, nil).Expect(t, 200).JSON(t)["events"].([]any)
		if len(evs) == 0 {
			t.Errorf("no audit event %s", action)
		}
	}
	// A contact with conversations stays; one without is deleted.
	if code := o.Do(t, "DELETE", "/v1/contacts/"+contact, nil).Expect(t, 409).ErrorCode(t); code != "contact_has_conversations" {
		t.Errorf("delete: %s", code)
	}
	lone := o.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Lone"}).Expect(t, 201).JSON(t)["id"].(string)
	o.Do(t, "DELETE", "/v1/contacts/"+lone, nil).Expect(t, 204)
	o.Do(t, "GET", "/v1/contacts/"+lone, nil).Expect(t, 404)
}

func messageIdempotency(t *testing.T, c *Client) {
	f := newChat(t, c, "Idempotency Co")
	path := "/v1/conversations/" + f.conv + "/messages"
	k := idem()
	a := c.Do(t, "POST", path, map[string]any{"text": "once"}, append(bearer(f.key), k...)...).Expect(t, 201)
	b := c.Do(t, "POST", path, map[string]any{"text": "once"}, append(bearer(f.key), k...)...).Expect(t, 201)
	if b.Header.Get("Idempotent-Replayed") != "true" || a.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("replay header: first %q, retry %q", a.Header.Get("Idempotent-Replayed"), b.Header.Get("Idempotent-Replayed"))
	}
	if a.JSON(t)["id"] != b.JSON(t)["id"] || a.JSON(t)["seq"] != b.JSON(t)["seq"] {
		t.Errorf("retry gave another message: %s vs %s", a.Body, b.Body)
	}
	if code := c.Do(t, "POST", path, map[string]any{"text": "twice"}, append(bearer(f.key), k...)...).Expect(t, 422).ErrorCode(t); code != "idempotency_key_reused" {
		t.Errorf("reused key: %s", code)
	}
	if code := c.Do(t, "POST", path, map[string]any{"text": "no key"}, bearer(f.key)...).Expect(t, 400).ErrorCode(t); code != "idempotency_key_required" {
		t.Errorf("no key: %s", code)
	}
	if code := c.Do(t, "POST", path, map[string]any{"text": "bad key"}, append(bearer(f.key), "Idempotency-Key", strings.Repeat("k", 256))...).Expect(t, 400).ErrorCode(t); code != "invalid_idempotency_key" {
		t.Errorf("long key: %s", code)
	}
	msgs := f.owner.Do(t, "GET", path, nil).Expect(t, 200).JSON(t)["messages"].([]any)
	if len(msgs) != 1 {
		t.Errorf("%d messages after retries, want 1", len(msgs))
	}
	// Creating a conversation with a key is idempotent too.
	ck := idem()
	body := map[string]any{"contact_id": f.contact, "message": map[string]any{"text": "hi"}}
	x := c.Do(t, "POST", "/v1/conversations", body, append(bearer(f.key), ck...)...).Expect(t, 201).JSON(t)
	y := c.Do(t, "POST", "/v1/conversations", body, append(bearer(f.key), ck...)...).Expect(t, 201).JSON(t)
	if x["id"] != y["id"] || x["message"].(map[string]any)["id"] != y["message"].(map[string]any)["id"] {
		t.Errorf("conversation create retried: %v vs %v", x, y)
	}
}

func conversationEvents(t *testing.T, c *Client) {
	f := newChat(t, c, "Events Co")
	o := f.owner
	base := "/v1/conversations/" + f.conv
	c.Do(t, "POST", base+"/messages", map[string]any{"text": "from the visitor"}, append(bearer(f.key), idem()...)...).Expect(t, 201)
	o.Do(t, "POST", base+"/messages", map[string]any{"text": "team only", "private": true}, idem()...).Expect(t, 201)
	o.Do(t, "POST", base+"/typing", map[string]any{"typing": true}).Expect(t, 200)
	o.Do(t, "PATCH", base, map[string]any{"status": "pending"}).Expect(t, 200)

	r := o.Do(t, "GET", base+"/events", nil).Expect(t, 200).JSON(t)
	evs := r["events"].([]any)
	var types []string
	for i, e := range evs {
		ev := e.(map[string]any)
		types = append(types, ev["type"].(string))
		if ev["seq"] != float64(i+1) || ev["conversation_id"] != f.conv {
			t.Errorf("event %d: %v", i, ev)
		}
	}
	if strings.Join(types, " ") != "conversation.created message.created message.created typing conversation.status_changed" || r["cursor"] != float64(5) {
		t.Fatalf("events %v cursor %v", types, r["cursor"])
	}
	if d := evs[1].(map[string]any)["data"].(map[string]any); d["text"] != "from the visitor" || d["author_type"] != "visitor" {
		t.Errorf("message event data: %v", d)
	}
	// After the cursor: nothing new (a long-poll that waits at most 1 s in
	// homes that hold it).
	if evs := o.Do(t, "GET", base+"/events?after=5&wait=1", nil).Expect(t, 200).JSON(t)["events"].([]any); len(evs) != 0 {
		t.Errorf("after the cursor: %v", evs)
	}
	// SSE: Last-Event-ID resumes.
	s := o.Stream(t, base+"/events/stream", 2, "Last-Event-ID", "3", "Accept", "text/event-stream").Expect(t, 200)
	if ct := s.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream content type %q", ct)
	}
	if !bytes.HasPrefix(s.Body, []byte("id: 4\nevent: typing\ndata: {")) || !bytes.Contains(s.Body, []byte("id: 5\nevent: conversation.status_changed\ndata: ")) {
		t.Errorf("stream body %q", trunc(s.Body))
	}
	// The inbox feed: creation, the visitor's message and the status
	// change; no typing, no private note; no message text.
	in := o.Do(t, "GET", "/v1/inbox/events", nil).Expect(t, 200)
	var itypes []string
	for _, e := range in.JSON(t)["events"].([]any) {
		itypes = append(itypes, e.(map[string]any)["type"].(string))
	}
	if strings.Join(itypes, " ") != "conversation.created message.created conversation.status_changed" {
		t.Errorf("inbox %v", itypes)
	}
	if bytes.Contains(in.Body, []byte("from the visitor")) || bytes.Contains(in.Body, []byte("team only")) {
		t.Errorf("inbox feed carries message text: %s", trunc(in.Body))
	}
	is := o.Stream(t, "/v1/inbox/events/stream", 1, "Last-Event-ID", "2").Expect(t, 200)
	if !bytes.HasPrefix(is.Body, []byte("id: 3\nevent: conversation.status_changed\n")) {
		t.Errorf("inbox stream %q", trunc(is.Body))
	}
	// Bad cursors.
	for _, q := range []string{"?after=-1", "?after=abc", "?after=9007199254740992", "?after=01"} {
		if code := o.Do(t, "GET", base+"/events"+q, nil).Expect(t, 400).ErrorCode(t); code != "invalid_cursor" {
			t.Errorf("%s: %s", q, code)
		}
	}
	if code := o.Stream(t, base+"/events/stream", 1, "Last-Event-ID", "x").Expect(t, 400).ErrorCode(t); code != "invalid_cursor" {
		t.Errorf("Last-Event-ID x: %s", code)
	}
	if code := o.Do(t, "GET", "/v1/inbox/events?after=1.5", nil).Expect(t, 400).ErrorCode(t); code != "invalid_cursor" {
		t.Errorf("inbox cursor: %s", code)
	}
}

func conversationMerge(t *testing.T, c *Client) {
	f := newChat(t, c, "Merge Co")
	o := f.owner
	src := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": f.contact, "message": map[string]any{"text": "second thread"}}).Expect(t, 201).JSON(t)["id"].(string)
	o.Do(t, "POST", "/v1/conversations/"+f.conv+"/messages", map[string]any{"text": "first thread"}, idem()...).Expect(t, 201)
	m := o.Do(t, "POST", "/v1/conversations/"+f.conv+"/merge", map[string]any{"source_id": src}).Expect(t, 200).JSON(t)
	if m["last_seq"] != float64(4) {
		t.Errorf("merged target: %v", m)
	}
	msgs := o.Do(t, "GET", "/v1/conversations/"+f.conv+"/messages", nil).Expect(t, 200).JSON(t)["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["text"] != "second thread" || msgs[1].(map[string]any)["merged_from"].(map[string]any)["conversation_id"] != src {
		t.Errorf("target messages: %v", msgs)
	}
	s := o.Do(t, "GET", "/v1/conversations/"+src, nil).Expect(t, 200).JSON(t)
	if s["status"] != "merged" || s["merged_into"] != f.conv {
		t.Errorf("source: %v", s)
	}
	if code := o.Do(t, "POST", "/v1/conversations/"+src+"/messages", map[string]any{"text": "late"}, idem()...).Expect(t, 409).ErrorCode(t); code != "conversation_merged" {
		t.Errorf("send to merged: %s", code)
	}
	other := o.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Bob"}).Expect(t, 201).JSON(t)["id"].(string)
	oc := o.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": other}).Expect(t, 201).JSON(t)["id"].(string)
	if code := o.Do(t, "POST", "/v1/conversations/"+f.conv+"/merge", map[string]any{"source_id": oc}).Expect(t, 422).ErrorCode(t); code != "different_contacts" {
		t.Errorf("merge across contacts: %s", code)
	}
}

func cannedResponses(t *testing.T, c *Client) {
	o := c.Signup(t, "Canned Co")
	cr := o.Do(t, "POST", "/v1/canned-responses", map[string]any{"code": "Refund", "text": "Refunds take 5 days."}).Expect(t, 201).JSON(t)
	id := cr["id"].(string)
	if cr["code"] != "refund" {
		t.Errorf("code %v", cr["code"])
	}
	if code := o.Do(t, "POST", "/v1/canned-responses", map[string]any{"code": "refund", "text": "again"}).Expect(t, 409).ErrorCode(t); code != "code_taken" {
		t.Errorf("duplicate code: %s", code)
	}
	o.Do(t, "PATCH", "/v1/canned-responses/"+id, map[string]any{"text": "Refunds take 3 days."}).Expect(t, 200)
	if got := o.Do(t, "GET", "/v1/canned-responses/"+id, nil).Expect(t, 200).JSON(t); got["text"] != "Refunds take 3 days." {
		t.Errorf("get: %v", got)
	}
	if l := o.Do(t, "GET", "/v1/canned-responses", nil).Expect(t, 200).JSON(t)["canned_responses"].([]any); len(l) != 1 {
		t.Errorf("list: %v", l)
	}
	o.Do(t, "DELETE", "/v1/canned-responses/"+id, nil).Expect(t, 204)
	o.Do(t, "GET", "/v1/canned-responses/"+id, nil).Expect(t, 404)
}

func conversationBadInput(t *testing.T, c *Client) {
	f := newChat(t, c, "Chat Bad Input Co")
	k := bearer(f.key)
	msgPath := "/v1/conversations/" + f.conv + "/messages"
	unknown := "c_" + strings.Repeat("a", 26)
	cases := []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		code, field        string
	}{
		{"text 10,001 characters", "POST", msgPath, map[string]any{"text": strings.Repeat("a", 10001)}, idem(), 422, "text_too_long", "text"},
		{"empty text", "POST", msgPath, map[string]any{"text": " "}, idem(), 400, "invalid_text", "text"},
		{"invalid UTF-8", "POST", msgPath, []byte("{\"text\":\"\xff\xfe\"}"), append(idem(), "Content-Type", "application/json"), 400, "invalid_text", "text"},
		{"NUL", "POST", msgPath, `{"text":"a\u0000b"}`, idem(), 400, "invalid_text", "text"},
		{"unknown field", "POST", msgPath, `{"text":"a","html":"<b>"}`, idem(), 400, "unknown_field", "html"},
		{"person author from a key", "POST", msgPath, map[string]any{"text": "a", "author_type": "person"}, idem(), 422, "invalid_author_type", "author_type"},
		{"unknown conversation", "POST", "/v1/conversations/" + unknown + "/messages", map[string]any{"text": "a"}, idem(), 404, "not_found", ""},
		{"malformed conversation id", "GET", "/v1/conversations/c_x", nil, nil, 404, "not_found", ""},
		{"unknown contact", "GET", "/v1/contacts/ct_" + strings.Repeat("a", 26), nil, nil, 404, "not_found", ""},
		{"conversation of unknown contact", "POST", "/v1/conversations", map[string]any{"contact_id": "ct_" + strings.Repeat("a", 26)}, nil, 404, "not_found", "contact_id"},
		{"bad status", "PATCH", "/v1/conversations/" + f.conv, map[string]any{"status": "closed"}, nil, 400, "invalid_status", "status"},
		{"snooze without time", "PATCH", "/v1/conversations/" + f.conv, map[string]any{"status": "snoozed"}, nil, 400, "invalid_snoozed_until", "snoozed_until"},
		{"snooze in the past", "PATCH", "/v1/conversations/" + f.conv, map[string]any{"snoozed_until": "2001-01-01T00:00:00Z"}, nil, 422, "invalid_snoozed_until", "snoozed_until"},
		{"bad label", "PATCH", "/v1/conversations/" + f.conv, map[string]any{"labels": []string{"ok", "not ok"}}, nil, 400, "invalid_label", "labels[1]"},
		{"bad priority", "PATCH", "/v1/conversations/" + f.conv, map[string]any{"priority": "asap"}, nil, 400, "invalid_priority", "priority"},
		{"nested attribute", "POST", "/v1/contacts", map[string]any{"attributes": map[string]any{"a": map[string]any{"b": 1}}}, nil, 400, "invalid_attributes", "attributes.a"},
		{"bad email", "POST", "/v1/contacts", map[string]any{"email": "not an email"}, nil, 400, "invalid_email", "email"},
		{"bad list cursor", "GET", "/v1/conversations?cursor=zzz", nil, nil, 400, "invalid_cursor", ""},
		{"bad contacts cursor", "GET", "/v1/contacts?cursor=MTIz", nil, nil, 400, "invalid_cursor", ""},
		{"bad messages cursor", "GET", msgPath + "?after=x", nil, nil, 400, "invalid_cursor", ""},
		{"bad wait", "GET", "/v1/conversations/" + f.conv + "/events?wait=soon", nil, nil, 400, "invalid_wait", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do(t, tc.method, tc.path, tc.body, append(append([]string{}, k...), tc.hdr...)...)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
			}
			if code := r.ErrorCode(t); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if tc.field != "" {
				if got, _ := r.JSON(t)["error"].(map[string]any)["field"].(string); got != tc.field {
					t.Errorf("field %q, want %q", got, tc.field)
				}
			}
		})
	}
	if r := c.Do(t, "POST", msgPath, map[string]any{"text": strings.Repeat("a", 10001)}, append(append([]string{}, k...), idem()...)...); !bytes.Contains(r.Body, []byte("10000")) {
		t.Errorf("the limit is not named: %s", trunc(r.Body))
	}
	c.Do(t, "POST", msgPath, map[string]any{"text": strings.Repeat("é", 10000)}, append(append([]string{}, k...), idem()...)...).Expect(t, 201)
	// Nothing above changed the conversation but the last, valid send.
	cv := f.owner.Do(t, "GET", "/v1/conversations/"+f.conv, nil).Expect(t, 200).JSON(t)
	if cv["last_seq"] != float64(2) || cv["status"] != "open" || fmt.Sprint(cv["labels"]) != "[]" || cv["priority"] != "none" {
		t.Errorf("bad input changed the conversation: %v", cv)
	}
}
