// Package sesmail is the edge home's storage.Mailer: Amazon SES's v2 API
// (SendEmail, POST /v2/email/outbound-emails), called through the worker's
// outbound fetch (any storage.HTTPDoer: worker/egress at the edge,
// net/http in the tests).
//
// The request is SES v2's JSON, written here, and signed with AWS
// Signature Version 4 (sigv4.go): the SDK's SES client would add its whole
// middleware stack to the worker for one call, and even its signer alone
// the aws and smithy-go packages (docs/decisions.md, "The Email port's
// adapters", has the bytes).
//
// SES makes its own Message-ID, and SendEmail takes no idempotency key, so
// the mail's id travels as the header X-Pommy-Mail-Id, which lets a
// recipient's copy be traced back to the mail log.
//
// Errors: what storage.Mail.Check refuses, and SES's refusals of the
// message (400 MessageRejected, BadRequestException, NotFoundException)
// wrap storage.ErrInvalid; throttling (429, TooManyRequestsException,
// LimitExceededException), 5xx, a network error or a timeout, and refusals
// of the account or the credentials (401, 403, SendingPausedException,
// AccountSuspendedException, MailFromDomainNotVerifiedException: the
// operator fixes them and the mail then goes) wrap storage.ErrUnavailable.
package sesmail

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"pommy.ai/edge/storage"
)

// Path is SendEmail's path.
const Path = "/v2/email/outbound-emails"

// MailIDHeader carries the mail's id in the message.
const MailIDHeader = "X-Pommy-Mail-Id"

// DefaultTimeout bounds one send.
const DefaultTimeout = 20 * time.Second

// maxResponse bounds the bytes read of SES's answer.
const maxResponse = 64 << 10

// Config configures a Mailer.
type Config struct {
	// Region is the SES region, e.g. eu-west-1.
	Region string
	// Endpoint overrides https://email.<Region>.amazonaws.com (tests, or
	// a FIPS endpoint). http is accepted only for a loopback host.
	Endpoint string
	// AccessKeyID and SecretAccessKey are an IAM user's key allowed
	// ses:SendEmail.
	AccessKeyID, SecretAccessKey string
	// From is the sender, "Name <address>" or an address; SES must have
	// the address or its domain verified.
	From string
	// HTTP sends the request (the worker's fetch).
	HTTP storage.HTTPDoer
	// Timeout bounds one send (default DefaultTimeout).
	Timeout time.Duration
	// Now is the signing clock (default time.Now).
	Now func() time.Time
}

// Mailer sends mail through SES v2. It is safe for concurrent use.
type Mailer struct {
	cfg      Config
	endpoint *url.URL
	from     string
}

// New checks the configuration. Its errors name settings, never values of
// secrets.
func New(cfg Config) (*Mailer, error) {
	var errs []error
	if cfg.Region == "" || !validRegion(cfg.Region) {
		errs = append(errs, errors.New("the SES region is not set or not a region name (e.g. eu-west-1)"))
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		errs = append(errs, errors.New("the SES access key id and secret access key are required"))
	}
	if cfg.HTTP == nil {
		errs = append(errs, errors.New("no HTTP client"))
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil || strings.ContainsAny(cfg.From, "\r\n") || storage.CheckMailAddress(from.Address) != nil {
		errs = append(errs, fmt.Errorf("the sender %q is not an address with an optional name (\"Pommy <noreply@example.com>\")", cfg.From))
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = "https://email." + cfg.Region + ".amazonaws.com"
	}
	u, err := ParseEndpoint(ep)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("sesmail: %w", errors.Join(errs...))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Mailer{cfg: cfg, endpoint: u, from: from.String()}, nil
}

func validRegion(r string) bool {
	if len(r) > 32 {
		return false
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ParseEndpoint checks an endpoint URL: https, or http to a loopback host
// (the tests' server); no user, query or fragment.
func ParseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("the SES endpoint %q must be scheme://host[:port]", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		h := u.Hostname()
		if h != "127.0.0.1" && h != "::1" && h != "localhost" {
			return nil, fmt.Errorf("the SES endpoint %q may use http only on loopback", s)
		}
	default:
		return nil, fmt.Errorf("the SES endpoint %q must be https", s)
	}
	u.Path = ""
	return u, nil
}

// String describes the mailer (no secrets).
func (m *Mailer) String() string {
	return "Amazon SES v2 at " + m.endpoint.String() + " from " + m.from
}

// The request body of SendEmail (the fields this adapter uses).
type (
	sendEmail struct {
		FromEmailAddress string      `json:"FromEmailAddress"`
		Destination      destination `json:"Destination"`
		Content          content     `json:"Content"`
	}
	destination struct {
		ToAddresses []string `json:"ToAddresses"`
	}
	content struct {
		Simple simpleMessage `json:"Simple"`
	}
	simpleMessage struct {
		Subject textContent   `json:"Subject"`
		Body    body          `json:"Body"`
		Headers []messageHead `json:"Headers,omitempty"`
	}
	body struct {
		Text *textContent `json:"Text,omitempty"`
		HTML *textContent `json:"Html,omitempty"`
	}
	textContent struct {
		Data    string `json:"Data"`
		Charset string `json:"Charset"`
	}
	messageHead struct {
		Name  string `json:"Name"`
		Value string `json:"Value"`
	}
)

// Send submits msg; the provider id is SES's MessageId.
func (m *Mailer) Send(ctx context.Context, msg storage.Mail) (string, error) {
	if err := msg.Check(); err != nil {
		return "", err
	}
	req := sendEmail{
		FromEmailAddress: m.from,
		Destination:      destination{ToAddresses: []string{msg.To}},
		Content: content{Simple: simpleMessage{
			Subject: textContent{Data: msg.Subject, Charset: "UTF-8"},
			Body:    body{Text: &textContent{Data: msg.Text, Charset: "UTF-8"}},
			Headers: []messageHead{{Name: MailIDHeader, Value: headerID(msg.ID)}, {Name: "Auto-Submitted", Value: "auto-generated"}},
		}},
	}
	if msg.HTML != "" {
		req.Content.Simple.Body.HTML = &textContent{Data: msg.HTML, Charset: "UTF-8"}
	}
	payload, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("%w: ses: %v", storage.ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint.String()+Path, bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("%w: ses: %v", storage.ErrInvalid, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(payload)
	hash := hex.EncodeToString(sum[:])
	signV4(hr, m.cfg.AccessKeyID, m.cfg.SecretAccessKey, m.cfg.Region, hash, m.cfg.Now())
	resp, err := m.cfg.HTTP.Do(hr)
	if err != nil {
		// The network, a timeout, or the egress refusing the endpoint
		// (a configuration matter): none says the message is bad.
		return "", fmt.Errorf("%w: ses: %v", storage.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return "", fmt.Errorf("%w: ses: reading the answer: %v", storage.ErrUnavailable, err)
	}
	return ParseResponse(resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), raw)
}

// ParseResponse reads SES's answer to SendEmail: the MessageId of a 2xx,
// else an error of the class the status and the error type say.
func ParseResponse(status int, errorType string, raw []byte) (string, error) {
	if status >= 200 && status < 300 {
		var ok struct {
			MessageID string `json:"MessageId"`
		}
		if err := json.Unmarshal(raw, &ok); err != nil || ok.MessageID == "" || len(ok.MessageID) > 512 || strings.ContainsAny(ok.MessageID, "\r\n") {
			// Accepted, presumably, with an answer we cannot read: the
			// mail may have gone, so do not send it again.
			return "ses:unreadable-answer", nil
		}
		return ok.MessageID, nil
	}
	var e struct {
		Type     string `json:"__type"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	json.Unmarshal(raw, &e)
	kind := errorType
	if kind == "" {
		kind = e.Type
	}
	if kind == "" {
		kind = e.Code
	}
	// X-Amzn-Errortype may be "Type:http://internal..."; __type may be
	// "namespace#Type".
	if i := strings.IndexByte(kind, ':'); i >= 0 {
		kind = kind[:i]
	}
	if i := strings.LastIndexByte(kind, '#'); i >= 0 {
		kind = kind[i+1:]
	}
	msg := e.Message
	if msg == "" {
		msg = e.Message2
	}
	detail := oneLine(fmt.Sprintf("%d %s %s", status, kind, msg))
	class := storage.ErrInvalid
	switch {
	case status == http.StatusTooManyRequests || status >= 500,
		status == http.StatusUnauthorized || status == http.StatusForbidden,
		kind == "TooManyRequestsException", kind == "LimitExceededException", kind == "ThrottlingException",
		kind == "SendingPausedException", kind == "AccountSuspendedException",
		kind == "MailFromDomainNotVerifiedException", kind == "InternalFailure", kind == "ServiceUnavailable":
		class = storage.ErrUnavailable
	case status < 400:
		// A redirect or an informational answer: not SES's.
		class = storage.ErrUnavailable
	}
	return "", fmt.Errorf("%w: ses: %s", class, detail)
}

// headerID is the X-Pommy-Mail-Id value for a mail id: the id itself when
// it is letters, digits, '_' and '-' (the outbox's "ml_<hex>"), else a
// digest of it: SES takes only printable ASCII in a header value, and
// storage.Mail.Check allows more in an id.
func headerID(id string) string {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			sum := sha256.Sum256([]byte(id))
			return "id-" + hex.EncodeToString(sum[:16])
		}
	}
	return id
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
