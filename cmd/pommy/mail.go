package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/host/logmail"
	"pommy.ai/edge/wasm/host/smtpmail"
)

// mailConfig is the mail service's settings. The SMTP password is read
// from the environment only (POMMY_SMTP_PASSWORD): a flag would show it to
// anyone who can list the machine's processes.
type mailConfig struct {
	url, user, from, caFile string
	password                string
	server                  smtpmail.Server
}

func (m *mailConfig) flags(fs *flag.FlagSet, str func(name, def string) string) {
	fs.StringVar(&m.url, "smtp-url", str("POMMY_SMTP_URL", ""), "SMTP server `URL` that mail is sent through: smtps://host[:465] (implicit TLS), smtp://host[:587] (STARTTLS, required), or smtp://127.0.0.1:port?tls=none (clear text, loopback only); empty: outgoing mail is printed to the log (POMMY_SMTP_URL)")
	fs.StringVar(&m.user, "smtp-user", str("POMMY_SMTP_USER", ""), "SMTP `user` name for AUTH; the password is read from the environment variable POMMY_SMTP_PASSWORD only (POMMY_SMTP_USER)")
	fs.StringVar(&m.from, "mail-from", str("POMMY_MAIL_FROM", ""), "sender of outgoing mail, an `address` with an optional name, e.g. \"Pommy Support <support@example.com>\"; required with --smtp-url (POMMY_MAIL_FROM)")
	fs.StringVar(&m.caFile, "smtp-ca", str("POMMY_SMTP_CA", ""), "PEM `file` of certificates to trust for the SMTP server (a self-signed or private CA); default: the system's (POMMY_SMTP_CA)")
}

// check runs after the flags are parsed.
func (m *mailConfig) check(getenv func(string) string) error {
	m.password = getenv("POMMY_SMTP_PASSWORD")
	if m.url == "" {
		if m.user != "" || m.from != "" || m.caFile != "" || m.password != "" {
			return errors.New("mail settings without --smtp-url: set the SMTP server's URL, or drop --smtp-user, --mail-from, --smtp-ca and POMMY_SMTP_PASSWORD to print mail to the log")
		}
		return nil
	}
	var err error
	if m.server, err = smtpmail.ParseURL(m.url); err != nil {
		return fmt.Errorf("--smtp-url: %v", err)
	}
	if m.from == "" {
		return errors.New("--mail-from is required with --smtp-url (e.g. \"Pommy Support <support@example.com>\")")
	}
	if _, err := smtpmail.ParseSender(m.from); err != nil {
		return fmt.Errorf("--mail-from: %v", err)
	}
	if m.user == "" && m.password != "" {
		return errors.New("POMMY_SMTP_PASSWORD is set but --smtp-user is not")
	}
	if m.user != "" && m.password == "" {
		return errors.New("--smtp-user is set but POMMY_SMTP_PASSWORD is not (the password is read from the environment only)")
	}
	return nil
}

// mailer makes the home's mail service: SMTP when configured, else the
// log (written to logOut, the host's standard error).
func (m *mailConfig) mailer(logOut io.Writer) (storage.Mailer, string, error) {
	if m.url == "" {
		l := logmail.New(logOut)
		return l, l.String(), nil
	}
	var roots *x509.CertPool
	if m.caFile != "" {
		pem, err := os.ReadFile(m.caFile)
		if err != nil {
			return nil, "", fmt.Errorf("--smtp-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("--smtp-ca: %s holds no PEM certificate", m.caFile)
		}
	}
	s, err := smtpmail.New(smtpmail.Config{Server: m.server, User: m.user, Password: m.password, From: m.from, RootCAs: roots})
	if err != nil {
		return nil, "", err
	}
	return s, s.String(), nil
}
