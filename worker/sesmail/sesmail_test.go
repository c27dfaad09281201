package sesmail

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/sesserver"
)

const (
	testKey    = "AKIAPOMMYTEST0000001"
	testSecret = "pommy/test/secret+key0123456789abcdefABCD"
)

func newServer(t *testing.T) *sesserver.Server {
	s := sesserver.New("eu-west-1", testKey, testSecret, storagetest.RefusedMailTo)
	t.Cleanup(s.Close)
	return s
}

func newMailer(t *testing.T, s *sesserver.Server, secret string, timeout time.Duration) *Mailer {
	t.Helper()
	m, err := New(Config{Region: "eu-west-1", Endpoint: s.URL, AccessKeyID: testKey, SecretAccessKey: secret,
		From: "Pommy Destek <destek@pommy.example>", HTTP: http.DefaultClient, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The contract suite natively, against the loopback server that speaks
// SES v2's wire format and checks the signature.
func TestMailSuiteAgainstSESServer(t *testing.T) {
	s := newServer(t)
	m := newMailer(t, s, testSecret, 0)
	storagetest.Run(t, storagetest.MailSuite(m, storagetest.MailpitInbox(http.DefaultClient, s.URL), storagetest.RefusedMailTo))
	if t.Failed() {
		t.Logf("the server refused: %q", s.Refusals())
	}
}

func send(m *Mailer) (string, error) {
	return m.Send(context.Background(), storage.Mail{ID: "ml_0123", To: "a@example.com", Subject: "s", Text: "secret body text"})
}

func TestErrorClasses(t *testing.T) {
	for _, c := range []struct {
		status int
		kind   string
		want   error
	}{
		{429, "TooManyRequestsException", storage.ErrUnavailable},
		{400, "LimitExceededException", storage.ErrUnavailable},
		{500, "InternalFailure", storage.ErrUnavailable},
		{503, "ServiceUnavailable", storage.ErrUnavailable},
		{400, "SendingPausedException", storage.ErrUnavailable},
		{400, "AccountSuspendedException", storage.ErrUnavailable},
		{400, "MailFromDomainNotVerifiedException", storage.ErrUnavailable},
		{400, "MessageRejected", storage.ErrInvalid},
		{400, "BadRequestException", storage.ErrInvalid},
		{404, "NotFoundException", storage.ErrInvalid},
	} {
		t.Run(c.kind, func(t *testing.T) {
			s := newServer(t)
			m := newMailer(t, s, testSecret, 0)
			s.FailNext(1, c.status, c.kind)
			_, err := send(m)
			if !errors.Is(err, c.want) {
				t.Fatalf("%d %s: got %v, want %v", c.status, c.kind, err, c.want)
			}
			if strings.Contains(err.Error(), "secret body text") {
				t.Errorf("the error holds the message: %v", err)
			}
			// The next one goes.
			if _, err := send(m); err != nil {
				t.Fatalf("after the failure: %v", err)
			}
		})
	}
}

// A wrong secret: SES says the signature does not match (403), which the
// operator fixes; not the message's fault.
func TestWrongSecretIsUnavailable(t *testing.T) {
	s := newServer(t)
	m := newMailer(t, s, testSecret+"x", 0)
	_, err := send(m)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Errorf("the error shows the secret")
	}
}

func TestServerDownAndHung(t *testing.T) {
	s := newServer(t)
	m := newMailer(t, s, testSecret, 300*time.Millisecond)
	s.HangNext(1)
	if _, err := send(m); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("hung: got %v", err)
	}
	s.Close()
	if _, err := send(m); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("down: got %v", err)
	}
}

// An id that SES would not take in a header still sends, with a digest in
// X-Pommy-Mail-Id; the outbox's ids go as they are.
func TestMailIDHeader(t *testing.T) {
	s := newServer(t)
	m := newMailer(t, s, testSecret, 0)
	for _, id := range []string{"ml_0123abcdef", "ml_ş(1)"} {
		if _, err := m.Send(context.Background(), storage.Mail{ID: id, To: "id@example.com", Subject: "s", Text: "t"}); err != nil {
			t.Fatalf("%q: %v (server: %q)", id, err, s.Refusals())
		}
	}
	got, err := storagetest.MailpitInbox(http.DefaultClient, s.URL).List(context.Background(), "id@example.com")
	if err != nil || len(got) != 2 {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	ids := map[string]bool{}
	for _, d := range got {
		ids[d.Header(MailIDHeader)] = true
	}
	if !ids["ml_0123abcdef"] || !ids[headerID("ml_ş(1)")] || !strings.HasPrefix(headerID("ml_ş(1)"), "id-") {
		t.Errorf("X-Pommy-Mail-Id values %v", ids)
	}
}

func TestConfig(t *testing.T) {
	good := Config{Region: "eu-west-1", AccessKeyID: "a", SecretAccessKey: "b", From: "a@example.com", HTTP: http.DefaultClient}
	m, err := New(good)
	if err != nil || m.endpoint.String() != "https://email.eu-west-1.amazonaws.com" {
		t.Fatalf("%v %v", m, err)
	}
	for name, f := range map[string]func(*Config){
		"no region":          func(c *Config) { c.Region = "" },
		"bad region":         func(c *Config) { c.Region = "eu-west-1.evil.example/" },
		"no key":             func(c *Config) { c.AccessKeyID = "" },
		"no secret":          func(c *Config) { c.SecretAccessKey = "" },
		"no sender":          func(c *Config) { c.From = "" },
		"sender with CRLF":   func(c *Config) { c.From = "a@example.com\r\nBcc: b@example.com" },
		"two senders":        func(c *Config) { c.From = "a@example.com, b@example.com" },
		"http endpoint":      func(c *Config) { c.Endpoint = "http://email.example.com" },
		"endpoint with path": func(c *Config) { c.Endpoint = "https://email.example.com/x" },
		"endpoint with user": func(c *Config) { c.Endpoint = "https://u:p@email.example.com" },
		"ftp endpoint":       func(c *Config) { c.Endpoint = "ftp://email.example.com" },
	} {
		c := good
		f(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "b") && c.SecretAccessKey == "b" && strings.Contains(err.Error(), "secret access key b") {
			t.Errorf("%s: the error shows the secret", name)
		}
	}
	c := good
	c.Endpoint = "http://127.0.0.1:8080"
	if _, err := New(c); err != nil {
		t.Errorf("loopback http endpoint: %v", err)
	}
}

func TestParseResponse(t *testing.T) {
	id, err := ParseResponse(200, "", []byte(`{"MessageId":"0102abc-000000"}`))
	if err != nil || id != "0102abc-000000" {
		t.Fatalf("%q %v", id, err)
	}
	// Accepted with an answer that cannot be read: sent, not to be retried.
	if id, err := ParseResponse(200, "", []byte(`<html>`)); err != nil || id == "" {
		t.Fatalf("%q %v", id, err)
	}
	for _, c := range []struct {
		status int
		typ    string
		body   string
		want   error
	}{
		{400, "MessageRejected:http://internal.amazon.com/", `{"message":"rejected"}`, storage.ErrInvalid},
		{400, "", `{"__type":"com.amazonaws.sesv2#TooManyRequestsException","message":"slow down"}`, storage.ErrUnavailable},
		{403, "", `{"Message":"forbidden"}`, storage.ErrUnavailable},
		{302, "", ``, storage.ErrUnavailable},
		{502, "", `not json`, storage.ErrUnavailable},
	} {
		if _, err := ParseResponse(c.status, c.typ, []byte(c.body)); !errors.Is(err, c.want) {
			t.Errorf("%d %s %s: got %v, want %v", c.status, c.typ, c.body, err, c.want)
		}
	}
}

// FuzzParseResponse: SES's answer is outside data. Whatever it is, the
// parser returns an id or an error of exactly one class, never both, and
// an id is one line.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, "", []byte(`{"MessageId":"0102abc-000000"}`))
	f.Add(400, "MessageRejected", []byte(`{"message":"x"}`))
	f.Add(429, "", []byte(`{"__type":"a#TooManyRequestsException"}`))
	f.Add(500, "InternalFailure:x", []byte(`{`))
	f.Add(200, "", []byte(`{"MessageId":"a\r\nb"}`))
	f.Fuzz(func(t *testing.T, status int, typ string, body []byte) {
		id, err := ParseResponse(status, typ, body)
		if (id == "") == (err == nil) {
			t.Fatalf("id %q and error %v", id, err)
		}
		if err != nil && errors.Is(err, storage.ErrInvalid) == errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("error %v has not exactly one class", err)
		}
		if strings.ContainsAny(id, "\r\n") {
			t.Fatalf("id %q", id)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
			t.Fatalf("error with a line break: %q", err)
		}
	})
}
