// Package smtpmail is the self-hosted home's storage.Mailer: it submits
// each message to an SMTP server (the operator's relay or provider; mailpit
// in the tests) with the standard library's net/smtp.
//
// Connections: implicit TLS (smtps, 465), STARTTLS required (587), or clear
// text to a loopback server only (url.go). AUTH PLAIN, or LOGIN when the
// server offers only that, with the configured user and password, never
// over clear text except to loopback. One connection per message: mail
// is sent by background jobs, a few per minute, so a pool would buy
// nothing and would hold sockets a server may drop.
//
// The message (message.go) is multipart/alternative (text/plain and
// text/html, UTF-8, quoted-printable), with the configured sender, a
// Message-ID made from the mail's id (the same on every retry), Date,
// MIME-Version and Auto-Submitted: auto-generated.
//
// Errors: what storage.Mail.Check refuses, and a 5xx reply to the
// recipient or the message, wrap storage.ErrInvalid (permanent); a network
// error, a timeout, a 4xx reply, a TLS failure, and a 5xx reply before the
// recipient (greeting, EHLO, STARTTLS, AUTH, MAIL FROM: the server refuses
// the configuration, not this message, so the mail goes once the operator
// fixes it) wrap storage.ErrUnavailable. Errors never hold the message's
// text, and the adapter logs nothing.
package smtpmail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"pommy.ai/edge/storage"
)

// DefaultTimeout bounds one send: connecting, the whole SMTP conversation
// and the data.
const DefaultTimeout = 20 * time.Second

// Config configures a Mailer.
type Config struct {
	Server Server
	// User and Password authenticate (AUTH PLAIN or LOGIN) when User is
	// set. The password is kept only in memory.
	User, Password string
	// From is the sender: "Name <address>" or a plain address.
	From string
	// RootCAs are the certificates trusted for the server's TLS
	// certificate; nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one send (default DefaultTimeout).
	Timeout time.Duration
	// Now is the clock for the Date header (default time.Now).
	Now func() time.Time
}

// Mailer sends mail over SMTP. It is safe for concurrent use.
type Mailer struct {
	cfg    Config
	from   *mail.Address
	domain string // the sender's domain: the Message-ID's right side, the EHLO name
}

// New checks the configuration.
func New(cfg Config) (*Mailer, error) {
	if cfg.Server.Host == "" || cfg.Server.Port == "" {
		return nil, errors.New("smtpmail: no server")
	}
	from, err := ParseSender(cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.User == "" && cfg.Password != "" {
		return nil, errors.New("smtpmail: a password without a user")
	}
	if cfg.User != "" && (strings.ContainsAny(cfg.User, "\r\n\x00") || strings.ContainsAny(cfg.Password, "\r\n\x00")) {
		return nil, errors.New("smtpmail: the user and password must not contain CR, LF or NUL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	at := strings.LastIndexByte(from.Address, '@')
	return &Mailer{cfg: cfg, from: from, domain: from.Address[at+1:]}, nil
}

// ParseSender reads a sender: "Pommy Support <support@example.com>" or
// "support@example.com". The address must pass storage.CheckMailAddress,
// the name must be one line.
func ParseSender(s string) (*mail.Address, error) {
	if s == "" {
		return nil, errors.New("mail sender: not set (--mail-from, e.g. \"Pommy <noreply@example.com>\")")
	}
	if len(s) > 320 || strings.ContainsAny(s, "\r\n\x00") {
		return nil, errors.New("mail sender: must be one line of at most 320 bytes")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("mail sender %q: %v", s, err)
	}
	if err := storage.CheckMailAddress(a.Address); err != nil {
		return nil, fmt.Errorf("mail sender %q: the address must be a plain address (name@example.com)", s)
	}
	for i := 0; i < len(a.Address); i++ {
		if a.Address[i] >= 0x80 {
			// It names the EHLO and ends every Message-ID, both ASCII
			// only; MAIL FROM would need SMTPUTF8 everywhere.
			return nil, fmt.Errorf("mail sender %q: the address must be ASCII (write an international domain in its xn-- form)", s)
		}
	}
	for _, r := range a.Name {
		if r < 0x20 || r == 0x7f {
			return nil, fmt.Errorf("mail sender %q: control character in the name", s)
		}
	}
	return a, nil
}

// Sender is the configured From, as a header value.
func (m *Mailer) Sender() string { return m.from.String() }

// String describes the mailer for the host's start-up log (no password).
func (m *Mailer) String() string {
	s := fmt.Sprintf("SMTP %s from %s", m.cfg.Server, m.from.Address)
	if m.cfg.User != "" {
		s += " as " + m.cfg.User
	}
	return s
}

// Send submits msg. The provider id is the Message-ID header.
func (m *Mailer) Send(ctx context.Context, msg storage.Mail) (string, error) {
	if err := msg.Check(); err != nil {
		return "", err
	}
	now := m.cfg.Now()
	messageID := "<" + idLeft(msg.ID) + "@" + m.domain + ">"
	body, err := buildMessage(m.from, msg, messageID, now)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	if err := m.submit(ctx, msg.To, body); err != nil {
		return "", err
	}
	return messageID, nil
}

// idLeft is the Message-ID's left side for a mail id: the id itself when
// it is letters, digits, '_' and '-' (the outbox's "ml_<hex>"), else a
// digest of it, so that any id storage.Mail.Check allows (it allows
// punctuation and non-ASCII that RFC 5322's dot-atom does not) still makes
// a valid Message-ID, the same one on every retry.
func idLeft(id string) string {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			sum := sha256.Sum256([]byte(id))
			return "id-" + hex.EncodeToString(sum[:16])
		}
	}
	return id
}

// stage names the step of the conversation that failed, for the error and
// its class.
type stage string

func (m *Mailer) submit(ctx context.Context, to string, body []byte) (err error) {
	st := stage("connect")
	defer func() {
		if err != nil {
			err = classify(ctx, st, err)
		}
	}()
	srv := m.cfg.Server
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		return err
	}
	// The context's end (its timeout included) closes the connection,
	// which ends any read or write net/smtp is blocked in.
	raw := conn // closing it ends a TLS connection over it too
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	tlsCfg := &tls.Config{ServerName: srv.Host, RootCAs: m.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if srv.Security == ImplicitTLS {
		st = "tls handshake"
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	st = "greeting"
	c, err := smtp.NewClient(conn, srv.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	st = "EHLO"
	if err := c.Hello(m.domain); err != nil {
		return err
	}
	if srv.Security == StartTLS {
		st = "STARTTLS"
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%w: the server does not offer STARTTLS, which this configuration requires (use smtps:// for implicit TLS, or tls=none for a loopback server)", errConfig)
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return err
		}
	}
	if m.cfg.User != "" {
		st = "AUTH"
		a, err := m.auth(c)
		if err != nil {
			return err
		}
		if err := c.Auth(a); err != nil {
			return err
		}
	}
	st = "MAIL FROM"
	if err := c.Mail(m.from.Address); err != nil {
		return err
	}
	st = "RCPT TO"
	if err := c.Rcpt(to); err != nil {
		return err
	}
	st = "DATA"
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		w.Close()
		return err
	}
	st = "end of data"
	if err := w.Close(); err != nil {
		return err
	}
	// The message is accepted; QUIT is a courtesy, its failure no error.
	c.Quit()
	return nil
}

// errConfig marks a refusal caused by the configuration, not the message.
var errConfig = errors.New("smtp configuration")

// classify maps an error of a stage to the storage classes.
func classify(ctx context.Context, st stage, err error) error {
	var te *textproto.Error
	switch {
	case errors.As(err, &te):
		if te.Code >= 500 && (st == "RCPT TO" || st == "DATA" || st == "end of data") {
			return fmt.Errorf("%w: smtp: the server refused the message at %s: %d %s", storage.ErrInvalid, st, te.Code, oneLine(te.Msg))
		}
		return fmt.Errorf("%w: smtp: %s: %d %s", storage.ErrUnavailable, st, te.Code, oneLine(te.Msg))
	case ctx.Err() != nil:
		return fmt.Errorf("%w: smtp: %s: no answer in time (%v)", storage.ErrUnavailable, st, ctx.Err())
	}
	return fmt.Errorf("%w: smtp: %s: %v", storage.ErrUnavailable, st, err)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// auth picks PLAIN, else LOGIN, from what the server offers. Both send
// the password only over TLS, or to a loopback server (ParseURL allows
// clear text for nothing else).
func (m *Mailer) auth(c *smtp.Client) (smtp.Auth, error) {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return nil, fmt.Errorf("%w: a user is configured but the server offers no AUTH", errConfig)
	}
	secure := m.cfg.Server.Security != NoTLS
	for _, mech := range strings.Fields(strings.ToUpper(mechs)) {
		if mech == "PLAIN" {
			return &plainAuth{user: m.cfg.User, pass: m.cfg.Password, secure: secure}, nil
		}
	}
	for _, mech := range strings.Fields(strings.ToUpper(mechs)) {
		if mech == "LOGIN" {
			return &loginAuth{user: m.cfg.User, pass: m.cfg.Password, secure: secure}, nil
		}
	}
	return nil, fmt.Errorf("%w: the server offers AUTH %s, and this client speaks PLAIN and LOGIN", errConfig, mechs)
}

// plainAuth is RFC 4616 PLAIN. net/smtp's PlainAuth compares the server
// name it was made with; ours knows from the configuration whether the
// connection is protected.
type plainAuth struct {
	user, pass string
	secure     bool
}

func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.secure && !loopback(server.Name) {
		return "", nil, errors.New("refusing to send the password over a connection without TLS")
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge after AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is the LOGIN mechanism (draft-murchison-sasl-login): the
// server prompts for the user name, then the password.
type loginAuth struct {
	user, pass string
	secure     bool
	step       int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.secure && !loopback(server.Name) {
		return "", nil, errors.New("refusing to send the password over a connection without TLS")
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected server challenge after AUTH LOGIN")
}
