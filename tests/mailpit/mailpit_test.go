package mailpit

import (
	"context"
	"crypto/tls"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// The helper itself, with net/smtp as the client: each TLS mode, with AUTH,
// and WaitFor's report when nothing matching arrived.
func TestModes(t *testing.T) {
	for _, o := range []Options{
		{TLS: TLSNone},
		{TLS: TLSStartTLS, User: "pommy", Password: "s3cret-pass"},
		{TLS: TLSImplicit, User: "pommy", Password: "s3cret-pass"},
	} {
		t.Run(o.TLS.String(), func(t *testing.T) {
			s := Start(t, o)
			var conn net.Conn
			var err error
			if o.TLS == TLSImplicit {
				conn, err = tls.Dial("tcp", s.SMTPAddr, s.TLSConfig())
			} else {
				conn, err = net.Dial("tcp", s.SMTPAddr)
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := smtp.NewClient(conn, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if o.TLS == TLSStartTLS {
				if err := c.StartTLS(s.TLSConfig()); err != nil {
					t.Fatal(err)
				}
			}
			if o.User != "" {
				if err := c.Auth(smtp.PlainAuth("", o.User, o.Password, "127.0.0.1")); err != nil {
					t.Fatal(err)
				}
			}
			to := "someone+" + o.TLS.String() + "@example.test"
			if err := c.Mail("from@example.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(to); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("From: from@example.test\r\nTo: " + to + "\r\nSubject: hello\r\nMessage-ID: <m1@example.test>\r\n\r\nbody text\r\n"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			c.Quit()
			m := s.WaitFor(t, to, nil)
			if m.Subject != "hello" || m.MessageID != "m1@example.test" || !strings.Contains(m.Text, "body text") || m.From.Address != "from@example.test" {
				t.Errorf("got %+v", m)
			}
			if got := m.Header("message-id"); got != "<m1@example.test>" {
				t.Errorf("Message-ID header %q", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err = s.Wait(ctx, "nobody@example.test", nil)
			if err == nil || !strings.Contains(err.Error(), to) {
				t.Errorf("Wait for a message that never came: %v", err)
			}
		})
	}
}
