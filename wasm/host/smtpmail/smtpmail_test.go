package smtpmail

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/mailpit"
)

// The contract suite against a real SMTP server (mailpit) in each TLS
// mode, with AUTH where the connection is protected.
func TestMailSuiteAgainstMailpit(t *testing.T) {
	for _, c := range []struct {
		name string
		opts mailpit.Options
		sec  Security
	}{
		{"plain", mailpit.Options{TLS: mailpit.TLSNone}, NoTLS},
		{"plain-auth", mailpit.Options{TLS: mailpit.TLSNone, User: "pommy", Password: "pl41n-pass"}, NoTLS},
		{"starttls-auth", mailpit.Options{TLS: mailpit.TLSStartTLS, User: "pommy", Password: "st4rt-pass"}, StartTLS},
		{"implicit-tls-auth", mailpit.Options{TLS: mailpit.TLSImplicit, User: "pommy", Password: "sm7ps-pass"}, ImplicitTLS},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.AllowedRecipients = `@example\.com$`
			srv := mailpit.Start(t, c.opts)
			m := newMailer(t, srv, c.sec, c.opts.User, c.opts.Password)
			inbox := storagetest.MailpitInbox(http.DefaultClient, srv.API)
			storagetest.Run(t, storagetest.MailSuite(m, inbox, storagetest.RefusedMailTo))
		})
	}
}

func newMailer(t *testing.T, srv *mailpit.Server, sec Security, user, pass string) *Mailer {
	t.Helper()
	host, port, _ := net.SplitHostPort(srv.SMTPAddr)
	m, err := New(Config{
		Server:   Server{Host: host, Port: port, Security: sec},
		User:     user,
		Password: pass,
		From:     "Pommy Çağrı Merkezi <destek@pommy.example>",
		RootCAs:  srv.CertPool,
		Timeout:  10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// What a person's mail program sees: the headers the adapter promises.
func TestMessageHeaders(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSStartTLS, User: "u", Password: "p"})
	m := newMailer(t, srv, StartTLS, "u", "p")
	id := "ml_0123456789abcdef01234567"
	pid, err := m.Send(context.Background(), storage.Mail{ID: id, To: "ayse@example.com", Subject: "Hoş geldiniz", Text: "Merhaba", HTML: "<p>Merhaba</p>"})
	if err != nil {
		t.Fatal(err)
	}
	if pid != "<"+id+"@pommy.example>" {
		t.Errorf("provider id %q", pid)
	}
	got := srv.WaitFor(t, "ayse@example.com", nil)
	if got.MessageID != id+"@pommy.example" {
		t.Errorf("Message-ID %q", got.MessageID)
	}
	if got.From.Address != "destek@pommy.example" || got.From.Name != "Pommy Çağrı Merkezi" {
		t.Errorf("From %+v", got.From)
	}
	if got.Subject != "Hoş geldiniz" || !strings.Contains(got.Header("Subject"), "=?utf-8?") {
		t.Errorf("Subject %q sent as %q, want RFC 2047", got.Subject, got.Header("Subject"))
	}
	for name, want := range map[string]string{"Auto-Submitted": "auto-generated", "MIME-Version": "1.0"} {
		if got.Header(name) != want {
			t.Errorf("%s: %q, want %q", name, got.Header(name), want)
		}
	}
	if _, err := time.Parse(time.RFC1123Z, got.Header("Date")); err != nil {
		t.Errorf("Date %q: %v", got.Header("Date"), err)
	}
	if ct := got.Header("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(got.Raw, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable") ||
		!strings.Contains(got.Raw, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable") {
		t.Errorf("parts are not UTF-8 quoted-printable:\n%s", got.Raw)
	}
}

func TestWrongPasswordIsUnavailable(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSStartTLS, User: "u", Password: "right"})
	m := newMailer(t, srv, StartTLS, "u", "wrong")
	_, err := m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("got %v, want ErrUnavailable at AUTH (the operator's setting, not the message, is wrong)", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// STARTTLS configured and not offered: refused, never clear text.
func TestStartTLSRequired(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSNone})
	m := newMailer(t, srv, StartTLS, "", "")
	_, err := m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("got %v, want ErrUnavailable for a missing STARTTLS", err)
	}
	if n, _ := srv.Count(context.Background(), "a@example.com"); n != 0 {
		t.Errorf("%d message(s) went in clear text", n)
	}
}

// A certificate the mailer does not trust: refused.
func TestUntrustedCertificate(t *testing.T) {
	srv := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSImplicit})
	host, port, _ := net.SplitHostPort(srv.SMTPAddr)
	m, err := New(Config{Server: Server{Host: host, Port: port, Security: ImplicitTLS}, From: "a@pommy.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v, want ErrUnavailable for an untrusted certificate", err)
	}
}

func TestServerDownIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	m, err := New(Config{Server: Server{Host: "127.0.0.1", Port: fmt.Sprint(addr.Port), Security: NoTLS}, From: "a@pommy.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

// scripted is an SMTP server that answers from a script: reply[cmd] is the
// reply to a command (by its verb), "" for the default; hang makes it
// stop answering after the greeting.
func scripted(t *testing.T, replies map[string]string, hang bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "220 scripted ESMTP\r\n")
				if hang {
					<-done
					return
				}
				r := bufio.NewReader(c)
				data := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if data {
						if line == ".\r\n" {
							data = false
							fmt.Fprintf(c, "%s\r\n", or(replies["."], "250 ok queued"))
						}
						continue
					}
					verb := strings.ToUpper(strings.Fields(line + " x")[0])
					switch verb {
					case "EHLO":
						fmt.Fprintf(c, "250-scripted\r\n250 8BITMIME\r\n")
					case "DATA":
						if rep := replies["DATA"]; rep != "" {
							fmt.Fprintf(c, "%s\r\n", rep)
							continue
						}
						data = true
						fmt.Fprintf(c, "354 go on\r\n")
					case "QUIT":
						fmt.Fprintf(c, "221 bye\r\n")
						return
					default:
						fmt.Fprintf(c, "%s\r\n", or(replies[verb], "250 ok"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Reply codes decide the class: 5xx about the recipient or the message is
// permanent; 4xx, and 5xx to the configuration's commands, are not.
func TestReplyClasses(t *testing.T) {
	for _, c := range []struct {
		name    string
		replies map[string]string
		want    error
	}{
		{"rcpt 550", map[string]string{"RCPT": "550 5.1.1 no such user"}, storage.ErrInvalid},
		{"rcpt 450", map[string]string{"RCPT": "450 4.2.1 mailbox busy"}, storage.ErrUnavailable},
		{"data 554", map[string]string{"DATA": "554 5.7.1 rejected"}, storage.ErrInvalid},
		{"end of data 552", map[string]string{".": "552 5.3.4 message too big"}, storage.ErrInvalid},
		{"end of data 451", map[string]string{".": "451 4.3.0 try later"}, storage.ErrUnavailable},
		{"mail from 553", map[string]string{"MAIL": "553 5.7.1 sender not allowed"}, storage.ErrUnavailable},
		{"mail from 421", map[string]string{"MAIL": "421 4.3.2 shutting down"}, storage.ErrUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := scripted(t, c.replies, false)
			host, port, _ := net.SplitHostPort(addr)
			m, err := New(Config{Server: Server{Host: host, Port: port, Security: NoTLS}, From: "a@pommy.example", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "secret body text"})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "secret body text") {
				t.Errorf("the error holds the message's text: %v", err)
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		addr := scripted(t, nil, false)
		host, port, _ := net.SplitHostPort(addr)
		m, _ := New(Config{Server: Server{Host: host, Port: port, Security: NoTLS}, From: "a@pommy.example"})
		if _, err := m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
	})
}

// A server that greets and then never answers: the send ends at the
// configured timeout as unavailable. (No assertion on how long it took:
// that it ends at all is the point; the test's own deadline catches a hang.)
func TestHungServerIsBounded(t *testing.T) {
	addr := scripted(t, nil, true)
	host, port, _ := net.SplitHostPort(addr)
	m, err := New(Config{Server: Server{Host: host, Port: port, Security: NoTLS}, From: "a@pommy.example", Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func TestParseSender(t *testing.T) {
	for _, ok := range []string{"a@example.com", "Pommy <a@example.com>", `"Pommy, Inc." <a@example.com>`, "Pommy Destek Ekibi <destek@xn--rnek-4qa.example>", "=?utf-8?q?Destek_=C3=87a=C4=9Fr=C4=B1?= <a@example.com>"} {
		if _, err := ParseSender(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a", "a@example.com\r\nBcc: b@example.com", "Eve <a@example.com>, b@example.com", "<>", "Pommy\n <a@example.com>", "Destek <destek@örnek.example>"} {
		if _, err := ParseSender(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIDLeft(t *testing.T) {
	if got := idLeft("ml_0123abcd-x"); got != "ml_0123abcd-x" {
		t.Errorf("a plain id changed: %q", got)
	}
	for _, id := range []string{"a(b", "ş", "a.b", "a..b", "x:y", "[a]"} {
		got := idLeft(id)
		if got != idLeft(id) || !strings.HasPrefix(got, "id-") || len(got) != 35 {
			t.Errorf("%q -> %q", id, got)
		}
	}
}
