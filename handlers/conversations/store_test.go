// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package conversations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	p     storage.Platform
	clk   *storagetest.Clock
	s     *Store
	user  Actor
	key   Actor
	ct    string // a contact
	userB string
}

// open gives a fresh local platform (real SQLite, all migrations), a
// tenant with its data key, a member and a contact.
func open(t testing.TB) *fixture {
	t.Helper()
	clk := storagetest.NewClock(t0)
	f := &fixture{p: localtest.Open(t, clk), clk: clk}
	f.s = f.tenant(t, "t_a")
	f.user = Actor{Type: "user", ID: "u_a"}
	f.key = Actor{Type: "api_key", ID: "key_a"}
	f.member(t, "t_a", "u_a")
	c, err := f.s.CreateContact(context.Background(), ContactInput{Name: ptr("Ann"), Email: ptr("ann@example.com")})
	if err != nil {
		t.Fatal(err)
	}
	f.ct = c.ID
	return f
}

func (f *fixture) tenant(t testing.TB, id string) *Store {
	ctx := context.Background()
	if _, err := f.p.SQL.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, id, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := envelope.New(f.p).Ensure(ctx, id); err != nil {
		t.Fatal(err)
	}
	return NewStore(f.p, nil, id)
}

func (f *fixture) member(t testing.TB, tenant, user string) {
	ctx := context.Background()
	f.p.SQL.Exec(ctx, `INSERT INTO users (id, email, password_hash, password_changed_at, created_at) VALUES (?, ?, 'x', 0, 0) ON CONFLICT DO NOTHING`, user, user+"@example.com")
	if _, err := f.p.SQL.Exec(ctx, `INSERT INTO memberships (tenant_id, user_id, role, created_at, updated_at) VALUES (?, ?, 'agent', 0, 0)`, tenant, user); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func (f *fixture) conv(t testing.TB) string {
	t.Helper()
	c, _, _, err := f.s.CreateConversation(context.Background(), f.user, CreateInput{ContactID: f.ct}, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// status and code of an API error.
func code(err error) (int, string) {
	var e *web.Error
	if errors.As(err, &e) {
		return e.Status, e.Code
	}
	return 0, fmt.Sprint(err)
}

func wantCode(t testing.TB, err error, status int, c string) {
	t.Helper()
	if gs, gc := code(err); gs != status || gc != c {
		t.Fatalf("got %d %s (%v), want %d %s", gs, gc, err, status, c)
	}
}

// TestConcurrentSendsGetConsecutiveSeqs: many writers on one conversation
// at once; every send succeeds, seqs are distinct and consecutive, the
// log has no gap, and each message sits at its event's seq.
func TestConcurrentSendsGetConsecutiveSeqs(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	const writers, each = 8, 10
	var mu sync.Mutex
	var seqs []int64
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				actor := f.key
				m, _, err := f.s.Send(ctx, actor, id, SendInput{Text: fmt.Sprintf("w%d m%d", w, i)}, fmt.Sprintf("k-%d-%d", w, i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seqs = append(seqs, m.Seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(i+2) { // seq 1 is conversation.created
			t.Fatalf("seqs %v: not consecutive from 2", seqs)
		}
	}
	evs, cursor, more, err := f.s.Events(ctx, id, 0, AudienceTeam)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*each+1 || cursor != int64(writers*each+1) || more {
		t.Fatalf("%d events, cursor %d, more %v", len(evs), cursor, more)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	c, _ := f.s.Conversation(ctx, id)
	if c.LastSeq != int64(writers*each+1) || c.Unread != writers*each {
		t.Fatalf("conversation %+v", c)
	}
}

// TestIdempotentSend: the same key twice gives the first message (and one
// row); the same key with another body is refused; another key sends.
func TestIdempotentSend(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	m1, replay, err := f.s.Send(ctx, f.user, id, SendInput{Text: "hello"}, "key-1")
	if err != nil || replay {
		t.Fatal(err, replay)
	}
	m2, replay, err := f.s.Send(ctx, f.user, id, SendInput{Text: "hello"}, "key-1")
	if err != nil || !replay || m2.ID != m1.ID || m2.Seq != m1.Seq || m2.Text != "hello" {
		t.Fatalf("replay: %+v %v %v (first %+v)", m2, replay, err, m1)
	}
	_, _, err = f.s.Send(ctx, f.user, id, SendInput{Text: "something else"}, "key-1")
	wantCode(t, err, 422, "idempotency_key_reused")
	// The same key on another conversation is another request, too.
	_, _, err = f.s.Send(ctx, f.user, f.conv(t), SendInput{Text: "hello"}, "key-1")
	wantCode(t, err, 422, "idempotency_key_reused")
	// Keys are per principal: an API key's "key-1" is its own.
	if _, replay, err := f.s.Send(ctx, f.key, id, SendInput{Text: "hello"}, "key-1"); err != nil || replay {
		t.Fatal(err, replay)
	}
	msgs, _, err := f.s.Messages(ctx, id, 0, 100, AudienceTeam)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	_, _, err = f.s.Send(ctx, f.user, id, SendInput{Text: "x"}, "bad key with spaces")
	wantCode(t, err, 400, "invalid_idempotency_key")
}

// failingSQL fails the next Batch after writing nothing, like a crash or
// a storage error between the request and its commit.
type failingSQL struct {
	storage.SQL
	fail bool
}

func (f *failingSQL) Batch(ctx context.Context, stmts []storage.Stmt) ([]storage.Result, error) {
	if f.fail {
		f.fail = false
		return nil, fmt.Errorf("injected: %w", storage.ErrUnavailable)
	}
	return f.SQL.Batch(ctx, stmts)
}

// TestIdempotentSendAfterFailedBatch: a send whose batch failed wrote
// nothing, not even its key; the retry with the same key sends exactly one
// message; a further retry replays it.
func TestIdempotentSendAfterFailedBatch(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	fs := &failingSQL{SQL: f.s.SQL, fail: true}
	s := *f.s
	s.SQL = fs
	if _, _, err := s.Send(ctx, f.user, id, SendInput{Text: "once"}, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("injected failure: %v", err)
	}
	m1, replay, err := s.Send(ctx, f.user, id, SendInput{Text: "once"}, "k")
	if err != nil || replay {
		t.Fatal(err, replay)
	}
	m2, replay, err := s.Send(ctx, f.user, id, SendInput{Text: "once"}, "k")
	if err != nil || !replay || m2.ID != m1.ID {
		t.Fatal(err, replay)
	}
	msgs, _, _ := f.s.Messages(ctx, id, 0, 100, AudienceTeam)
	if len(msgs) != 1 || msgs[0].Seq != 2 {
		t.Fatalf("messages %+v", msgs)
	}
}

// TestConcurrentRetriesOfOneKey: the same send retried by many clients at
// once yields one message; every one of them gets it.
func TestConcurrentRetriesOfOneKey(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _, err := f.s.Send(ctx, f.key, id, SendInput{Text: "dup"}, "same")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.ID
		}()
	}
	wg.Wait()
	for _, x := range ids {
		if x != ids[0] {
			t.Fatalf("ids %v", ids)
		}
	}
	if msgs, _, _ := f.s.Messages(ctx, id, 0, 100, AudienceTeam); len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
}

// TestListCursorWithEqualTimestamps: with a clock that never moves, every
// conversation and contact has the same timestamp; paging still returns
// each exactly once.
func TestListCursorWithEqualTimestamps(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	want := map[string]bool{}
	for range 23 {
		want[f.conv(t)] = true
	}
	for _, limit := range []int{1, 5, 22, 23, 50} {
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			page, next, err := f.s.Conversations(ctx, Filter{}, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range page {
				if seen[c.ID] {
					t.Fatalf("limit %d: %s repeated", limit, c.ID)
				}
				seen[c.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
			if pages > 100 {
				t.Fatal("no end")
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("limit %d: saw %d of %d", limit, len(seen), len(want))
		}
	}
	for range 12 {
		if _, err := f.s.CreateContact(ctx, ContactInput{Name: ptr("same time")}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for {
		page, next, err := f.s.Contacts(ctx, cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			if seen[c.ID] {
				t.Fatalf("contact %s repeated", c.ID)
			}
			seen[c.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 13 {
		t.Fatalf("saw %d contacts", len(seen))
	}
	_, _, err := f.s.Conversations(ctx, Filter{}, "not-a-cursor", 5)
	wantCode(t, err, 400, "invalid_cursor")
}

// TestSealingBindsTenantKindAndID: a message's sealed text moved to
// another message, or to the same id in another tenant, fails to open.
func TestSealingBindsTenantKindAndID(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	m1, _, err := f.s.Send(ctx, f.user, id, SendInput{Text: "secret one"}, "")
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := f.s.Send(ctx, f.user, id, SendInput{Text: "secret two"}, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := f.p.SQL.Query(ctx, `SELECT text_sealed FROM messages WHERE tenant_id = ? AND id = ?`, "t_a", m1.ID)
	var sealed []byte
	raw.Scan(0, &sealed)
	if strings.Contains(string(sealed), "secret one") {
		t.Fatal("text stored in clear")
	}
	// Moved to another message of the same tenant.
	f.p.SQL.Exec(ctx, `UPDATE messages SET text_sealed = ? WHERE tenant_id = ? AND id = ?`, sealed, "t_a", m2.ID)
	if _, err := f.s.message(ctx, m2.ID); !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("moved ciphertext opened: %v", err)
	}
	// Same id, another tenant.
	b := f.tenant(t, "t_b")
	if _, err := b.Keys.Open(ctx, "t_b", kindText, m1.ID, sealed); !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("another tenant opened it: %v", err)
	}
	// Same tenant and id, another kind.
	if _, err := f.s.Keys.Open(ctx, "t_a", kindCanned, m1.ID, sealed); !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("another kind opened it: %v", err)
	}
	// Contact PII is sealed too and found by email only through the index.
	rows, _ := f.p.SQL.Query(ctx, `SELECT pii_sealed, email_index FROM contacts WHERE tenant_id = ? AND id = ?`, "t_a", f.ct)
	var pii, idx []byte
	rows.Scan(0, &pii, &idx)
	if strings.Contains(string(pii), "ann@") || strings.Contains(string(idx), "ann@") || len(idx) != 32 {
		t.Fatalf("contact stored in clear: %q %q", pii, idx)
	}
}

// TestContactsByEmail: normalized lookup, uniqueness per tenant, and the
// index of one tenant does not find another's contact.
func TestContactsByEmail(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	c, err := f.s.ContactByEmail(ctx, "  ANN@Example.COM ")
	if err != nil || c.ID != f.ct || c.Name != "Ann" {
		t.Fatalf("%+v %v", c, err)
	}
	_, err = f.s.CreateContact(ctx, ContactInput{Email: ptr("ann@EXAMPLE.com")})
	wantCode(t, err, 409, "email_taken")
	b := f.tenant(t, "t_b")
	_, err = b.ContactByEmail(ctx, "ann@example.com")
	wantCode(t, err, 404, "not_found")
	if _, err := b.CreateContact(ctx, ContactInput{Email: ptr("ann@example.com")}); err != nil {
		t.Fatalf("the same email in another tenant: %v", err)
	}
	// Changing the email moves the index.
	u, err := f.s.UpdateContact(ctx, f.ct, ContactInput{Email: ptr("ann2@example.com"), Attributes: []byte(`{"plan":"pro","seats":3}`)})
	if err != nil || u.Email != "ann2@example.com" || u.Name != "Ann" || string(u.Attributes) != `{"plan":"pro","seats":3}` || u.Version != 2 {
		t.Fatalf("%+v %v", u, err)
	}
	if _, err := f.s.ContactByEmail(ctx, "ann@example.com"); err == nil {
		t.Fatal("old email still finds the contact")
	}
	if c, err := f.s.ContactByEmail(ctx, "ann2@example.com"); err != nil || c.ID != f.ct {
		t.Fatal(err)
	}
	// A contact with conversations cannot be deleted; one without can.
	f.conv(t)
	wantCode(t, f.s.DeleteContact(ctx, f.ct), 409, "contact_has_conversations")
	lone, _ := f.s.CreateContact(ctx, ContactInput{Name: ptr("Lone")})
	if err := f.s.DeleteContact(ctx, lone.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.DeleteContact(ctx, lone.ID), 404, "not_found")
}

// TestMerge: source's messages appear in target's log after target's own,
// in order, referring to the same messages; source is final.
func TestMerge(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	target, source := f.conv(t), f.conv(t)
	send := func(conv, text string, private bool) *Message {
		m, _, err := f.s.Send(ctx, f.user, conv, SendInput{Text: text, Private: private}, "")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(target, "t1", false)
	s1 := send(source, "s1", false)
	send(source, "s2 note", true)
	send(source, "s3", false)
	c, moved, err := f.s.Merge(ctx, f.user, target, source)
	if err != nil || moved != 3 {
		t.Fatal(err, moved)
	}
	// target: 1 created, 2 t1, 3..5 the merged messages, 6 merged.
	if c.LastSeq != 6 {
		t.Fatalf("target last_seq %d", c.LastSeq)
	}
	msgs, _, err := f.s.Messages(ctx, target, 0, 100, AudienceTeam)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, fmt.Sprintf("%d:%s", m.Seq, m.Text))
	}
	if got := strings.Join(texts, " "); got != "2:t1 3:s1 4:s2 note 5:s3" {
		t.Fatalf("target messages: %s", got)
	}
	if msgs[1].ID != s1.ID || msgs[1].MergedFrom == nil || msgs[1].MergedFrom.ConversationID != source || msgs[1].MergedFrom.Seq != s1.Seq {
		t.Fatalf("merged message %+v", msgs[1])
	}
	// Visitors never see the note, in messages or events.
	vm, _, _ := f.s.Messages(ctx, target, 0, 100, AudienceVisitor)
	if len(vm) != 3 {
		t.Fatalf("visitor sees %d messages", len(vm))
	}
	f.s.Visitor = f.ct
	evs, cursor, _, err := f.s.Events(ctx, target, 0, AudienceVisitor)
	if err != nil || len(evs) == 0 {
		t.Fatalf("the visitor's events: %v %v", evs, err)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data), "s2 note") {
			t.Fatal("visitor stream carries a private note")
		}
	}
	if cursor != 6 || evs[len(evs)-1].Type != "merged" {
		t.Fatalf("visitor events end at %d with %s", cursor, evs[len(evs)-1].Type)
	}
	sc, _ := f.s.Conversation(ctx, source)
	if sc.Status != StatusMerged || sc.MergedInto == nil || *sc.MergedInto != target || sc.LastSeq != 5 {
		t.Fatalf("source %+v", sc)
	}
	_, _, err = f.s.Send(ctx, f.user, source, SendInput{Text: "late"}, "")
	wantCode(t, err, 409, "conversation_merged")
	_, _, err = f.s.Merge(ctx, f.user, target, source)
	wantCode(t, err, 409, "conversation_merged")
	// Another contact's conversation cannot be merged.
	other, _ := f.s.CreateContact(ctx, ContactInput{Name: ptr("Bob")})
	oc, _, _, _ := f.s.CreateConversation(ctx, f.user, CreateInput{ContactID: other.ID}, "")
	_, _, err = f.s.Merge(ctx, f.user, target, oc.ID)
	wantCode(t, err, 422, "different_contacts")
	// Merging into itself.
	_, _, err = f.s.Merge(ctx, f.user, target, target)
	wantCode(t, err, 400, "invalid_merge")
}

// TestUpdateAppendsOneEventPerChange and snooze/wake.
func TestUpdateAppendsOneEventPerChange(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	until := t0.Add(time.Hour).Format(time.RFC3339)
	c, changed, err := f.s.UpdateConversation(ctx, f.user, id, UpdateInput{Status: ptr("snoozed"), SnoozedUntil: &until,
		AssigneeID: []byte(`"u_a"`), Labels: &[]string{"Billing", "vip", "billing"}, Priority: ptr("high")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{"status", "assignee_id", "labels", "priority"}) || c.LastSeq != 5 ||
		!slices.Equal(c.Labels, []string{"billing", "vip"}) || c.Status != "snoozed" || *c.AssigneeID != "u_a" {
		t.Fatalf("%+v %v", c, changed)
	}
	// No change: no event.
	c, changed, err = f.s.UpdateConversation(ctx, f.user, id, UpdateInput{Priority: ptr("high"), AddLabels: []string{"vip"}})
	if err != nil || len(changed) != 0 || c.LastSeq != 5 {
		t.Fatal(err, changed, c.LastSeq)
	}
	_, _, err = f.s.UpdateConversation(ctx, f.user, id, UpdateInput{AssigneeID: []byte(`"u_nobody"`)})
	wantCode(t, err, 422, "invalid_assignee")
	past := t0.Add(-time.Minute).Format(time.RFC3339)
	_, _, err = f.s.UpdateConversation(ctx, f.user, id, UpdateInput{SnoozedUntil: &past})
	wantCode(t, err, 422, "invalid_snoozed_until")
	// The filters find it.
	for _, flt := range []Filter{{Status: "snoozed"}, {Assignee: "u_a"}, {Label: "vip"}, {ContactID: f.ct}} {
		l, _, err := f.s.Conversations(ctx, flt, "", 10)
		if err != nil || len(l) != 1 {
			t.Fatalf("filter %+v: %d %v", flt, len(l), err)
		}
	}
	if l, _, _ := f.s.Conversations(ctx, Filter{Label: "other"}, "", 10); len(l) != 0 {
		t.Fatal("label filter")
	}
	// Not due yet: nothing.
	if n, err := WakeDue(ctx, f.p, 10); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	f.clk.Advance(time.Hour)
	if n, err := WakeDue(ctx, f.p, 10); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	// A second wake (the job after the sweep) changes nothing.
	ms := t0.Add(time.Hour).UnixMilli()
	if woke, err := f.s.Wake(ctx, id, ms); woke || err != nil {
		t.Fatal(woke, err)
	}
	c, _ = f.s.Conversation(ctx, id)
	if c.Status != "open" || c.SnoozedUntil != nil || c.LastSeq != 6 {
		t.Fatalf("%+v", c)
	}
	evs, _, _, _ := f.s.Events(ctx, id, 5, AudienceTeam)
	if len(evs) != 1 || evs[0].Type != EvStatusChanged || evs[0].Actor != "system" {
		t.Fatalf("%+v", evs)
	}
}

// TestInboxFeed: creation, visitor messages, assignment and read enter the
// tenant feed in order with unread counts; typing and private notes do not.
func TestInboxFeed(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	f.s.Send(ctx, f.key, id, SendInput{Text: "visitor says hi"}, "")
	f.s.Send(ctx, f.user, id, SendInput{Text: "note", Private: true}, "")
	f.s.Typing(ctx, f.user, id, true, false)
	f.s.UpdateConversation(ctx, f.user, id, UpdateInput{AssigneeID: []byte(`"u_a"`)})
	f.s.MarkRead(ctx, f.user, id)
	if seq, _ := f.s.MarkRead(ctx, f.user, id); seq != 6 {
		t.Fatalf("second read appended an event: %d", seq)
	}
	evs, cursor, more, err := f.s.InboxEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if strings.Join(types, " ") != "conversation.created message.created conversation.assigned read" || cursor != 4 || more {
		t.Fatalf("inbox %v cursor %d", types, cursor)
	}
	if !strings.Contains(string(evs[1].Data), `"unread":0`) || strings.Contains(string(evs[1].Data), "visitor says") {
		t.Fatalf("message event %s", evs[1].Data)
	}
	// Another tenant's feed is its own.
	b := f.tenant(t, "t_b")
	if evs, _, _, _ := b.InboxEvents(ctx, 0); len(evs) != 0 {
		t.Fatal("tenant b sees a's feed")
	}
	if _, _, _, err := b.Events(ctx, id, 0, AudienceTeam); err == nil {
		t.Fatal("tenant b reads a's conversation")
	}
}

// TestLimits crosses each bound.
func TestLimits(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	if _, _, err := f.s.Send(ctx, f.user, id, SendInput{Text: strings.Repeat("é", MaxText)}, ""); err != nil {
		t.Fatalf("exactly %d characters: %v", MaxText, err)
	}
	_, _, err := f.s.Send(ctx, f.user, id, SendInput{Text: strings.Repeat("a", MaxText+1)}, "")
	wantCode(t, err, 422, "text_too_long")
	if !strings.Contains(err.Error(), "10000") {
		t.Fatalf("the error does not name the limit: %v", err)
	}
	_, _, err = f.s.Send(ctx, f.user, id, SendInput{Text: "  "}, "")
	wantCode(t, err, 400, "invalid_text")
	_, _, err = f.s.Send(ctx, f.key, id, SendInput{Text: "n", Private: true}, "")
	wantCode(t, err, 403, "private_notes_people_only")
	_, _, err = f.s.Send(ctx, f.user, id, SendInput{Text: "n", AuthorType: "visitor"}, "")
	wantCode(t, err, 422, "invalid_author_type")
	labels := make([]string, MaxLabels+1)
	for i := range labels {
		labels[i] = fmt.Sprintf("l%d", i)
	}
	_, _, err = f.s.UpdateConversation(ctx, f.user, id, UpdateInput{Labels: &labels})
	wantCode(t, err, 422, "too_many_labels")
	if _, _, err := f.s.UpdateConversation(ctx, f.user, id, UpdateInput{Labels: ptr(labels[:MaxLabels])}); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.UpdateConversation(ctx, f.user, id, UpdateInput{AddLabels: []string{"one-more"}})
	wantCode(t, err, 422, "too_many_labels")
	// Canned responses: the count bound.
	for i := range MaxCanned {
		if _, err := f.s.CreateCanned(ctx, CannedInput{Code: ptr(fmt.Sprintf("c%d", i)), Text: ptr("t")}); err != nil {
			t.Fatal(i, err)
		}
	}
	_, err = f.s.CreateCanned(ctx, CannedInput{Code: ptr("over"), Text: ptr("t")})
	wantCode(t, err, 422, "too_many_canned_responses")
	_, err = f.s.UpdateCanned(ctx, mustCanned(t, f.s, "c1"), CannedInput{Code: ptr("c2")})
	wantCode(t, err, 409, "code_taken")
}

func mustCanned(t *testing.T, s *Store, code string) string {
	l, err := s.CannedResponses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range l {
		if c.Code == code {
			return c.ID
		}
	}
	t.Fatalf("no canned %s", code)
	return ""
}

// TestEventsPage: a page holds at most PageEvents; the rest follows.
func TestEventsPage(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	for i := range PageEvents + 5 {
		if _, err := f.s.Typing(ctx, f.user, id, i%2 == 0, false); err != nil {
			t.Fatal(err)
		}
	}
	evs, cursor, more, err := f.s.Events(ctx, id, 0, AudienceTeam)
	if err != nil || len(evs) != PageEvents || cursor != PageEvents || !more {
		t.Fatal(len(evs), cursor, more, err)
	}
	evs, cursor, more, _ = f.s.Events(ctx, id, cursor, AudienceTeam)
	if len(evs) != 6 || cursor != PageEvents+6 || more {
		t.Fatal(len(evs), cursor, more)
	}
}

// TestWakeJobAndRenderer: the wake job's payload round-trips and wakes
// only when due; the webhook renderer gives an event with its message.
func TestWakeJobAndRenderer(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	id := f.conv(t)
	var enqueued []int64
	f.s.ScheduleWake = func(tenant, conv string, until, now int64) storage.Stmt {
		enqueued = append(enqueued, until)
		return storage.Stmt{Query: `UPDATE inbox_heads SET last_seq = last_seq WHERE tenant_id = ?`, Args: []any{tenant}}
	}
	until := t0.Add(time.Hour)
	u := until.Format(time.RFC3339)
	if _, _, err := f.s.UpdateConversation(ctx, f.user, id, UpdateInput{SnoozedUntil: &u}); err != nil {
		t.Fatal(err)
	}
	if len(enqueued) != 1 || enqueued[0] != until.UnixMilli() {
		t.Fatalf("wake not scheduled in the batch: %v", enqueued)
	}
	if err := RunWake(ctx, f.p, "t_a", WakePayload(id, until.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.s.Conversation(ctx, id); c.Status != "snoozed" {
		t.Fatal("woke before its time")
	}
	f.clk.Advance(time.Hour)
	if err := RunWake(ctx, f.p, "t_a", WakePayload(id, until.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.s.Conversation(ctx, id); c.Status != "open" {
		t.Fatalf("not woken: %s", c.Status)
	}
	if err := RunWake(ctx, f.p, "t_a", []byte(`{"conversation_id":"x"}`)); err == nil {
		t.Fatal("malformed payload accepted")
	}
	m, _, _ := f.s.Send(ctx, f.key, id, SendInput{Text: "for the hook"}, "")
	typ, data, err := Renderer{P: f.p}.Event(ctx, "t_a", id, m.Seq)
	if err != nil || typ != EvMessageCreated || !strings.Contains(string(data), "for the hook") {
		t.Fatalf("%s %s %v", typ, data, err)
	}
	if _, _, err := (Renderer{P: f.p}).Event(ctx, "t_b", id, m.Seq); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another tenant's event: %v", err)
	}
}
