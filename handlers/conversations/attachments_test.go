//go:build !js && !wasip1

package conversations

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (f *fixture) attach(t testing.TB, actor Actor, conv, msg string, data []byte) (*Message, error) {
	t.Helper()
	return f.s.Attach(context.Background(), f.p.Blobs, actor, conv, msg, bytes.NewReader(data), int64(len(data)))
}

func (f *fixture) read(t testing.TB, conv, msg string, aud Audience) ([]byte, error) {
	t.Helper()
	rc, size, err := f.s.OpenAttachment(context.Background(), f.p.Blobs, conv, msg, aud)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil && int64(len(b)) != size {
		t.Fatalf("attachment of %d bytes reports size %d", len(b), size)
	}
	return b, err
}

// blobsUnder lists the blob keys under a message's prefix.
func (f *fixture) blobsUnder(t testing.TB, tenant, msg string) []string {
	t.Helper()
	l, err := f.p.Blobs.List(context.Background(), "t/"+tenant+"/messages/"+msg+"/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range l.Objects {
		out = append(out, o.Key)
	}
	return out
}

// TestAttachmentRoundTrip: the bytes come back as sent, sealed at rest
// under a tenant-scoped key; the message shows the size in every view,
// and the log gets one event for the attachment.
func TestAttachmentRoundTrip(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	conv := f.conv(t)
	m, _, err := f.s.Send(ctx, f.user, conv, SendInput{Text: "the invoice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3*envelope.ChunkSize + 5)
	got, err := f.attach(t, f.user, conv, m.ID, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.AttachmentSize == nil || *got.AttachmentSize != int64(len(data)) || got.ID != m.ID || got.Text != "the invoice" {
		t.Fatalf("attach returned %+v", got)
	}
	back, err := f.read(t, conv, m.ID, AudienceTeam)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes, %v", len(back), err)
	}
	keys := f.blobsUnder(t, "t_a", m.ID)
	if len(keys) != 1 {
		t.Fatalf("blobs %v", keys)
	}
	rc, _, err := f.p.Blobs.Get(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if bytes.Contains(raw, data[:64]) || int64(len(raw)) != envelope.SealedSize(int64(len(data))) {
		t.Fatalf("the blob is not the sealed stream (%d bytes)", len(raw))
	}
	msgs, _, err := f.s.Messages(ctx, conv, 0, 10, AudienceTeam)
	if err != nil || len(msgs) != 1 || msgs[0].AttachmentSize == nil || *msgs[0].AttachmentSize != int64(len(data)) {
		t.Fatalf("messages %+v %v", msgs, err)
	}
	evs, _, _, err := f.s.Events(ctx, conv, 0, AudienceTeam)
	if err != nil || len(evs) != 3 {
		t.Fatalf("events %+v %v", evs, err)
	}
	if e := evs[2]; e.Type != EvAttachmentAdded || e.Seq != 3 || !strings.Contains(string(e.Data), m.ID) || !strings.Contains(string(e.Data), fmt.Sprint(len(data))) {
		t.Fatalf("attachment event %+v %s", e, e.Data)
	}
	if !strings.Contains(string(evs[1].Data), `"attachment_size":`) {
		t.Errorf("message.created does not show the attachment: %s", evs[1].Data)
	}
	// An empty file is a file.
	m2, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "empty"}, "")
	if a, err := f.attach(t, f.user, conv, m2.ID, nil); err != nil || *a.AttachmentSize != 0 {
		t.Fatalf("empty attachment: %+v %v", a, err)
	}
	if b, err := f.read(t, conv, m2.ID, AudienceTeam); err != nil || len(b) != 0 {
		t.Fatalf("empty attachment back: %q %v", b, err)
	}
}

// TestAttachmentRules: only the sender, once, within the limit; the
// message must be in the conversation's log; a private note's attachment
// is as private as the note; a merged conversation takes none.
func TestAttachmentRules(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	conv, other := f.conv(t), f.conv(t)
	m, _, _ := f.s.Send(ctx, f.key, conv, SendInput{Text: "from the integration"}, "")
	first := []byte("the first file")

	_, err := f.attach(t, f.user, conv, m.ID, []byte("not mine"))
	wantCode(t, err, 403, "not_message_sender")
	_, err = f.attach(t, f.key, other, m.ID, first)
	wantCode(t, err, 404, "not_found")
	_, err = f.attach(t, f.key, conv, "m_x", first)
	wantCode(t, err, 404, "not_found")
	_, err = f.attach(t, f.key, "c_"+strings.Repeat("a", 26), m.ID, first)
	wantCode(t, err, 404, "not_found")
	b := f.tenant(t, "t_b")
	_, err = b.Attach(ctx, f.p.Blobs, f.key, conv, m.ID, bytes.NewReader(first), int64(len(first)))
	wantCode(t, err, 404, "not_found")

	// The limit, crossed by one byte: refused, nothing kept.
	_, err = f.s.Attach(ctx, f.p.Blobs, f.key, conv, m.ID, io.LimitReader(zeros{}, MaxAttachment+1), -1)
	wantCode(t, err, 413, "too_large")
	if keys := f.blobsUnder(t, "t_a", m.ID); len(keys) != 0 {
		t.Fatalf("an attachment over the limit left %v", keys)
	}
	_, err = f.s.Attach(ctx, f.p.Blobs, f.key, conv, m.ID, bytes.NewReader(first), MaxAttachment+1)
	wantCode(t, err, 413, "too_large")
	_, _, err = f.s.OpenAttachment(ctx, f.p.Blobs, conv, m.ID, AudienceTeam)
	wantCode(t, err, 404, "not_found")
	if c, _ := f.s.Conversation(ctx, conv); c.LastSeq != 2 {
		t.Fatalf("refused attachments changed the log: last_seq %d", c.LastSeq)
	}

	if _, err := f.attach(t, f.key, conv, m.ID, first); err != nil {
		t.Fatal(err)
	}
	_, err = f.attach(t, f.key, conv, m.ID, []byte("a second file"))
	wantCode(t, err, 409, "attachment_exists")
	if got, err := f.read(t, conv, m.ID, AudienceTeam); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("after the refused second upload: %q %v", got, err)
	}
	if keys := f.blobsUnder(t, "t_a", m.ID); len(keys) != 1 {
		t.Fatalf("the refused upload left its blob: %v", keys)
	}
	if got, err := f.read(t, conv, m.ID, AudienceVisitor); err != nil || !bytes.Equal(got, first) {
		t.Fatalf("a visitor reads a public message's attachment: %q %v", got, err)
	}

	// A private note's attachment: visitors never find it or its event.
	note, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "internal", Private: true}, "")
	if _, err := f.attach(t, f.user, conv, note.ID, []byte("internal file")); err != nil {
		t.Fatal(err)
	}
	_, err = f.read(t, conv, note.ID, AudienceVisitor)
	wantCode(t, err, 404, "not_found")
	f.s.Visitor = f.ct
	evs, _, _, err := f.s.Events(ctx, conv, 0, AudienceVisitor)
	if err != nil || len(evs) == 0 {
		t.Fatalf("the visitor's events: %v %v", evs, err)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data), note.ID) {
			t.Fatalf("a visitor's stream shows the private note's attachment: %+v", e)
		}
	}

	// Merged: the source takes no attachment; the target shows the
	// merged message, and takes it.
	mm, _, _ := f.s.Send(ctx, f.user, other, SendInput{Text: "to be merged"}, "")
	if _, _, err := f.s.Merge(ctx, f.user, conv, other); err != nil {
		t.Fatal(err)
	}
	_, err = f.attach(t, f.user, other, mm.ID, first)
	wantCode(t, err, 409, "conversation_merged")
	if a, err := f.attach(t, f.user, conv, mm.ID, first); err != nil || a.MergedFrom == nil || a.ConversationID != conv {
		t.Fatalf("attaching to a merged message in its target: %+v %v", a, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestConcurrentAttachmentsOneWins: uploads racing for one message; one
// commits, the others get 409, and only the winner's blob remains.
func TestConcurrentAttachmentsOneWins(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	conv := f.conv(t)
	m, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "racing"}, "")
	const n = 6
	var wg sync.WaitGroup
	won := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(fmt.Sprintf("upload %d ", i) + strings.Repeat("x", 100<<10))
			st := NewStore(f.p, nil, "t_a")
			_, errs[i] = st.Attach(ctx, f.p.Blobs, f.user, conv, m.ID, bytes.NewReader(data), int64(len(data)))
			if errs[i] == nil {
				won[i] = data
			}
		}()
	}
	wg.Wait()
	var winner []byte
	for i, err := range errs {
		switch s, c := code(err); {
		case err == nil:
			if winner != nil {
				t.Fatal("two uploads won")
			}
			winner = won[i]
		case s != 409 || c != "attachment_exists":
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if winner == nil {
		t.Fatal("no upload won")
	}
	if got, err := f.read(t, conv, m.ID, AudienceTeam); err != nil || !bytes.Equal(got, winner) {
		t.Fatalf("the attachment is not the winner's: %.20q %v", got, err)
	}
	if keys := f.blobsUnder(t, "t_a", m.ID); len(keys) != 1 {
		t.Fatalf("losers left their blobs: %v", keys)
	}
	if c, _ := f.s.Conversation(ctx, conv); c.LastSeq != 3 {
		t.Fatalf("last_seq %d, want 3 (one attachment event)", c.LastSeq)
	}
}

// TestAttachmentSealingAndShredding: a blob moved under another message
// does not open, and after the tenant's key is shredded nothing does.
func TestAttachmentSealingAndShredding(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	conv := f.conv(t)
	m1, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "one"}, "")
	m2, _, _ := f.s.Send(ctx, f.user, conv, SendInput{Text: "two"}, "")
	f.attach(t, f.user, conv, m1.ID, []byte("file one"))
	f.attach(t, f.user, conv, m2.ID, []byte("file two"))
	k1, k2 := f.blobsUnder(t, "t_a", m1.ID)[0], f.blobsUnder(t, "t_a", m2.ID)[0]
	rc, _, _ := f.p.Blobs.Get(ctx, k1)
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if _, err := f.p.Blobs.Put(ctx, k2, bytes.NewReader(raw), int64(len(raw)), storage.BlobPutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.read(t, conv, m2.ID, AudienceTeam); !errors.Is(err, envelope.ErrCorrupt) {
		t.Fatalf("a blob moved under another message opened: %v", err)
	}
	if err := f.s.Keys.Shred(ctx, "t_a"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewStore(f.p, nil, "t_a").OpenAttachment(ctx, f.p.Blobs, conv, m1.ID, AudienceTeam); !errors.Is(err, envelope.ErrShredded) {
		t.Fatalf("after shredding: %v", err)
	}
	// Tenant deletion removes the rows.
	if _, err := f.p.SQL.Batch(ctx, PurgeTenantStmts("t_a")); err != nil {
		t.Fatal(err)
	}
	rows, _ := f.p.SQL.Query(ctx, `SELECT COUNT(*) FROM message_attachments WHERE tenant_id = ?`, "t_a")
	var n int64
	rows.Scan(0, &n)
	if n != 0 {
		t.Fatalf("%d attachment rows after the purge", n)
	}
}

// TestConversationCache: a committed conversation is cached; reading its
// events takes the cache (no row read) and a miss reads the row and fills
// it; the cache holds no sealed or changing field; unknown ids are never
// cached; a KV that fails changes no answer.
func TestConversationCache(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	c, _, _, err := f.s.CreateConversation(ctx, f.user, CreateInput{ContactID: f.ct, Subject: "a sealed subject"}, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.p.KV.Get(ctx, convCacheKey("t_a", c.ID))
	if err != nil {
		t.Fatalf("not cached at creation: %v", err)
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || len(m) != 2 || m["contact_id"] != f.ct || strings.Contains(string(raw), "subject") {
		t.Fatalf("cached %s", raw)
	}
	st := NewStore(f.p, nil, "t_a")
	counter := &countingSQL{SQL: f.p.SQL}
	st.SQL = counter
	if _, _, _, err := st.Events(ctx, c.ID, 0, AudienceTeam); err != nil || !st.cacheHit || counter.queries != 1 {
		t.Fatalf("hit %v, %d queries, %v", st.cacheHit, counter.queries, err)
	}
	f.p.KV.Delete(ctx, convCacheKey("t_a", c.ID))
	counter.queries = 0
	if _, _, _, err := st.Events(ctx, c.ID, 0, AudienceTeam); err != nil || st.cacheHit || counter.queries != 2 {
		t.Fatalf("after a miss: hit %v, %d queries, %v", st.cacheHit, counter.queries, err)
	}
	if _, err := f.p.KV.Get(ctx, convCacheKey("t_a", c.ID)); err != nil {
		t.Fatal("a miss did not fill the cache")
	}
	unknown := "c_" + strings.Repeat("b", 26)
	_, _, _, err = st.Events(ctx, unknown, 0, AudienceTeam)
	wantCode(t, err, 404, "not_found")
	if _, err := f.p.KV.Get(ctx, convCacheKey("t_a", unknown)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown conversation was cached: %v", err)
	}
	// Another tenant's cache key is its own: B does not find A's.
	_, _, _, err = f.tenant(t, "t_b").Events(ctx, c.ID, 0, AudienceTeam)
	wantCode(t, err, 404, "not_found")
	// A failing KV: the row answers.
	st.KV = failingKV{}
	if evs, _, _, err := st.Events(ctx, c.ID, 0, AudienceTeam); err != nil || st.cacheHit || len(evs) != 1 {
		t.Fatalf("with KV down: %d events, hit %v, %v", len(evs), st.cacheHit, err)
	}
}

type countingSQL struct {
	storage.SQL
	queries int
}

func (c *countingSQL) Query(ctx context.Context, q string, args ...any) (*storage.Rows, error) {
	c.queries++
	return c.SQL.Query(ctx, q, args...)
}

type failingKV struct{ storage.KV }

var errKVDown = errors.New("kv down")

func (failingKV) Get(context.Context, string) ([]byte, error) { return nil, errKVDown }
func (failingKV) Put(context.Context, string, []byte, storage.KVPutOptions) error {
	return errKVDown
}
