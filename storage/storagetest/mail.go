package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"pommy.ai/edge/storage"
)

// Delivered is a message as the mail service delivered it.
type Delivered struct {
	From      string   // the sender's address
	To        []string // the recipients' addresses
	Subject   string   // decoded
	Text      string   // the plain-text part, decoded
	HTML      string   // the HTML part, decoded ("" when none)
	MessageID string   // the Message-ID, without < >
	// Headers as sent (names as the service reports them).
	Headers map[string][]string
}

// Header returns the first value of the named header, any case.
func (d Delivered) Header(name string) string {
	for k, v := range d.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Inbox reads what a mail service delivered: mailpit's API for SMTP, the
// loopback mail API server's copy of the same API for the edge adapter.
type Inbox interface {
	// List returns the messages delivered to the address so far.
	List(ctx context.Context, to string) ([]Delivered, error)
}

// RefusedMailTo is the address the test mail services are configured to
// refuse for good (mailpit with --smtp-allowed-recipients; the edge mail
// API server), for MailSuite's refusedTo.
const RefusedMailTo = "nobody@refused.invalid"

// MailSuite is the contract of storage.Mailer. Each case mails its own
// address at example.com, which the service must deliver, and reads what
// arrived through inbox. refusedTo is an address the service refuses for
// good (a 5xx at RCPT TO, an API's rejection): the adapter must report
// storage.ErrInvalid for it; "" leaves that case out.
func MailSuite(m storage.Mailer, inbox Inbox, refusedTo string) Suite {
	s := &mailSuite{m: m, inbox: inbox, run: randomHex(4), refusedTo: refusedTo}
	cases := []Case{
		{"DeliveredIntact", s.delivered},
		{"TextOnly", s.textOnly},
		{"HeaderInjectionRefused", s.injection},
		{"OversizeRefused", s.oversize},
		{"MalformedRefused", s.malformed},
		{"CancelledContext", s.cancelled},
	}
	if refusedTo != "" {
		cases = append(cases, Case{"RefusedRecipientIsPermanent", s.refused})
	}
	return Suite{Name: "Mail", Cases: cases}
}

type mailSuite struct {
	m         storage.Mailer
	inbox     Inbox
	run       string
	refusedTo string
	mu        sync.Mutex
	n         int
}

// addr returns a new address for one case, and an id for its messages.
func (s *mailSuite) addr(name string) (to, id string) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	local := fmt.Sprintf("st-%s-%d-%s", s.run, n, strings.ToLower(name))
	return local + "@example.com", fmt.Sprintf("ml_st%s%d%s", s.run, n, randomHex(4))
}

// mailWait bounds the wait for a message to arrive.
const mailWait = 30 * time.Second

// wait polls the inbox until n messages to the address arrived, and
// returns them.
func (s *mailSuite) wait(t T, to string, n int) []Delivered {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mailWait)
	defer cancel()
	var last []Delivered
	var err error
	for {
		last, err = s.inbox.List(ctx, to)
		if err == nil && len(last) >= n {
			return last
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d message(s) to %s: %d arrived (last error: %v)", n, to, len(last), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hasID: the message carries the mail's id, in its Message-ID or, for a
// service that makes its own Message-ID, in X-Pommy-Mail-Id.
func hasID(d Delivered, id string) bool {
	return strings.HasPrefix(d.MessageID, id+"@") || d.MessageID == id || d.Header("X-Pommy-Mail-Id") == id
}

func normalizeText(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func (s *mailSuite) delivered(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	to, id := s.addr("intact")
	m := storage.Mail{
		ID:      id,
		To:      to,
		Subject: "Şifrenizi sıfırlayın — reset your password ✓ " + strings.Repeat("uzun ", 20) + "son",
		Text: "Merhaba Ayşe,\n\nBu bağlantıyla şifrenizi sıfırlayın:\nhttps://support.example.com/account/reset#token=abc_DEF-123\n" +
			".\n" + // a line of one dot: SMTP's end of data unless stuffed
			"From the team\n" + strings.Repeat("a very long line without breaks ", 20) + "\n= and =3D stay as they are\n",
		HTML: `<p>Merhaba Ayşe,</p><p><a href="https://support.example.com/account/reset#token=abc_DEF-123">Şifrenizi sıfırlayın</a></p>` + "\n.\n<p>= 100%</p>",
	}
	pid, err := s.m.Send(ctx, m)
	must(t, err, "send")
	if pid == "" {
		t.Errorf("no provider id")
	}
	got := s.wait(t, to, 1)
	if len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
	d := got[0]
	if d.Subject != m.Subject {
		t.Errorf("subject %q, want %q", d.Subject, m.Subject)
	}
	if normalizeText(d.Text) != normalizeText(m.Text) {
		t.Errorf("text part:\n%q\nwant\n%q", d.Text, m.Text)
	}
	if normalizeText(d.HTML) != normalizeText(m.HTML) {
		t.Errorf("HTML part:\n%q\nwant\n%q", d.HTML, m.HTML)
	}
	if len(d.To) != 1 || !strings.EqualFold(d.To[0], to) {
		t.Errorf("to %v, want [%s]", d.To, to)
	}
	if d.From == "" || storage.CheckMailAddress(d.From) != nil {
		t.Errorf("from %q is not the configured sender's plain address", d.From)
	}
	if !hasID(d, id) {
		t.Errorf("the mail id %s is neither in the Message-ID %q nor in X-Pommy-Mail-Id %q", id, d.MessageID, d.Header("X-Pommy-Mail-Id"))
	}
}

func (s *mailSuite) textOnly(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	to, id := s.addr("text")
	m := storage.Mail{ID: id, To: to, Subject: "Plain text only", Text: "Just text.\nSecond line."}
	_, err := s.m.Send(ctx, m)
	must(t, err, "send")
	d := s.wait(t, to, 1)[0]
	if normalizeText(d.Text) != normalizeText(m.Text) || strings.TrimSpace(d.HTML) != "" {
		t.Errorf("got text %q and HTML %q, want the text and no HTML", d.Text, d.HTML)
	}
}

// refusedCases are messages every adapter must refuse with ErrInvalid.
func (s *mailSuite) refuse(t T, to string, cases map[string]storage.Mail) {
	ctx, cancel := testCtx()
	defer cancel()
	for name, m := range cases {
		_, err := s.m.Send(ctx, m)
		wantErrIs(t, err, storage.ErrInvalid, name)
	}
	// A good message to the same address, then: it must be the only one
	// that arrived.
	_, id := s.addr("control")
	_, err := s.m.Send(ctx, storage.Mail{ID: id, To: to, Subject: "control", Text: "the only message that may arrive"})
	must(t, err, "send the control message")
	got := s.wait(t, to, 1)
	if len(got) != 1 || got[0].Subject != "control" {
		subjects := []string{}
		for _, d := range got {
			subjects = append(subjects, d.Subject)
		}
		t.Errorf("arrived at %s: %q, want only the control message", to, subjects)
	}
}

func (s *mailSuite) injection(t T) {
	to, id := s.addr("inject")
	ok := storage.Mail{ID: id, To: to, Subject: "hello", Text: "text"}
	with := func(f func(*storage.Mail)) storage.Mail { m := ok; f(&m); return m }
	s.refuse(t, to, map[string]storage.Mail{
		"CRLF in To":            with(func(m *storage.Mail) { m.To = to + "\r\nBcc: " + to }),
		"LF in To":              with(func(m *storage.Mail) { m.To = to + "\nBcc: " + to }),
		"display name in To":    with(func(m *storage.Mail) { m.To = "Eve <" + to + ">" }),
		"two addresses in To":   with(func(m *storage.Mail) { m.To = to + ", " + to }),
		"two addresses with ;":  with(func(m *storage.Mail) { m.To = to + ";" + to }),
		"no address":            with(func(m *storage.Mail) { m.To = "" }),
		"CRLF in Subject":       with(func(m *storage.Mail) { m.Subject = "hi\r\nBcc: " + to }),
		"LF in Subject":         with(func(m *storage.Mail) { m.Subject = "hi\nX-Evil: 1" }),
		"CR in Subject":         with(func(m *storage.Mail) { m.Subject = "hi\rX-Evil: 1" }),
		"U+2028 in Subject":     with(func(m *storage.Mail) { m.Subject = "hi\u2028X-Evil: 1" }),
		"CRLF in ID":            with(func(m *storage.Mail) { m.ID = id + "\r\nBcc: " + to }),
		"space in ID":           with(func(m *storage.Mail) { m.ID = id + " x" }),
		"angle bracket in ID":   with(func(m *storage.Mail) { m.ID = id + ">" }),
		"at sign in ID":         with(func(m *storage.Mail) { m.ID = id + "@evil.example" }),
		"NUL in the text":       with(func(m *storage.Mail) { m.Text = "a\x00b" }),
		"empty subject":         with(func(m *storage.Mail) { m.Subject = "" }),
		"comment in To":         with(func(m *storage.Mail) { m.To = to + " (Eve)" }),
		"quoted local part":     with(func(m *storage.Mail) { m.To = `"a b"@example.com` }),
		"control char in To":    with(func(m *storage.Mail) { m.To = "a\x01" + to }),
		"DEL in Subject":        with(func(m *storage.Mail) { m.Subject = "a\x7fb" }),
		"C1 control in Subject": with(func(m *storage.Mail) { m.Subject = "a\u0085b" }),
	})
}

func (s *mailSuite) oversize(t T) {
	to, id := s.addr("oversize")
	ok := storage.Mail{ID: id, To: to, Subject: "hello", Text: "text"}
	with := func(f func(*storage.Mail)) storage.Mail { m := ok; f(&m); return m }
	s.refuse(t, to, map[string]storage.Mail{
		"text over the limit":     with(func(m *storage.Mail) { m.Text = strings.Repeat("a", storage.MaxMailBody+1) }),
		"parts over the limit":    with(func(m *storage.Mail) { m.HTML = strings.Repeat("a", storage.MaxMailBody) }),
		"subject over the limit":  with(func(m *storage.Mail) { m.Subject = strings.Repeat("ş", storage.MaxMailSubject/2+1) }),
		"id over the limit":       with(func(m *storage.Mail) { m.ID = strings.Repeat("a", storage.MaxMailID+1) }),
		"address over 254 bytes":  with(func(m *storage.Mail) { m.To = strings.Repeat("a", 250) + "@example.com" }),
		"address over 254, dotty": with(func(m *storage.Mail) { m.To = "a@" + strings.Repeat("b.", 130) + "com" }),
	})
	// At the limits, it goes.
	ctx, cancel := testCtx()
	defer cancel()
	to2, id2 := s.addr("atlimit")
	subject := strings.Repeat("s", storage.MaxMailSubject)
	_, err := s.m.Send(ctx, storage.Mail{ID: id2, To: to2, Subject: subject, Text: strings.Repeat("line of text\n", 1000)})
	must(t, err, "send at the subject limit")
	if d := s.wait(t, to2, 1)[0]; d.Subject != subject {
		t.Errorf("a %d-byte subject arrived as %q", len(subject), d.Subject)
	}
}

func (s *mailSuite) malformed(t T) {
	to, id := s.addr("malformed")
	ok := storage.Mail{ID: id, To: to, Subject: "hello", Text: "text"}
	with := func(f func(*storage.Mail)) storage.Mail { m := ok; f(&m); return m }
	s.refuse(t, to, map[string]storage.Mail{
		"no text part":             with(func(m *storage.Mail) { m.Text = "" }),
		"text not UTF-8":           with(func(m *storage.Mail) { m.Text = "a\xffb" }),
		"HTML not UTF-8":           with(func(m *storage.Mail) { m.HTML = "<p>\xc3</p>" }),
		"subject not UTF-8":        with(func(m *storage.Mail) { m.Subject = "a\xffb" }),
		"no id":                    with(func(m *storage.Mail) { m.ID = "" }),
		"address without a domain": with(func(m *storage.Mail) { m.To = "nobody" }),
	})
}

func (s *mailSuite) cancelled(t T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	to, id := s.addr("cancelled")
	_, err := s.m.Send(ctx, storage.Mail{ID: id, To: to, Subject: "never", Text: "never"})
	if err == nil {
		t.Fatalf("a send with a cancelled context reported success")
	}
	if errors.Is(err, storage.ErrInvalid) {
		t.Errorf("a cancelled send is %v: ErrInvalid would make the job give up on a good message", err)
	}
}

func (s *mailSuite) refused(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	_, id := s.addr("refused")
	_, err := s.m.Send(ctx, storage.Mail{ID: id, To: s.refusedTo, Subject: "refused", Text: "the service refuses this recipient"})
	wantErrIs(t, err, storage.ErrInvalid, "send to a recipient the service refuses")
}

// ---- an Inbox over mailpit's HTTP API ----

// MailpitInbox reads messages through mailpit's HTTP API at base (the
// API's root URL, e.g. http://127.0.0.1:8025) with doer, so that it works
// from any home: natively, inside the guest (through the host's egress)
// and inside the worker (through fetch). The edge adapter's loopback
// server (tests/sesserver) serves the same subset of the API.
func MailpitInbox(doer storage.HTTPDoer, base string) Inbox {
	return &mailpitInbox{doer: doer, base: strings.TrimRight(base, "/")}
}

type mailpitInbox struct {
	doer storage.HTTPDoer
	base string
}

type mailpitAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

func (b *mailpitInbox) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := b.doer.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

func (b *mailpitInbox) List(ctx context.Context, to string) ([]Delivered, error) {
	var list struct {
		Messages []struct {
			ID string           `json:"ID"`
			To []mailpitAddress `json:"To"`
		} `json:"messages"`
	}
	if err := b.get(ctx, "/api/v1/messages?limit=1000", &list); err != nil {
		return nil, err
	}
	var out []Delivered
	for _, sum := range list.Messages {
		match := false
		for _, a := range sum.To {
			match = match || strings.EqualFold(a.Address, to)
		}
		if !match {
			continue
		}
		var d struct {
			MessageID string           `json:"MessageID"`
			From      *mailpitAddress  `json:"From"`
			To        []mailpitAddress `json:"To"`
			Subject   string           `json:"Subject"`
			Text      string           `json:"Text"`
			HTML      string           `json:"HTML"`
		}
		p := "/api/v1/message/" + url.PathEscape(sum.ID)
		if err := b.get(ctx, p, &d); err != nil {
			return nil, err
		}
		m := Delivered{MessageID: d.MessageID, Subject: d.Subject, Text: d.Text, HTML: d.HTML}
		if d.From != nil {
			m.From = d.From.Address
		}
		for _, a := range d.To {
			m.To = append(m.To, a.Address)
		}
		if err := b.get(ctx, p+"/headers", &m.Headers); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
