package native

// Mail the platform sends on its own (security notices, new devices),
// through the handlers' real job runner, with a recording Mailer in place
// of the home's mail service. The same paths run through the wasip1 guest
// and a real SMTP server in tests/e2e.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/wasm/host/local"
)

// mailbox records what the application mails; fail, when set, answers
// instead.
type mailbox struct {
	mu   sync.Mutex
	got  []storage.Mail
	fail error
}

func (m *mailbox) Send(_ context.Context, x storage.Mail) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := x.Check(); err != nil {
		return "", err
	}
	if m.fail != nil {
		return "", m.fail
	}
	m.got = append(m.got, x)
	return fmt.Sprintf("mbx-%d", len(m.got)), nil
}

// to lists the mails to addr whose subject holds subj.
func (m *mailbox) to(addr, subj string) []storage.Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Mail
	for _, x := range m.got {
		if x.To == addr && strings.Contains(x.Subject, subj) {
			out = append(out, x)
		}
	}
	return out
}

type mailHome struct {
	c    *apitest.Client
	clk  *storagetest.Clock
	box  *mailbox
	p    storage.Platform
	jobs func()
}

func startMail(t *testing.T) *mailHome {
	t.Helper()
	clk := storagetest.NewClock(time.Now().UTC())
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Home = "native"
	box := &mailbox{}
	p.Mail = box
	cfg := handlers.Config{Version: "test", TestRoutes: true}
	srv := httptest.NewServer(handlers.New(p.Platform, cfg))
	t.Cleanup(srv.Close)
	c := &apitest.Client{Base: srv.URL}
	openapi.Attach(t, c)
	h := &mailHome{c: c, clk: clk, box: box, p: p.Platform}
	// jobs runs every due job (the notice's delivery, then its mails).
	h.jobs = func() {
		t.Helper()
		if _, err := handlers.RunJobs(context.Background(), p.Platform, cfg, handlers.JobOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

type mailList struct {
	Mail []struct {
		ID, To, Template, Locale, Status string
		Attempts                         int
		LastError                        *string `json:"last_error"`
		JobID                            string  `json:"job_id"`
	} `json:"mail"`
	Next string `json:"next"`
}

func listMail(t *testing.T, s *apitest.Session, query string) mailList {
	t.Helper()
	var l mailList
	decodeJSON(t, s.Do(t, "GET", "/v1/mail?"+query, nil).Expect(t, 200).Body, &l)
	return l
}

const noticeSubject = "Security notice"

// burst fails five sign-ins of email from one address: the audit log's
// login-burst notice for that account.
func burst(t *testing.T, c *apitest.Client, email, ip string) {
	t.Helper()
	for range 5 {
		c.Login(t, email, "not the password at all", "X-Pommy-Test-Client-IP", ip).Expect(t, 401)
	}
}

// TestSecurityNoticeMailed: a burst of failed sign-ins on an agent's
// account is mailed to the agent and to the owner, once each however
// often the delivery runs or the burst goes on; the organization's mail
// log lists both as sent, never a body.
func TestSecurityNoticeMailed(t *testing.T) {
	h := startMail(t)
	o := h.c.Signup(t, "Notice Co")
	a := o.Invite(t, "agent")
	burst(t, h.c, a.Email, "203.0.113.7")
	h.jobs()
	h.jobs()
	if n := len(h.box.to(a.Email, noticeSubject)); n != 1 {
		t.Fatalf("the agent got %d notices, want 1", n)
	}
	owner := h.box.to(o.Email, noticeSubject)
	if len(owner) != 1 {
		t.Fatalf("the owner got %d notices, want 1", len(owner))
	}
	if m := owner[0]; !strings.Contains(m.Subject, "Notice Co") || !strings.Contains(m.Text, "Repeated failed sign-ins") ||
		!strings.Contains(m.Text, "failed logins for "+a.Email) || !strings.Contains(m.HTML, "<p>") {
		t.Fatalf("the notice as mailed:\n%s\n%s", m.Subject, m.Text)
	}
	// The burst goes on in the same window: the same notice, no new mail.
	burst(t, h.c, a.Email, "203.0.113.8")
	h.jobs()
	if n := len(h.box.to(a.Email, noticeSubject)); n != 1 {
		t.Fatalf("the agent got %d notices after the burst went on", n)
	}
	l := listMail(t, o, "template=security_notice")
	if len(l.Mail) != 2 {
		t.Fatalf("mail log: %+v", l)
	}
	for _, m := range l.Mail {
		if m.Status != "sent" || m.Attempts != 1 || m.LastError != nil || (m.To != a.Email && m.To != o.Email) {
			t.Fatalf("mail log row %+v", m)
		}
	}
	// Paging: one at a time, then nothing more.
	p1 := listMail(t, o, "template=security_notice&limit=1")
	p2 := listMail(t, o, "template=security_notice&limit=1&cursor="+p1.Next)
	if len(p1.Mail) != 1 || len(p2.Mail) != 1 || p2.Next != "" || p1.Mail[0].ID == p2.Mail[0].ID {
		t.Fatalf("pages %+v %+v", p1, p2)
	}
	// An agent may not read the mail log; the log shows no body.
	if r := a.Do(t, "GET", "/v1/mail", nil); r.Status != 403 {
		t.Fatalf("agent: %d", r.Status)
	}
	if body := string(o.Do(t, "GET", "/v1/mail", nil).Expect(t, 200).Body); strings.Contains(body, "Repeated") || strings.Contains(body, "token") {
		t.Fatalf("the mail log shows content: %s", body)
	}
	for _, q := range []string{"status=maybe", "template=welcome", "limit=0", "limit=101", "cursor=x", "foo=1", "status=sent&status=failed"} {
		if r := o.Do(t, "GET", "/v1/mail?"+q, nil); r.Status != 400 {
			t.Errorf("GET /v1/mail?%s: %d", q, r.Status)
		}
	}
}

// TestOwnersOptOut: with security_notices_to_owners off, a notice about a
// member reaches that member only.
func TestOwnersOptOut(t *testing.T) {
	h := startMail(t)
	o := h.c.Signup(t, "Quiet Co")
	if m := o.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t); m["security_notices_to_owners"] != true {
		t.Fatalf("default settings: %v", m)
	}
	if m := o.Do(t, "PATCH", "/v1/settings", map[string]any{"security_notices_to_owners": false}).Expect(t, 200).JSON(t); m["security_notices_to_owners"] != false {
		t.Fatalf("settings after the change: %v", m)
	}
	if r := o.Do(t, "PATCH", "/v1/settings", map[string]any{"security_notices_to_owners": "no"}); r.Status != 400 {
		t.Fatalf("a string for the flag: %d", r.Status)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=settings.changed", nil).Expect(t, 200).JSON(t)["events"].([]any)
	if len(ev) != 1 || !strings.Contains(fmt.Sprint(ev[0]), "security_notices_to_owners") {
		t.Fatalf("the change is not audited: %v", ev)
	}
	a := o.Invite(t, "agent")
	burst(t, h.c, a.Email, "203.0.113.9")
	h.jobs()
	if n := len(h.box.to(a.Email, noticeSubject)); n != 1 {
		t.Fatalf("the agent got %d notices", n)
	}
	if n := len(h.box.to(o.Email, noticeSubject)); n != 0 {
		t.Fatalf("the owner who opted out got %d notices", n)
	}
}

// TestNewDeviceMailed: a returning person signing in from a browser the
// account has not used gets a mail and an audit event; the same browser
// again (its device cookie) and a first sign-up get neither.
func TestNewDeviceMailed(t *testing.T) {
	h := startMail(t)
	o := h.c.Signup(t, "Device Co")
	h.jobs()
	if n := len(h.box.to(o.Email, "New sign-in")); n != 0 {
		t.Fatalf("a first sign-up was mailed as a new device (%d)", n)
	}
	r := h.c.Login(t, o.Email, apitest.Password, "User-Agent", "Firefox/140 <b>", "X-Pommy-Test-Client-IP", "198.51.100.4").Expect(t, 200)
	device := apitest.DeviceCookieHeader(t, r)
	h.jobs()
	got := h.box.to(o.Email, "New sign-in")
	if len(got) != 1 {
		t.Fatalf("%d new-device mails, want 1", len(got))
	}
	if m := got[0]; !strings.Contains(m.Text, "198.51.100.4") || !strings.Contains(m.Text, "Firefox/140 <b>") ||
		strings.Contains(m.HTML, "<b>") || !strings.Contains(m.Subject, "Device Co") {
		t.Fatalf("new-device mail:\n%s\n%s", m.Text, m.HTML)
	}
	// The same browser again: nothing.
	h.c.Login(t, o.Email, apitest.Password, device...).Expect(t, 200)
	h.jobs()
	if n := len(h.box.to(o.Email, "New sign-in")); n != 1 {
		t.Fatalf("%d new-device mails after a known device signed in", n)
	}
	ev := o.Do(t, "GET", "/v1/audit/events?action=auth.new_device", nil).Expect(t, 200).JSON(t)["events"].([]any)
	if len(ev) != 1 || ev[0].(map[string]any)["target"] != "user:"+o.UserID {
		t.Fatalf("audit: %v", ev)
	}
	// The mail is about the person's account: no organization lists it.
	if l := listMail(t, o, "template=new_device"); len(l.Mail) != 0 {
		t.Fatalf("the organization lists a person's new-device mail: %+v", l)
	}
	// A user agent cut (at 256 bytes) inside a character is still mailed.
	h.c.Login(t, o.Email, apitest.Password, "User-Agent", strings.Repeat("a", 255)+"şş\xff").Expect(t, 200)
	h.jobs()
	if got := h.box.to(o.Email, "New sign-in"); len(got) != 2 || !strings.Contains(got[1].Text, strings.Repeat("a", 190)) {
		t.Fatalf("%d new-device mails after a long user agent", len(got))
	}
}

// TestRefusedMailIsVisible: a mail the service refuses for good is
// "failed" in the mail log and its job dead in the jobs list, at once.
func TestRefusedMailIsVisible(t *testing.T) {
	h := startMail(t)
	o := h.c.Signup(t, "Refused Co")
	h.box.mu.Lock()
	h.box.fail = fmt.Errorf("%w: 550 5.1.1 no such mailbox", storage.ErrInvalid)
	h.box.mu.Unlock()
	burst(t, h.c, o.Email, "203.0.113.10")
	h.jobs()
	l := listMail(t, o, "status=failed")
	if len(l.Mail) != 1 || l.Mail[0].LastError == nil || !strings.Contains(*l.Mail[0].LastError, "550") {
		t.Fatalf("failed mail: %+v", l)
	}
	var jobs struct {
		Jobs []struct{ ID, State string } `json:"jobs"`
	}
	decodeJSON(t, o.Do(t, "GET", "/v1/jobs?kind=mail.send&state=dead", nil).Expect(t, 200).Body, &jobs)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != l.Mail[0].JobID {
		t.Fatalf("dead mail jobs %+v, want the job %s", jobs, l.Mail[0].JobID)
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}
