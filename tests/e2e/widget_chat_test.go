package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers/conversations"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/jwtsign"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/tests/streamclient"
	"pommy.ai/edge/tests/widgettest"
)

// The visitor's side of conversations through the compiled guest in the
// wazero host: the real middleware (widget and visitor tokens, limits),
// the real stream hand-off, the real blob store.

// chatClient is a client whose every exchange is held to docs/openapi.yaml.
func chatClient(t *testing.T) *apitest.Client {
	t.Helper()
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	openapi.Attach(t, c)
	return c
}

type visitorEvents struct {
	Events []struct {
		Seq  int64           `json:"seq"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
	Cursor int64 `json:"cursor"`
}

// TestWidgetChat: a visitor starts a conversation; a person's reply wakes
// the visitor's held long-poll and the visitor's message wakes the
// team's; read positions travel both ways; a private note never reaches
// the visitor; the conversation is rated once resolved.
func TestWidgetChat(t *testing.T) {
	c := chatClient(t)
	site := widgettest.NewSite(t, c, "Chat Co", "https://shop.example")
	v := site.Anonymous(t)
	conv := site.StartID(t, v, "Merhaba, <b>siparişim</b> nerede?")
	base := "/v1/widget/conversations/" + conv

	// The visitor holds a long-poll; a person's reply answers it.
	type polled struct {
		ev  visitorEvents
		err error
	}
	got := make(chan polled, 1)
	go func() {
		var p polled
		r := c.Do(t, "GET", base+"/events?after=2&wait=20", nil, site.As(v)...)
		if r.Status != 200 {
			p.err = fmt.Errorf("long-poll: %d %s", r.Status, r.Body)
		} else {
			p.err = json.Unmarshal(r.Body, &p.ev)
		}
		got <- p
	}()
	site.Reply(t, conv, "SECRET internal note", true).Expect(t, 201)
	site.Reply(t, conv, "Kargoda, yarın sizde.", false).Expect(t, 201)
	p := <-got
	if p.err != nil {
		t.Fatal(p.err)
	}
	// The hold answered at the first write: the private note (not the
	// visitor's) moved the cursor and woke the poll with nothing, or the
	// reply arrived; either way a re-poll from the cursor gets the reply
	// and never the note.
	evs := p.ev
	for evs.Cursor < 4 {
		r := c.Do(t, "GET", fmt.Sprintf("%s/events?after=%d&wait=20", base, evs.Cursor), nil, site.As(v)...).Expect(t, 200)
		var more visitorEvents
		json.Unmarshal(r.Body, &more)
		evs.Events = append(evs.Events, more.Events...)
		evs.Cursor = more.Cursor
	}
	var reply map[string]any
	for _, e := range evs.Events {
		if bytes.Contains(e.Data, []byte("SECRET")) {
			t.Fatalf("the visitor's stream carries the private note: %s", e.Data)
		}
		if e.Type == "message.created" {
			json.Unmarshal(e.Data, &reply)
		}
	}
	if reply["text"] != "Kargoda, yarın sizde." || reply["author_type"] != "person" {
		t.Fatalf("the reply as the visitor got it: %v", reply)
	}
	for _, k := range []string{"author_id", "private"} {
		if _, ok := reply[k]; ok {
			t.Errorf("the visitor's message shows %s", k)
		}
	}
	// The visitor's message as sent: text, never interpreted.
	msgs := c.Do(t, "GET", base+"/messages", nil, site.As(v)...).Expect(t, 200).JSON(t)["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["text"] != "Merhaba, <b>siparişim</b> nerede?" {
		t.Fatalf("messages %v", msgs)
	}

	// The visitor reads; the team sees {"by":"visitor"} in its log.
	if r := c.Do(t, "POST", base+"/read", map[string]any{}, site.As(v)...).Expect(t, 200).JSON(t); r["seq"] != 4.0 {
		t.Fatalf("visitor read %v", r)
	}
	team := c.Do(t, "GET", "/v1/conversations/"+conv+"/events?after=4", nil, site.Bearer()...).Expect(t, 200)
	if !bytes.Contains(team.Body, []byte(`{"by":"visitor","seq":4}`)) {
		t.Fatalf("the team's log: %s", team.Body)
	}
	// The team reads; the visitor's conversation shows it.
	site.Owner.Do(t, "POST", "/v1/conversations/"+conv+"/read", nil).Expect(t, 200)
	vc := c.Do(t, "GET", base, nil, site.As(v)...).Expect(t, 200).JSON(t)
	if vc["visitor_read_seq"] != 4.0 || vc["team_read_seq"].(float64) < 5 {
		t.Fatalf("read positions %v", vc)
	}

	// Resolved: rated once.
	c.Do(t, "POST", base+"/csat", map[string]any{"rating": 5}, site.As(v)...).Expect(t, 409)
	site.Owner.Do(t, "PATCH", "/v1/conversations/"+conv, map[string]any{"status": "resolved"}).Expect(t, 200)
	c.Do(t, "POST", base+"/csat", map[string]any{"rating": 5, "comment": "Çok hızlı, teşekkürler"}, site.As(v)...).Expect(t, 201)
	c.Do(t, "POST", base+"/csat", map[string]any{"rating": 1}, site.As(v)...).Expect(t, 409)
	tc := site.Owner.Do(t, "GET", "/v1/conversations/"+conv, nil).Expect(t, 200).JSON(t)
	if cs, _ := tc["csat"].(map[string]any); cs == nil || cs["rating"] != 5.0 || cs["comment"] != "Çok hızlı, teşekkürler" {
		t.Fatalf("the team's conversation: %v", tc["csat"])
	}

	// Another visitor of the same site finds nothing of it.
	w := site.Anonymous(t)
	for _, path := range []string{base, base + "/messages", base + "/events"} {
		c.Do(t, "GET", path, nil, site.As(w)...).Expect(t, 404)
	}
	if l := c.Do(t, "GET", "/v1/widget/conversations", nil, site.As(w)...).Expect(t, 200).JSON(t)["conversations"].([]any); len(l) != 0 {
		t.Fatalf("another visitor lists %v", l)
	}
}

// TestWidgetAttachments: a visitor's file goes through the real blob
// store sealed, typed by its content; HTML named .png is refused; the
// team downloads it named; another visitor cannot.
func TestWidgetAttachments(t *testing.T) {
	c := chatClient(t)
	site := widgettest.NewSite(t, c, "Files Co", "https://shop.example")
	site.Settings(t, map[string]any{"attachment_max_bytes": 4096}).Expect(t, 200)
	// The widget offers exactly what the upload route accepts.
	cfg := c.Do(t, "GET", "/v1/widget/config", nil, site.Frame()...).Expect(t, 200).JSON(t)["attachments"].(map[string]any)
	if got, want := fmt.Sprint(cfg["types"]), fmt.Sprint(conversations.AllowedTypes()); got != want || cfg["max_bytes"] != float64(4096) {
		t.Errorf("the widget's config offers %v up to %v bytes; the upload route accepts %s up to 4096", got, cfg["max_bytes"], want)
	}
	v := site.Anonymous(t)
	conv := site.StartID(t, v, "a file follows")
	base := "/v1/widget/conversations/" + conv
	announce := func(name string, size int) string {
		t.Helper()
		r := c.Do(t, "POST", base+"/messages", map[string]any{"text": "", "attachment": map[string]any{"name": name, "size": size}},
			site.As(v, "Idempotency-Key", fmt.Sprintf("a-%x-%d", name, size))...).Expect(t, 201).JSON(t)
		return r["id"].(string)
	}
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 200)...)
	mid := announce("kargo fişi <script>.png", len(png))
	up := c.Do(t, "PUT", base+"/messages/"+mid+"/attachment", png, site.As(v)...).Expect(t, 200).JSON(t)
	att, _ := up["attachment"].(map[string]any)
	if att["type"] != "image/png" || att["name"] != "kargo fişi <script>.png" {
		t.Fatalf("uploaded %v", up)
	}
	dl := c.Do(t, "GET", att["url"].(string), nil, site.As(v)...).Expect(t, 200)
	if !bytes.Equal(dl.Body, png) || dl.Header.Get("Content-Type") != "image/png" || dl.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(dl.Header.Get("Content-Disposition"), `attachment; filename="kargo fi_i <script>.png"; filename*=UTF-8''kargo%20fi%C5%9Fi%20%3Cscript%3E.png`) {
		t.Fatalf("visitor's download %v", dl.Header)
	}
	team := c.Do(t, "GET", "/v1/conversations/"+conv+"/messages/"+mid+"/attachment", nil, site.Bearer()...).Expect(t, 200)
	if !bytes.Equal(team.Body, png) || team.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("team's download %v", team.Header)
	}
	w := site.Anonymous(t)
	c.Do(t, "GET", att["url"].(string), nil, site.As(w)...).Expect(t, 404)

	evil := []byte("<html><body><script>alert(document.cookie)</script>")
	bad := announce("cat.png", len(evil))
	if r := c.Do(t, "PUT", base+"/messages/"+bad+"/attachment", evil, site.As(v)...); r.Status != 415 || !bytes.Contains(r.Body, []byte("unsupported_file_type")) {
		t.Fatalf("HTML named .png: %d %s", r.Status, r.Body)
	}
	// The tenant's limit, to the byte.
	big := announce("big.txt", 4000)
	if r := c.Do(t, "PUT", base+"/messages/"+big+"/attachment", bytes.Repeat([]byte("a"), 4097), site.As(v)...); r.Status != 413 || !bytes.Contains(r.Body, []byte("4096")) {
		t.Fatalf("over the limit: %d %s", r.Status, r.Body)
	}
	c.Do(t, "PUT", base+"/messages/"+big+"/attachment", bytes.Repeat([]byte("a"), 4096), site.As(v)...).Expect(t, 200)
}

// TestWidgetVerifiedVisitorChats: a visitor verified by the tenant's JWT
// starts a conversation (their contact, derived from the JWT's sub, is
// made then, with the claims), and the same sub later finds the same
// conversations.
func TestWidgetVerifiedVisitorChats(t *testing.T) {
	c := chatClient(t)
	site := widgettest.NewSite(t, c, "Verified Co", "https://shop.example")
	secret := site.IdentitySecret(t)
	site.Settings(t, map[string]any{"identity": "optional"}).Expect(t, 200)
	sign := func() string {
		tok := jwtsign.MustSign(t, jwtsign.Spec{Secret: secret, Exp: "10m", Iat: "now",
			Claims: map[string]any{"sub": "user-42", "name": "Elif Kaya", "email": "elif@example.com"}})
		return tok[0]
	}
	v := widgettest.VisitorFrom(t, site.Identify(t, sign()).Expect(t, 200))
	conv := site.StartID(t, v, "signed in")
	ct := site.Owner.Do(t, "GET", "/v1/contacts/"+v.ID, nil).Expect(t, 200).JSON(t)
	if ct["name"] != "Elif Kaya" || ct["email"] != "elif@example.com" {
		t.Fatalf("the verified visitor's contact %v", ct)
	}
	again := widgettest.VisitorFrom(t, site.Identify(t, sign()).Expect(t, 200))
	l := c.Do(t, "GET", "/v1/widget/conversations", nil, site.As(again)...).Expect(t, 200).JSON(t)["conversations"].([]any)
	if again.ID != v.ID || len(l) != 1 || l[0].(map[string]any)["id"] != conv {
		t.Fatalf("the same sub finds %v", l)
	}
}

// TestWidgetSendsRaceOnce: concurrent retries of one send (the widget's
// offline queue flushing twice) make one message.
func TestWidgetSendsRaceOnce(t *testing.T) {
	c := chatClient(t)
	site := widgettest.NewSite(t, c, "Race Co", "https://shop.example")
	v := site.Anonymous(t)
	conv := site.StartID(t, v, "first")
	var wg sync.WaitGroup
	ids := make(chan string, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.Do(t, "POST", "/v1/widget/conversations/"+conv+"/messages", map[string]any{"text": "queued offline"}, site.As(v, "Idempotency-Key", "queued-1")...)
			if r.Status == 200 || r.Status == 201 {
				id, _ := r.JSON(t)["id"].(string)
				ids <- id
			} else {
				t.Errorf("send: %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("two messages for one key: %s %s", first, id)
		}
	}
	msgs := c.Do(t, "GET", "/v1/widget/conversations/"+conv+"/messages", nil, site.As(v)...).Expect(t, 200).JSON(t)["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
}

// TestWidgetStreamResume: the visitor's SSE stream carries the people's
// replies live; cut mid-conversation and resumed from the last id it saw
// (what the widget does after sleep or a lost network), it gets every
// message written meanwhile exactly once, in order, and its own queued
// message sent twice (the offline queue's retry) appears once.
func TestWidgetStreamResume(t *testing.T) {
	c := chatClient(t)
	site := widgettest.NewSite(t, c, "Stream Co", "https://shop.example")
	v := site.Anonymous(t)
	conv := site.StartID(t, v, "hello")
	url := c.Base + "/v1/widget/conversations/" + conv + "/events/stream"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a safety net, not an assertion
	defer cancel()

	seen := map[string]int{}
	var order []string
	var lastID string
	// read takes message.created frames until it has n more.
	read := func(s *streamclient.Stream, n int) {
		t.Helper()
		for n > 0 {
			e, err := s.NextData()
			if err != nil {
				t.Fatalf("stream: %v (have %v)", err, order)
			}
			lastID = e.ID
			if strings.Contains(e.Data, "SECRET") {
				t.Fatalf("the visitor's stream carries the private note: %s", e.Data)
			}
			if e.Type != "message.created" {
				continue
			}
			var ev struct {
				Data struct {
					ID, Text string
					Seq      int64
				}
			}
			json.Unmarshal([]byte(e.Data), &ev)
			m := ev.Data
			if e.ID != fmt.Sprint(m.Seq) {
				t.Fatalf("frame id %s for a message at seq %d", e.ID, m.Seq)
			}
			seen[m.ID]++
			order = append(order, m.Text)
			n--
		}
	}
	s, err := streamclient.Open(ctx, http.DefaultClient, url, "", site.As(v)...)
	if err != nil {
		t.Fatal(err)
	}
	read(s, 1) // the visitor's first message, from the log
	site.Reply(t, conv, "reply 1", false).Expect(t, 201)
	read(s, 1) // live
	s.Close()  // the network goes

	site.Reply(t, conv, "SECRET note", true).Expect(t, 201)
	site.Reply(t, conv, "reply 2", false).Expect(t, 201)
	for range 2 { // the widget's queue flushes twice; one key, one message
		r := c.Do(t, "POST", "/v1/widget/conversations/"+conv+"/messages", map[string]any{"text": "typed offline"}, site.As(v, "Idempotency-Key", "offline-1")...)
		if r.Status != 201 && r.Status != 200 {
			t.Fatalf("queued send: %d %s", r.Status, r.Body)
		}
	}
	site.Reply(t, conv, "reply 3", false).Expect(t, 201)

	s, err = streamclient.Open(ctx, http.DefaultClient, url, lastID, site.As(v)...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read(s, 3)
	if strings.Join(order, "|") != "hello|reply 1|reply 2|typed offline|reply 3" {
		t.Fatalf("the visitor saw %v", order)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s seen %d times", id, n)
		}
	}
}
