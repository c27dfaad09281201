package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pommy.ai/edge/storage"
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
