package e2e

// Security notices and new-device sign-ins mailed through the real guest,
// the host's SMTP adapter and a real SMTP server (mailpit); and the
// outbox's behaviour when that server is down or refuses.

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/mailpit"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/wasm/host/local"
	"pommy.ai/edge/wasm/host/smtpmail"
)

const (
	noticeSubject    = "Security notice"
	newDeviceSubject = "New sign-in"
)

// failLogins fails five sign-ins of email from ip: a login-burst notice
// about that account.
func failLogins(t *testing.T, c *apitest.Client, email, ip string) {
	t.Helper()
	for range 5 {
		c.Login(t, email, "certainly not the password", "X-Pommy-Test-Client-IP", ip).Expect(t, 401)
	}
}

// mailed counts the messages to addr whose subject holds subj.
func mailed(t *testing.T, mp *mailpit.Server, addr, subj string) int {
	t.Helper()
	ms, err := mp.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if strings.Contains(m.Subject, subj) {
			for _, a := range m.ToAddresses() {
				if strings.EqualFold(a, addr) {
					n++
				}
			}
		}
	}
	return n
}

// withMessageID counts the messages whose Message-ID holds id.
func withMessageID(t *testing.T, mp *mailpit.Server, id string) int {
	t.Helper()
	ms, err := mp.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if strings.Contains(m.MessageID, id) {
			n++
		}
	}
	return n
}

type mailRow struct {
	ID, To, Template, Status string
	Attempts                 int
	LastError                *string `json:"last_error"`
	JobID                    string  `json:"job_id"`
}

func mailLog(t *testing.T, s *apitest.Session, query string) []mailRow {
	t.Helper()
	var l struct {
		Mail []mailRow `json:"mail"`
	}
	decode(t, s.Do(t, "GET", "/v1/mail?"+query, nil).Expect(t, 200).Body, &l)
	return l.Mail
}

// settled waits until the tenant's mail log has n security notices, none
// queued.
func settled(t *testing.T, s *apitest.Session, n int) []mailRow {
	t.Helper()
	var rows []mailRow
	waitFor(t, "the mail log to settle", func() bool {
		rows = mailLog(t, s, "template=security_notice")
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.Status == "queued" {
				return false
			}
		}
		return true
	})
	return rows
}

// TestSecurityNoticesByMail: a burst of failed sign-ins on an agent's
// account reaches the agent and the owner through the SMTP server, once
// each, in the mail's language, with the mail log's id as its Message-ID;
// with notices to owners turned off only the member is mailed; a
// returning person's sign-in from a new browser is mailed to them.
func TestSecurityNoticesByMail(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSStartTLS, User: "pommy", Password: "notice-pass"})
	h := startHome(t, homeOptions{mailpit: mp, runJobs: true})
	c := &apitest.Client{Base: h.url}
	openapi.Attach(t, c)
	o := c.Signup(t, "Notice Mail Co")
	a := o.Invite(t, "agent")

	failLogins(t, c, a.Email, "203.0.113.20")
	toOwner := mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Subject, noticeSubject) })
	toAgent := mp.WaitFor(t, a.Email, func(m mailpit.Message) bool {
		return strings.Contains(m.Subject, noticeSubject) || strings.Contains(m.Subject, "güvenlik bildirimi")
	})
	if !strings.Contains(toOwner.Subject, "Notice Mail Co") || !strings.Contains(toOwner.Text, "Repeated failed sign-ins") ||
		!strings.Contains(toOwner.Text, "failed logins for "+a.Email) || toOwner.HTML == "" {
		t.Fatalf("the owner's notice:\n%s\n%s", toOwner.Subject, toOwner.Text)
	}
	rows := settled(t, o, 2)
	for _, r := range rows {
		if r.Status != "sent" || r.Template != mail.TemplateSecurityNotice {
			t.Fatalf("mail log %+v", rows)
		}
		msg := toOwner
		if r.To == a.Email {
			msg = toAgent
		}
		if !strings.Contains(msg.MessageID, r.ID) {
			t.Fatalf("Message-ID %q is not the log id %s", msg.MessageID, r.ID)
		}
	}
	// The burst goes on (the same window): the same notice, mailed once.
	failLogins(t, c, a.Email, "203.0.113.21")
	time.Sleep(time.Second) // the job workers poll every 100 ms
	settled(t, o, 2)
	if n, m := mailed(t, mp, a.Email, noticeSubject), mailed(t, mp, o.Email, noticeSubject); n != 1 || m != 1 {
		t.Fatalf("after the burst went on: %d mails to the agent, %d notices to the owner", n, m)
	}

	// Owners opt out: a notice about another member reaches that member only.
	o.Do(t, "PATCH", "/v1/settings", map[string]any{"security_notices_to_owners": false}).Expect(t, 200)
	b := o.Invite(t, "agent")
	failLogins(t, c, b.Email, "203.0.113.22")
	mp.WaitFor(t, b.Email, func(m mailpit.Message) bool { return strings.Contains(m.Subject, noticeSubject) })
	settled(t, o, 3)
	if n := mailed(t, mp, o.Email, noticeSubject); n != 1 {
		t.Fatalf("the owner who opted out got %d notices in all, want the first one only", n)
	}

	// A new browser for a returning person.
	c.Login(t, o.Email, apitest.Password, "User-Agent", "Mozilla/5.0 <script>x</script>").Expect(t, 200)
	nd := mp.WaitFor(t, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.Subject, newDeviceSubject) })
	if !strings.Contains(nd.Text, "Mozilla/5.0 <script>x</script>") || strings.Contains(nd.HTML, "<script>") {
		t.Fatalf("new-device mail:\n%s\n%s", nd.Text, nd.HTML)
	}
	if n := mailed(t, mp, o.Email, newDeviceSubject); n != 1 {
		t.Fatalf("%d new-device mails", n)
	}
}

// switchMailer sends through live, or through dead (an SMTP adapter
// pointed at a closed port: a server that is down) while down is set.
type switchMailer struct {
	live, dead storage.Mailer
	down       atomic.Bool
}

func (s *switchMailer) Send(ctx context.Context, m storage.Mail) (string, error) {
	if s.down.Load() {
		return s.dead.Send(ctx, m)
	}
	return s.live.Send(ctx, m)
}

// TestMailServerDownThenUp: with the SMTP server unreachable the mail job
// retries with backoff, the log shows the mail queued with the reason, and
// the rest of the application answers as usual; once the server is back
// the mail is sent, exactly once. A mail the server refuses (550) is
// failed at once, in GET /v1/mail and as a dead job in GET /v1/jobs.
func TestMailServerDownThenUp(t *testing.T) {
	mp := mailpit.Start(t, mailpit.Options{AllowedRecipients: `^p[0-9a-f]{16}@example\.com$`})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr)
	ln.Close()
	dead, err := smtpmail.New(smtpmail.Config{Server: smtpmail.Server{Host: "127.0.0.1", Port: strconv.Itoa(closed.Port), Security: smtpmail.NoTLS}, From: mailFrom})
	if err != nil {
		t.Fatal(err)
	}
	sw := &switchMailer{dead: dead}
	sw.down.Store(true)
	clk := storagetest.NewClock(time.Now().UTC())
	h := startHome(t, homeOptions{mailpit: mp, runJobs: true,
		local:    func(c *local.Config) { c.Clock = clk },
		platform: func(p *local.Platform) { sw.live = p.Mail; p.Mail = sw }})
	c := &apitest.Client{Base: h.url}
	openapi.Attach(t, c)
	o := c.Signup(t, "Down Co")
	signIn := func() *apitest.Session { return c.LoginSession(t, o.Email) }

	failLogins(t, c, o.Email, "203.0.113.30")
	var row mailRow
	for i := 1; i <= 3; i++ {
		var rows []mailRow
		defer func() {
			if t.Failed() {
				t.Logf("try %d: the mail log: %+v", i, rows)
			}
		}()
		waitFor(t, "a failed try", func() bool {
			rows = mailLog(t, o, "template=security_notice")
			// The burst's notice is the first; sign-ins from the test
			// client's addresses may raise new-location ones after it.
			if n := len(rows); n > 0 && rows[n-1].Attempts >= i && (row.ID == "" || rows[n-1].ID == row.ID) {
				row = rows[n-1]
				return true
			}
			return false
		})
		if row.Status != "queued" || row.LastError == nil || !strings.Contains(*row.LastError, "refused") {
			t.Fatalf("while the server is down: %+v", row)
		}
		// Nothing else waits on the mail.
		o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
		if i == 3 {
			// Between tries (the clock stands still): the job waits,
			// queued, with the reason.
			var jobs jobList
			decode(t, o.Do(t, "GET", "/v1/jobs?kind=mail.send", nil).Expect(t, 200).Body, &jobs)
			found := false
			for _, j := range jobs.Jobs {
				found = found || (j.ID == row.JobID && j.State == "queued" && j.Attempts == 3 && j.LastError != nil && strings.Contains(*j.LastError, "refused"))
			}
			if !found {
				t.Fatalf("the mail's job %s is not queued with its error: %+v", row.JobID, jobs)
			}
		}
		clk.Advance(mail.SendPolicy.Cap + time.Second)
		o = signIn()
	}
	var jobs jobList

	sw.down.Store(false)
	// The server is back. Each round moves the clock past the longest
	// backoff (and past any lease a busy runner holds on the mail's job),
	// then gives the runners a few seconds: on a loaded machine the job
	// may be mid-run or taken over when the clock moves, so one round is
	// not always enough; the mail must arrive within a few.
	for round := 1; ; round++ {
		clk.Advance(mail.SendPolicy.Cap + time.Second)
		o = signIn()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := mp.Wait(ctx, o.Email, func(m mailpit.Message) bool { return strings.Contains(m.MessageID, row.ID) })
		cancel()
		if err == nil {
			break
		}
		if round == 6 {
			t.Fatalf("the mail %s did not arrive once the server was back (6 rounds): %v", row.ID, err)
		}
	}
	waitFor(t, "the log to say sent", func() bool {
		for _, r := range mailLog(t, o, "template=security_notice") {
			if r.ID == row.ID {
				return r.Status == "sent"
			}
		}
		return false
	})
	time.Sleep(time.Second)
	if n := withMessageID(t, mp, row.ID); n != 1 {
		t.Fatalf("the notice was delivered %d times, want exactly once", n)
	}

	// A recipient the server refuses for good.
	inv := o.Do(t, "POST", "/v1/invitations", map[string]string{"email": "refused@example.com", "role": "agent"}).Expect(t, 201).JSON(t)
	c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": inv["token"].(string), "password": apitest.Password}).Expect(t, 201)
	failLogins(t, c, "refused@example.com", "203.0.113.31")
	var failed mailRow
	waitFor(t, "the refused mail to fail", func() bool {
		rows := mailLog(t, o, "status=failed")
		for _, r := range rows {
			if r.To == "refused@example.com" && r.Template == mail.TemplateSecurityNotice {
				failed = r
				return true
			}
		}
		return false
	})
	if failed.LastError == nil || !strings.Contains(*failed.LastError, "550") {
		t.Fatalf("the refused mail: %+v", failed)
	}
	decode(t, o.Do(t, "GET", "/v1/jobs?kind=mail.send&state=dead", nil).Expect(t, 200).Body, &jobs)
	found := false
	for _, j := range jobs.Jobs {
		found = found || j.ID == failed.JobID
	}
	if !found {
		t.Fatalf("the refused mail's job %s is not dead: %+v", failed.JobID, jobs)
	}
}
