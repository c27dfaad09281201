// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package mail_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeMailer records what it is asked to send and answers with err.
type fakeMailer struct {
	mu   sync.Mutex
	sent []storage.Mail
	err  error
}

func (f *fakeMailer) Send(_ context.Context, m storage.Mail) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := m.Check(); err != nil {
		return "", err
	}
	if f.err != nil {
		return "", f.err
	}
	f.sent = append(f.sent, m)
	return fmt.Sprintf("prov-%d", len(f.sent)), nil
}

func (f *fakeMailer) all() []storage.Mail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]storage.Mail(nil), f.sent...)
}

type env struct {
	p   storage.Platform
	clk *storagetest.Clock
	m   *fakeMailer
	reg *jobs.Registry
}

func open(t *testing.T) *env {
	t.Helper()
	clk := storagetest.NewClock(t0)
	p := localtest.Open(t, clk)
	m := &fakeMailer{}
	p.Mail = m
	reg := jobs.NewRegistry()
	reg.Log = func(string, ...any) {}
	mail.Register(reg, p)
	return &env{p: p, clk: clk, m: m, reg: reg}
}

func (e *env) enqueue(t *testing.T, m mail.Message) {
	t.Helper()
	stmts, err := mail.Enqueue(m, e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.SQL.Batch(context.Background(), stmts); err != nil {
		t.Fatal(err)
	}
}

// run runs every due job, then moves the clock past any backoff.
func (e *env) run(t *testing.T) jobs.Result {
	t.Helper()
	res, err := e.reg.Run(context.Background(), e.p, jobs.RunOptions{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(5 * time.Hour)
	return res
}

type logRow struct {
	Status, LastError, ProviderID string
	Attempts                      int
}

func (e *env) log(t *testing.T, tenant, event string) logRow {
	t.Helper()
	rows, err := e.p.SQL.Query(context.Background(), `SELECT status, attempts, COALESCE(last_error, ''), COALESCE(provider_id, '') FROM mail_log WHERE tenant_id = ? AND id = ?`,
		tenant, mail.LogID(event))
	if err != nil || rows.Len() != 1 {
		t.Fatalf("log of %s: %v", event, err)
	}
	var r logRow
	if err := rows.Scan(0, &r.Status, &r.Attempts, &r.LastError, &r.ProviderID); err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) jobState(t *testing.T, tenant, event string) string {
	t.Helper()
	rows, err := e.p.SQL.Query(context.Background(), `SELECT state FROM jobs WHERE tenant_id = ? AND ref = ?`, tenant, mail.LogID(event))
	if err != nil || rows.Len() != 1 {
		t.Fatalf("job of %s: %v (%d rows)", event, err, rows.Len())
	}
	var s string
	rows.Scan(0, &s)
	return s
}

func reset(event string) mail.Message {
	return mail.Message{Tenant: mail.AccountTenant, Event: event, To: "ada@example.com", Locale: "tr",
		Template: mail.TemplatePasswordReset,
		Link:     &mail.Link{Origin: "https://pommy.example", Path: "/account/reset", Purpose: mail.PurposeAccount, ID: "atk_1"}}
}

// One event, one mail: enqueued twice, run twice, sent once, with the
// log id as the Mail's id and the recomputed token in the link.
func TestSentOncePerEvent(t *testing.T) {
	e := open(t)
	e.enqueue(t, reset("reset:atk_1"))
	e.enqueue(t, reset("reset:atk_1"))
	if st, _ := mail.Status(context.Background(), e.p.SQL, mail.AccountTenant, mail.LogID("reset:atk_1")); st != "queued" {
		t.Fatalf("status %q before the run", st)
	}
	e.run(t)
	e.run(t)
	sent := e.m.all()
	if len(sent) != 1 {
		t.Fatalf("%d mails sent, want 1", len(sent))
	}
	token, err := mail.Token(context.Background(), e.p.Keys, mail.PurposeAccount, "atk_1")
	if err != nil || len(token) != 43 {
		t.Fatalf("token %q: %v", token, err)
	}
	m := sent[0]
	if m.ID != mail.LogID("reset:atk_1") || m.To != "ada@example.com" || !strings.Contains(m.Subject, "parola") {
		t.Fatalf("mail %+v", m)
	}
	want := "https://pommy.example/account/reset#token=" + token
	if !strings.Contains(m.Text, want+"\n") || !strings.Contains(m.HTML, `href="`+want+`"`) {
		t.Fatalf("the link %s is not in the mail:\n%s", want, m.Text)
	}
	r := e.log(t, mail.AccountTenant, "reset:atk_1")
	if r.Status != "sent" || r.ProviderID != "prov-1" || r.Attempts != 1 || r.LastError != "" {
		t.Fatalf("log %+v", r)
	}
	// Neither the log nor the job holds the token.
	for _, q := range []string{`SELECT COUNT(*) FROM mail_log WHERE instr(to_addr || template || COALESCE(last_error, ''), ?) > 0`,
		`SELECT COUNT(*) FROM jobs WHERE instr(payload, ?) > 0`} {
		rows, err := e.p.SQL.Query(context.Background(), q, token)
		var n int
		if err != nil || rows.Scan(0, &n) != nil || n != 0 {
			t.Fatalf("%s: %d rows hold the token (%v)", q, n, err)
		}
	}
	// The same event queued again after it was sent sends nothing more.
	e.enqueue(t, reset("reset:atk_1"))
	e.run(t)
	if len(e.m.all()) != 1 {
		t.Fatal("a sent event was mailed again")
	}
}

// A server that is down: the job retries, the log stays queued with the
// error; once it is up the mail is sent exactly once.
func TestDownThenUp(t *testing.T) {
	e := open(t)
	e.m.err = fmt.Errorf("%w: dial tcp: connection refused", storage.ErrUnavailable)
	e.enqueue(t, reset("reset:atk_2"))
	for i := 1; i <= 3; i++ {
		if res := e.run(t); res.Retried != 1 {
			t.Fatalf("run %d: %+v", i, res)
		}
		r := e.log(t, mail.AccountTenant, "reset:atk_2")
		if r.Status != "queued" || r.Attempts != i || !strings.Contains(r.LastError, "connection refused") {
			t.Fatalf("after %d failures: %+v", i, r)
		}
	}
	e.m.err = nil
	e.run(t)
	e.run(t)
	if n := len(e.m.all()); n != 1 {
		t.Fatalf("%d mails after the server came back", n)
	}
	if r := e.log(t, mail.AccountTenant, "reset:atk_2"); r.Status != "sent" || r.Attempts != 4 || r.LastError != "" {
		t.Fatalf("log %+v", r)
	}
}

// A refusal (a permanent failure) makes the mail failed and the job dead
// at once; no home with a mail service keeps it queued with the error.
func TestRefusedIsFailed(t *testing.T) {
	e := open(t)
	e.m.err = fmt.Errorf("%w: 550 mailbox unavailable", storage.ErrInvalid)
	e.enqueue(t, reset("reset:atk_3"))
	if res := e.run(t); res.Dead != 1 {
		t.Fatalf("%+v", res)
	}
	r := e.log(t, mail.AccountTenant, "reset:atk_3")
	if r.Status != "failed" || !strings.Contains(r.LastError, "550") {
		t.Fatalf("log %+v", r)
	}
	if s := e.jobState(t, mail.AccountTenant, "reset:atk_3"); s != "dead" {
		t.Fatalf("job %s", s)
	}
}

// No mail service: retried and visible; the last attempt makes it failed.
func TestNoMailerRetriesThenFails(t *testing.T) {
	e := open(t)
	e.p.Mail = nil
	e.reg = jobs.NewRegistry()
	e.reg.Log = func(string, ...any) {}
	mail.Register(e.reg, e.p)
	e.enqueue(t, reset("reset:atk_4"))
	for i := 1; i < mail.MaxAttempts; i++ {
		e.run(t)
		if r := e.log(t, mail.AccountTenant, "reset:atk_4"); r.Status != "queued" || !strings.Contains(r.LastError, "no mail service") {
			t.Fatalf("attempt %d: %+v", i, r)
		}
	}
	e.run(t)
	if r := e.log(t, mail.AccountTenant, "reset:atk_4"); r.Status != "failed" || r.Attempts != mail.MaxAttempts {
		t.Fatalf("after the last attempt: %+v", r)
	}
	if s := e.jobState(t, mail.AccountTenant, "reset:atk_4"); s != "dead" {
		t.Fatalf("job %s", s)
	}
}

// An invitation's link carries the tenant; tokens differ by purpose.
func TestInvitationLink(t *testing.T) {
	e := open(t)
	e.enqueue(t, mail.Message{Tenant: "t_acme", Event: "invite:inv_1", To: "bo@example.com", Template: mail.TemplateInvitation,
		Vars: map[string]string{"organization": "Acme", "inviter": "Ada", "role": "agent", "tenant": "t_acme"},
		Link: &mail.Link{Origin: "http://127.0.0.1:8080", Path: "/account/invitation", Purpose: mail.PurposeInvitation, ID: "inv_1"}})
	e.run(t)
	sent := e.m.all()
	if len(sent) != 1 {
		t.Fatalf("%d sent", len(sent))
	}
	ti, _ := mail.Token(context.Background(), e.p.Keys, mail.PurposeInvitation, "inv_1")
	ta, _ := mail.Token(context.Background(), e.p.Keys, mail.PurposeAccount, "inv_1")
	if ti == ta {
		t.Fatal("the two purposes give the same token")
	}
	if want := "http://127.0.0.1:8080/account/invitation#token=" + ti + "&tenant=t_acme"; !strings.Contains(sent[0].Text, want) {
		t.Fatalf("want %s in\n%s", want, sent[0].Text)
	}
	if !strings.Contains(sent[0].Subject, "Ada invited you to Acme") {
		t.Fatalf("subject %q", sent[0].Subject)
	}
}

// Enqueue refuses a bad message before anything is written: a bad address
// with a 400 a client may see, the caller's bugs with plain errors.
func TestEnqueueRefuses(t *testing.T) {
	good := reset("reset:x")
	cases := map[string]func(m *mail.Message){
		"address with CRLF":   func(m *mail.Message) { m.To = "a@example.com\r\nBcc: b@example.com" },
		"display name":        func(m *mail.Message) { m.To = "Ada <a@example.com>" },
		"two addresses":       func(m *mail.Message) { m.To = "a@example.com,b@example.com" },
		"unknown template":    func(m *mail.Message) { m.Template = "welcome" },
		"unknown locale":      func(m *mail.Message) { m.Locale = "de" },
		"no event":            func(m *mail.Message) { m.Event = "" },
		"event with newline":  func(m *mail.Message) { m.Event = "a\nb" },
		"no tenant":           func(m *mail.Message) { m.Tenant = "" },
		"tenant with space":   func(m *mail.Message) { m.Tenant = "t 1" },
		"no link":             func(m *mail.Message) { m.Link = nil },
		"javascript origin":   func(m *mail.Message) { m.Link.Origin = "javascript:alert(1)" },
		"origin with path":    func(m *mail.Message) { m.Link.Origin = "https://pommy.example/x" },
		"unnormalized origin": func(m *mail.Message) { m.Link.Origin = "https://Pommy.example:443" },
		"relative path":       func(m *mail.Message) { m.Link.Path = "account/reset" },
		"path to elsewhere":   func(m *mail.Message) { m.Link.Path = "//evil.example" },
		"path with query":     func(m *mail.Message) { m.Link.Path = "/account/reset?x=1" },
		"unknown purpose":     func(m *mail.Message) { m.Link.Purpose = "api-key" },
		"bad link id":         func(m *mail.Message) { m.Link.ID = "atk 1" },
		"unknown variable":    func(m *mail.Message) { m.Vars = map[string]string{"token": "secret"} },
		"link on a notice": func(m *mail.Message) {
			m.Template = mail.TemplatePasswordChanged
		},
		"missing variable": func(m *mail.Message) {
			m.Template, m.Link = mail.TemplateEmailChanged, nil
		},
		"variable too long": func(m *mail.Message) {
			m.Template, m.Link, m.Vars = mail.TemplateEmailChanged, nil, map[string]string{"new_email": strings.Repeat("a", 1001)}
		},
		"variable not UTF-8": func(m *mail.Message) {
			m.Template, m.Link, m.Vars = mail.TemplateEmailChanged, nil, map[string]string{"new_email": "\xff"}
		},
		"tenant var of another tenant": func(m *mail.Message) {
			m.Tenant, m.Template, m.Link.Purpose = "t_a", mail.TemplateInvitation, mail.PurposeInvitation
			m.Vars = map[string]string{"organization": "A", "inviter": "B", "role": "agent", "tenant": "t_b"}
		},
	}
	if _, err := mail.Enqueue(good, t0); err != nil {
		t.Fatalf("the good message: %v", err)
	}
	for name, f := range cases {
		m := good
		l := *good.Link
		m.Link = &l
		f(&m)
		stmts, err := mail.Enqueue(m, t0)
		if err == nil || stmts != nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		var we *web.Error
		if strings.HasPrefix(name, "address") || name == "display name" || name == "two addresses" {
			if !errors.As(err, &we) || we.Status != http.StatusBadRequest || we.Code != "invalid_email" {
				t.Errorf("%s: %v, want a 400 invalid_email", name, err)
			}
		} else if errors.As(err, &we) {
			t.Errorf("%s: a caller's bug came back as a client error: %v", name, err)
		}
	}
}

func TestLogID(t *testing.T) {
	id := mail.LogID("verify:atk_1")
	if len(id) != 27 || !strings.HasPrefix(id, "ml_") || id == mail.LogID("verify:atk_2") || id != mail.LogID("verify:atk_1") {
		t.Fatalf("LogID %q", id)
	}
}

// A tenant's deletion purges its log; a job still queued for it then
// finds no row and sends nothing.
func TestDeletedTenantSendsNothing(t *testing.T) {
	e := open(t)
	m := mail.Message{Tenant: "t_gone", Event: "notice:ntc_1:u_1", To: "ada@example.com", Template: mail.TemplatePasswordChanged}
	e.enqueue(t, m)
	if _, err := e.p.SQL.Batch(context.Background(), mail.PurgeTenantStmts("t_gone")); err != nil {
		t.Fatal(err)
	}
	e.run(t)
	if len(e.m.all()) != 0 {
		t.Fatal("mail for a deleted tenant was sent")
	}
}

// The log keeps a row Retention long, then Prune deletes it; a queued row
// stays whatever its age.
func TestPrune(t *testing.T) {
	e := open(t)
	e.enqueue(t, reset("reset:old"))
	e.run(t) // sent (and the clock moved 5 h)
	e.p.Mail = nil
	e.enqueue(t, mail.Message{Tenant: "t_a", Event: "notice:x:u", To: "a@example.com", Template: mail.TemplatePasswordChanged})
	count := func() int {
		rows, err := e.p.SQL.Query(context.Background(), `SELECT COUNT(*) FROM mail_log`)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		rows.Scan(0, &n)
		return n
	}
	e.clk.Advance(mail.Retention - 6*time.Hour)
	if err := mail.Prune(context.Background(), e.p, 10); err != nil || count() != 2 {
		t.Fatalf("before its time: %v, %d rows", err, count())
	}
	e.clk.Advance(2 * time.Hour)
	if err := mail.Prune(context.Background(), e.p, 10); err != nil || count() != 1 {
		t.Fatalf("after its time: %v, %d rows", err, count())
	}
	e.clk.Advance(mail.Retention)
	if err := mail.Prune(context.Background(), e.p, 10); err != nil || count() != 1 {
		t.Fatalf("a queued row was pruned: %v, %d rows", err, count())
	}
}

// A mail whose last try never finished (the home died mid-send) is buried
// by the runner; its log row then says failed, not queued forever.
func TestBuriedMailIsFailed(t *testing.T) {
	e := open(t)
	e.enqueue(t, reset("reset:buried"))
	lease := e.clk.Now().Add(-time.Second).UnixMilli()
	if _, err := e.p.SQL.Exec(context.Background(), `UPDATE jobs SET state = 'running', attempts = max_attempts, lease_until = ? WHERE tenant_id = ? AND ref = ?`,
		lease, mail.AccountTenant, mail.LogID("reset:buried")); err != nil {
		t.Fatal(err)
	}
	if res := e.run(t); res.Dead != 1 {
		t.Fatalf("%+v", res)
	}
	if r := e.log(t, mail.AccountTenant, "reset:buried"); r.Status != "failed" || !strings.Contains(r.LastError, "did not finish") {
		t.Fatalf("log %+v", r)
	}
	if len(e.m.all()) != 0 {
		t.Fatal("a buried job sent mail")
	}
}
