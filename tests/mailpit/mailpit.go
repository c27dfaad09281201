// Package mailpit starts a real SMTP server on loopback for tests: mailpit
// (github.com/axllent/mailpit), which accepts mail over SMTP (plain,
// STARTTLS or implicit TLS, with or without AUTH) and shows what arrived
// through its HTTP API.
//
// The binary is built from the Go module proxy on first use (a few minutes:
// it compiles an embedded SQLite) into a cache shared by all checkouts:
// $POMMY_TOOLS_DIR/bin if set, else $(go env GOCACHE)/../pommy-tools/bin.
// $POMMY_MAILPIT names a prebuilt binary to use instead. Tests that need the
// server fail, with the reason, when it cannot be built or started;
// POMMY_SKIP_MAILPIT=1 skips them explicitly.
package mailpit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/tests/gotool"
)

// Version is the mailpit release this package builds.
const Version = "v1.33.1"

const module = "github.com/axllent/mailpit"

// TLSMode is how the SMTP listener speaks TLS.
type TLSMode int

const (
	// TLSNone: plain SMTP; STARTTLS is not offered.
	TLSNone TLSMode = iota
	// TLSStartTLS: plain SMTP that offers STARTTLS and requires it before
	// MAIL FROM.
	TLSStartTLS
	// TLSImplicit: TLS from the first byte (smtps).
	TLSImplicit
)

func (m TLSMode) String() string {
	return [...]string{"plain", "starttls", "implicit-tls"}[m]
}

// Options configure a server.
type Options struct {
	TLS TLSMode
	// User and Password, when User is set, are the only credentials the
	// server accepts, and AUTH is required. Without TLS, mailpit is told
	// to allow AUTH over plain text (loopback).
	User, Password string
	// AcceptAnyAuth accepts any AUTH, or none (ignored when User is set).
	AcceptAnyAuth bool
	// AllowedRecipients, when set, is a regular expression (Go syntax)
	// that a recipient must match; the server refuses any other with
	// 550 at RCPT TO (a permanent refusal, for the tests of one).
	AllowedRecipients string
}

// Server is a running mailpit.
type Server struct {
	// SMTPAddr is the SMTP listener, 127.0.0.1:PORT.
	SMTPAddr string
	// API is the HTTP API's base URL, http://127.0.0.1:PORT.
	API string
	// CAPEM is the self-signed certificate the SMTP listener presents
	// (with TLS), for the client to trust; CertPool holds it.
	CAPEM    []byte
	CertPool *x509.CertPool
	Opts     Options

	bin  string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *gotool.LogBuffer
	// seen caches message details by mailpit id.
	seen map[string]Message
}

// Start builds (if needed) and starts a server for the test and registers
// Stop with tb.Cleanup. It fails tb if the server cannot be had, unless
// POMMY_SKIP_MAILPIT=1, in which case it skips.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	if os.Getenv("POMMY_SKIP_MAILPIT") == "1" {
		tb.Skip("POMMY_SKIP_MAILPIT=1: tests against the SMTP server skipped")
	}
	bin, err := Binary()
	if err != nil {
		tb.Fatalf("mailpit: cannot build mailpit %s (set POMMY_SKIP_MAILPIT=1 to skip mail tests explicitly): %v", Version, err)
	}
	s, err := StartBinary(bin, tb.TempDir(), o)
	if err != nil {
		tb.Fatalf("mailpit: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartBinary starts the mailpit at bin with its files in dir.
func StartBinary(bin, dir string, o Options) (*Server, error) {
	s := &Server{Opts: o, bin: bin, dir: dir, seen: map[string]Message{}}
	if o.TLS != TLSNone {
		certPEM, keyPEM, err := selfSigned()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
			return nil, err
		}
		s.CAPEM = certPEM
		s.CertPool = x509.NewCertPool()
		s.CertPool.AppendCertsFromPEM(certPEM)
	}
	if o.User != "" {
		// go-htpasswd, which mailpit uses, takes "user:password" in
		// plain text as its last resort format.
		if strings.ContainsAny(o.User+o.Password, ":\n") {
			return nil, errors.New("mailpit: user and password must not contain ':' or a newline")
		}
		if err := os.WriteFile(filepath.Join(dir, "smtp-auth"), []byte(o.User+":"+o.Password+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) start() error {
	smtpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{
		"--smtp", smtpAddr,
		"--listen", apiAddr,
		"--quiet",
		"--max", "5000",
	}
	switch s.Opts.TLS {
	case TLSStartTLS:
		args = append(args, "--smtp-tls-cert", filepath.Join(s.dir, "cert.pem"), "--smtp-tls-key", filepath.Join(s.dir, "key.pem"), "--smtp-require-starttls")
	case TLSImplicit:
		args = append(args, "--smtp-tls-cert", filepath.Join(s.dir, "cert.pem"), "--smtp-tls-key", filepath.Join(s.dir, "key.pem"), "--smtp-require-tls")
	}
	switch {
	case s.Opts.User != "":
		args = append(args, "--smtp-auth-file", filepath.Join(s.dir, "smtp-auth"))
		if s.Opts.TLS == TLSNone {
			args = append(args, "--smtp-auth-allow-insecure")
		}
	case s.Opts.AcceptAnyAuth:
		args = append(args, "--smtp-auth-accept-any")
		if s.Opts.TLS == TLSNone {
			args = append(args, "--smtp-auth-allow-insecure")
		}
	}
	if s.Opts.AllowedRecipients != "" {
		args = append(args, "--smtp-allowed-recipients", s.Opts.AllowedRecipients)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = &gotool.LogBuffer{}
	cmd := exec.Command(s.bin, args...)
	// Its database is a temporary file it deletes on exit; keep every
	// MP_* setting of the caller's environment out.
	cmd.Env = []string{"HOME=" + s.dir, "TMPDIR=" + s.dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	api := "http://" + apiAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("mailpit exited at start (%v):\n%s", err, s.logs)
		default:
		}
		ready := false
		if resp, err := http.Get(api + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if ready {
			if c, err := net.DialTimeout("tcp", smtpAddr, time.Second); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("mailpit did not answer on %s and %s within 30s:\n%s", smtpAddr, apiAddr, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd, s.SMTPAddr, s.API = cmd, smtpAddr, api
	go func() {
		err := <-exited
		s.logs.WriteString(fmt.Sprintf("mailpit exited: %v\n", err))
	}()
	return nil
}

// Stop ends the server.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Kill()
	}
}

// Logs is what the server printed (errors only: it runs with --quiet).
func (s *Server) Logs() string { return s.logs.String() }

// TLSConfig is a client configuration that trusts the server's
// certificate (nil without TLS).
func (s *Server) TLSConfig() *tls.Config {
	if s.CertPool == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.CertPool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Address is a mail address (mailpit's JSON shape).
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Message is one message as it arrived.
type Message struct {
	ID        string // mailpit's id
	MessageID string // the Message-ID header, without < >
	From      Address
	To        []Address
	Subject   string // decoded
	Text      string // the text/plain part, decoded
	HTML      string // the text/html part, decoded
	// Headers are the message's headers, as sent (not decoded).
	Headers map[string][]string
	// Raw is the message's source as the server received it.
	Raw string
}

// Header returns the first value of a header (canonical or not).
func (m Message) Header(name string) string {
	for k, v := range m.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// ToAddresses lists the recipients' addresses.
func (m Message) ToAddresses() []string {
	out := make([]string, len(m.To))
	for i, a := range m.To {
		out[i] = a.Address
	}
	return out
}

// WaitTimeout is how long WaitFor waits for a message.
var WaitTimeout = 30 * time.Second

// WaitFor polls the API until a message to the address to arrives for
// which match (nil: any) returns true, and returns it. It fails t after
// WaitTimeout, listing what did arrive.
func (s *Server) WaitFor(t testing.TB, to string, match func(Message) bool) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	m, err := s.Wait(ctx, to, match)
	if err != nil {
		t.Fatalf("mailpit: %v", err)
	}
	return m
}

// Wait is WaitFor without a testing.TB: it returns an error listing what
// arrived when ctx ends first.
func (s *Server) Wait(ctx context.Context, to string, match func(Message) bool) (Message, error) {
	var lastErr error
	for {
		all, err := s.Messages(ctx)
		if err == nil {
			for _, m := range all {
				if addrIn(to, m.To) && (match == nil || match(m)) {
					return m, nil
				}
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			var b strings.Builder
			fmt.Fprintf(&b, "no matching message to %s arrived (%v); the server holds %d:", to, ctx.Err(), len(all))
			for _, m := range all {
				fmt.Fprintf(&b, "\n  to %v: %q (Message-ID %s)", m.ToAddresses(), m.Subject, m.MessageID)
			}
			if lastErr != nil {
				fmt.Fprintf(&b, "\nlast API error: %v", lastErr)
			}
			if l := s.Logs(); l != "" {
				fmt.Fprintf(&b, "\nmailpit's log:\n%s", l)
			}
			return Message{}, errors.New(b.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Count returns how many messages to the address have arrived.
func (s *Server) Count(ctx context.Context, to string) (int, error) {
	all, err := s.Messages(ctx)
	n := 0
	for _, m := range all {
		if addrIn(to, m.To) {
			n++
		}
	}
	return n, err
}

func addrIn(a string, list []Address) bool {
	for _, x := range list {
		if strings.EqualFold(x.Address, a) {
			return true
		}
	}
	return false
}

// Messages returns every message the server holds (at most 5000), newest
// first, with their parts and headers.
func (s *Server) Messages(ctx context.Context) ([]Message, error) {
	var list struct {
		Messages []struct {
			ID string `json:"ID"`
		} `json:"messages"`
	}
	if err := s.get(ctx, "/api/v1/messages?limit=5000", &list); err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(list.Messages))
	for _, sum := range list.Messages {
		m, err := s.message(ctx, sum.ID)
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Server) message(ctx context.Context, id string) (Message, error) {
	s.mu.Lock()
	m, ok := s.seen[id]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	var d struct {
		ID        string    `json:"ID"`
		MessageID string    `json:"MessageID"`
		From      *Address  `json:"From"`
		To        []Address `json:"To"`
		Subject   string    `json:"Subject"`
		Text      string    `json:"Text"`
		HTML      string    `json:"HTML"`
	}
	p := "/api/v1/message/" + url.PathEscape(id)
	if err := s.get(ctx, p, &d); err != nil {
		return m, err
	}
	m = Message{ID: d.ID, MessageID: d.MessageID, To: d.To, Subject: d.Subject, Text: d.Text, HTML: d.HTML}
	if d.From != nil {
		m.From = *d.From
	}
	if err := s.get(ctx, p+"/headers", &m.Headers); err != nil {
		return m, err
	}
	raw, err := s.fetch(ctx, p+"/raw")
	if err != nil {
		return m, err
	}
	m.Raw = string(raw)
	s.mu.Lock()
	s.seen[id] = m
	s.mu.Unlock()
	return m, nil
}

// DeleteAll removes every message.
func (s *Server) DeleteAll(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, s.API+"/api/v1/messages", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE /api/v1/messages: %s", resp.Status)
	}
	s.mu.Lock()
	clear(s.seen)
	s.mu.Unlock()
	return nil
}

func (s *Server) fetch(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.API+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

func (s *Server) get(ctx context.Context, path string, v any) error {
	b, err := s.fetch(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, valid for a
// day, and its key, in PEM.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailpit test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// tool is the server's build from the Go module proxy.
var tool = gotool.Tool{Name: "mailpit", Module: module, Version: Version, What: "the SMTP test server", Override: "POMMY_MAILPIT", Env: []string{"CGO_ENABLED=0"}}

// Binary returns the path of the server's binary (POMMY_MAILPIT, or one built
// once per machine; package gotool).
func Binary() (string, error) { return tool.Binary() }
