package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/mailpit"
	"pommy.ai/edge/wasm/host/logmail"
	"pommy.ai/edge/wasm/host/smtpmail"
)

func TestMailConfig(t *testing.T) {
	parse := func(args []string, env map[string]string) (config, error) {
		return parseConfig(args, func(k string) string { return env[k] }, io.Discard)
	}
	// Nothing configured: the log.
	c, err := parse(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m, desc, err := c.mail.mailer(&out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*logmail.Mailer); !ok || !strings.Contains(desc, "log") {
		t.Fatalf("mailer %T %q, want the log", m, desc)
	}
	if _, err := m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "Reset", Text: "https://x.example/account/reset#token=t"}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, logmail.Banner) || !strings.Contains(s, "To: a@example.com") || !strings.Contains(s, "#token=t") {
		t.Errorf("the log shows:\n%s", s)
	}

	// SMTP from flags and the environment; the password only from there.
	env := map[string]string{"POMMY_SMTP_URL": "smtps://mail.example.com", "POMMY_SMTP_PASSWORD": "hunter2-secret", "POMMY_MAIL_FROM": "Pommy <noreply@example.com>"}
	var help bytes.Buffer
	c, err = parseConfig([]string{"--smtp-user", "pommy"}, func(k string) string { return env[k] }, &help)
	if err != nil {
		t.Fatal(err)
	}
	if c.mail.server != (smtpmail.Server{Host: "mail.example.com", Port: "465", Security: smtpmail.ImplicitTLS}) || c.mail.password != "hunter2-secret" || c.mail.user != "pommy" {
		t.Fatalf("mail config %+v", c.mail)
	}
	m, desc, err = c.mail.mailer(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*smtpmail.Mailer); !ok || strings.Contains(desc, "hunter2") || !strings.Contains(desc, "smtps://mail.example.com:465") {
		t.Fatalf("mailer %T %q", m, desc)
	}
	parseConfig([]string{"--help"}, func(k string) string { return env[k] }, &help)
	if strings.Contains(help.String(), "hunter2") {
		t.Error("--help shows the SMTP password")
	}
	if strings.Contains(help.String(), "smtp-password") {
		t.Error("there is a password flag")
	}

	// A CA file.
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	c, err = parse([]string{"--smtp-url", "smtp://mail.example.com", "--mail-from", "a@example.com", "--smtp-ca", ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.mail.mailer(io.Discard); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("a CA file without a certificate: %v", err)
	}

	for _, bad := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--smtp-url", "smtp://mail.example.com"}, nil, "--mail-from is required"},
		{[]string{"--smtp-url", "smtp://user:pw@mail.example.com", "--mail-from", "a@example.com"}, nil, "credentials"},
		{[]string{"--smtp-url", "smtp://mail.example.com?tls=none", "--mail-from", "a@example.com"}, nil, "loopback"},
		{[]string{"--smtp-url", "http://mail.example.com", "--mail-from", "a@example.com"}, nil, "scheme"},
		{[]string{"--smtp-url", "smtp://mail.example.com", "--mail-from", "a@example.com\r\nBcc: x@example.com"}, nil, "one line"},
		{[]string{"--smtp-url", "smtp://mail.example.com", "--mail-from", "a@example.com", "--smtp-user", "u"}, nil, "POMMY_SMTP_PASSWORD is not"},
		{[]string{"--smtp-url", "smtp://mail.example.com", "--mail-from", "a@example.com"}, map[string]string{"POMMY_SMTP_PASSWORD": "x"}, "--smtp-user is not"},
		{[]string{"--mail-from", "a@example.com"}, nil, "without --smtp-url"},
		{nil, map[string]string{"POMMY_SMTP_PASSWORD": "x"}, "without --smtp-url"},
	} {
		_, err := parse(bad.args, bad.env)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v %v: got %v, want an error with %q", bad.args, bad.env, err, bad.want)
		}
	}
}

// TestRunMail runs the command as a person would, with the shipped guest:
// without mail settings a sign-up's verification mail is printed to the
// log under the banner, link included; with --smtp-url (STARTTLS, AUTH,
// the server's certificate from --smtp-ca, the password from the
// environment) it arrives at a real SMTP server, and the log names the
// service but never the password.
func TestRunMail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the guest")
	}
	dir := t.TempDir()
	module := filepath.Join(dir, "guest.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", module, "pommy.ai/edge/wasm/guest")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, out)
	}
	mp := mailpit.Start(t, mailpit.Options{TLS: mailpit.TLSStartTLS, User: "pommy", Password: "run-mail-secret-pw"})
	ca := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(ca, mp.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(mp.SMTPAddr)

	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"log", nil, nil},
		{"smtp", []string{"--smtp-url", "smtp://localhost:" + port, "--smtp-user", "pommy", "--smtp-ca", ca, "--mail-from", "Pommy Test <noreply@pommy.example>"},
			map[string]string{"POMMY_SMTP_PASSWORD": "run-mail-secret-pw"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--module", module, "--jobs-every", "100ms"}, c.args...)
			cfg, err := parseConfig(args, func(k string) string { return c.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			mailLog := &syncLog{}
			cfg.mailLog = mailLog
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			addrc := make(chan string, 1)
			done := make(chan error, 1)
			logs := &syncLog{}
			go func() {
				done <- run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), func(a string) { addrc <- a })
			}()
			var base string
			select {
			case a := <-addrc:
				base = "http://" + a
			case err := <-done:
				t.Fatalf("ended before listening: %v", err)
			}
			s, _ := (&apitest.Client{Base: base}).SignupUnverified(t, "Acme", nil)
			deadline := time.Now().Add(time.Minute)
			if c.name == "log" {
				if !strings.Contains(logs.String(), "mail is not configured") {
					t.Errorf("the host did not say at start that mail is printed to the log:\n%s", logs)
				}
				for !strings.Contains(mailLog.String(), "To: "+s.Email) {
					if time.Now().After(deadline) {
						t.Fatalf("no mail to %s printed; the mail log holds:\n%s\nhost log:\n%s", s.Email, mailLog, logs)
					}
					time.Sleep(100 * time.Millisecond)
				}
				out := mailLog.String()
				if !strings.Contains(out, logmail.Banner) || !strings.Contains(out, "/account/verify#token=") {
					t.Errorf("the printed mail lacks the banner or the link:\n%s", out)
				}
			} else {
				m := mp.WaitFor(t, s.Email, nil)
				if !strings.Contains(m.Text, "/account/verify#token=") || m.From.Address != "noreply@pommy.example" {
					t.Errorf("the verification mail: from %+v, text:\n%s", m.From, m.Text)
				}
				if mailLog.String() != "" {
					t.Errorf("mail printed to the log although SMTP is configured:\n%s", mailLog)
				}
				if l := logs.String(); !strings.Contains(l, "smtp://localhost:"+port) || strings.Contains(l, "run-mail-secret-pw") {
					t.Errorf("the host log should name the SMTP server and never the password:\n%s", l)
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("shutdown: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("did not shut down")
			}
		})
	}
}
