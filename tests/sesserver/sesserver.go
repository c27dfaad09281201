// Package sesserver is a loopback server that speaks Amazon SES v2's
// SendEmail wire format, for the tests of the edge mail adapter
// (worker/sesmail), natively and in workerd.
//
// It checks what SES checks first: a Signature Version 4 Authorization
// header of the right shape, for service "ses" and the server's region,
// signing at least content-type, host and x-amz-date, whose signature it
// recomputes from the request (its own implementation of the algorithm,
// neither the SDK's nor the adapter's); an X-Amz-Date within 15 minutes; a JSON body with only
// SendEmail's fields and one recipient. It answers {"MessageId": ...} and
// keeps the message, which it serves through the subset of mailpit's HTTP
// API that storagetest.MailpitInbox reads, so the mail contract suite runs
// unchanged against it.
//
// Faults: RefusedTo (storagetest.RefusedMailTo) always gets 400
// MessageRejected; FailNext makes the next requests fail with a status and
// an error type (429 TooManyRequestsException, 500 InternalFailure, ...);
// Hang makes them wait until the client gives up.
package sesserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running loopback SES.
type Server struct {
	URL       string // http://127.0.0.1:PORT: the SES endpoint and the inbox API
	Region    string
	AccessKey string
	SecretKey string
	// RefusedTo is a recipient the server always refuses with 400
	// MessageRejected.
	RefusedTo string

	srv    *httptest.Server
	closed chan struct{}

	mu       sync.Mutex
	messages []stored
	fail     []failure
	hang     int
	requests int
	rejected []string // why requests were refused (for test failures)
}

type failure struct {
	status int
	kind   string
}

type stored struct {
	ID, From, Subject, Text, HTML string
	To                            []string
	Headers                       map[string][]string
}

// New starts a server on 127.0.0.1. Close it when done.
func New(region, accessKey, secretKey, refusedTo string) *Server {
	s := &Server{Region: region, AccessKey: accessKey, SecretKey: secretKey, RefusedTo: refusedTo, closed: make(chan struct{})}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server, releasing held requests.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// FailNext makes the next n SendEmail requests fail with status and the
// error type kind (e.g. 429, "TooManyRequestsException").
func (s *Server) FailNext(n, status int, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, failure{status, kind})
	}
}

// HangNext makes the next n SendEmail requests never answer (until the
// client goes away).
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang += n
}

// Requests is how many SendEmail requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Refusals lists why requests were refused.
func (s *Server) Refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails":
		s.sendEmail(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/messages":
		s.list(w)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/message/"):
		s.message(w, strings.TrimPrefix(r.URL.Path, "/api/v1/message/"))
	default:
		sesError(w, http.StatusNotFound, "NotFoundException", "no such route")
	}
}

func sesError(w http.ResponseWriter, status int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", kind)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func (s *Server) refuse(w http.ResponseWriter, status int, kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.rejected = append(s.rejected, kind+": "+msg)
	s.mu.Unlock()
	sesError(w, status, kind, msg)
}

// The request body: SendEmail's fields that a simple message uses.
type sendEmail struct {
	FromEmailAddress string
	Destination      *struct {
		ToAddresses  []string
		CcAddresses  []string
		BccAddresses []string
	}
	ReplyToAddresses []string
	Content          *struct {
		Simple *struct {
			Subject *content
			Body    *struct {
				Text *content
				Html *content
			}
			Headers []struct{ Name, Value string }
		}
	}
	ConfigurationSetName string
}

type content struct{ Data, Charset string }

func (s *Server) sendEmail(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	hang := s.hang > 0
	if hang {
		s.hang--
	}
	var f *failure
	if !hang && len(s.fail) > 0 {
		f = &s.fail[0]
		s.fail = s.fail[1:]
	}
	s.mu.Unlock()
	if hang {
		// Read the body, so that the server notices the client going
		// away, then wait for that (or for Close).
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 11<<20))
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "reading the body: %v", err)
		return
	}
	if kind, msg := s.checkSignature(r, body); kind != "" {
		s.refuse(w, http.StatusForbidden, kind, "%s", msg)
		return
	}
	if f != nil {
		sesError(w, f.status, f.kind, "injected failure")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "Content-Type %q", ct)
		return
	}
	var req sendEmail
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "body: %v", err)
		return
	}
	from, err := mail.ParseAddress(req.FromEmailAddress)
	switch {
	case err != nil:
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "FromEmailAddress %q: %v", req.FromEmailAddress, err)
		return
	case req.Destination == nil || len(req.Destination.ToAddresses) != 1 || len(req.Destination.CcAddresses)+len(req.Destination.BccAddresses) > 0:
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "want exactly one To address and no Cc or Bcc")
		return
	case req.Content == nil || req.Content.Simple == nil || req.Content.Simple.Subject == nil || req.Content.Simple.Body == nil || req.Content.Simple.Body.Text == nil:
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "want Content.Simple with a Subject and a Text body")
		return
	}
	to := req.Destination.ToAddresses[0]
	if a, err := mail.ParseAddress(to); err != nil || a.Address != to {
		s.refuse(w, http.StatusBadRequest, "BadRequestException", "ToAddresses: %q is not a plain address", to)
		return
	}
	if to == s.RefusedTo {
		sesError(w, http.StatusBadRequest, "MessageRejected", "Email address is not verified. The following identities failed the check: "+to)
		return
	}
	simple := req.Content.Simple
	for _, c := range []*content{simple.Subject, simple.Body.Text, simple.Body.Html} {
		if c != nil && c.Charset != "UTF-8" {
			s.refuse(w, http.StatusBadRequest, "BadRequestException", "Charset %q, want UTF-8", c.Charset)
			return
		}
	}
	id := newMessageID()
	m := stored{ID: id, From: from.Address, To: []string{to}, Subject: simple.Subject.Data, Text: simple.Body.Text.Data,
		Headers: map[string][]string{
			"From":       {req.FromEmailAddress},
			"To":         {to},
			"Subject":    {simple.Subject.Data},
			"Message-ID": {"<" + id + "@eu-west-1.amazonses.com>"},
		}}
	if simple.Body.Html != nil {
		m.HTML = simple.Body.Html.Data
	}
	for _, h := range simple.Headers {
		// SES's rules for MessageHeader: printable ASCII, no colon in the
		// name, at most 126 and 995 characters, 996 together.
		if !printableASCII(h.Name, false) || strings.Contains(h.Name, ":") || !printableASCII(h.Value, true) ||
			len(h.Name) > 126 || len(h.Value) > 995 || len(h.Name)+len(h.Value) > 996 {
			s.refuse(w, http.StatusBadRequest, "BadRequestException", "header %q is not printable ASCII within SES's lengths", h.Name)
			return
		}
		m.Headers[h.Name] = append(m.Headers[h.Name], h.Value)
	}
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"MessageId": id})
}

func printableASCII(v string, spaces bool) bool {
	for i := 0; i < len(v); i++ {
		if v[i] > 126 || v[i] < 33 && !(spaces && v[i] == ' ') {
			return false
		}
	}
	return v != ""
}

func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return "0102" + hex.EncodeToString(b[:]) + "-000000"
}

// checkSignature verifies the Signature Version 4 of r: it returns an
// error type and a message when it does not hold.
func (s *Server) checkSignature(r *http.Request, body []byte) (kind, msg string) {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "IncompleteSignatureException", "Authorization is not AWS4-HMAC-SHA256"
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "IncompleteSignatureException", "malformed Authorization part " + part
		}
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return "IncompleteSignatureException", "Credential must be KEY/DATE/REGION/SERVICE/aws4_request"
	}
	if cred[0] != s.AccessKey {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if cred[2] != s.Region || cred[3] != "ses" {
		return "SignatureDoesNotMatch", fmt.Sprintf("credential scope %s/%s, want %s/ses", cred[2], cred[3], s.Region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, cred[1]) {
		return "IncompleteSignatureException", "X-Amz-Date missing, malformed, or not the credential's date"
	}
	if d := time.Since(t); d > 15*time.Minute || d < -15*time.Minute {
		return "SignatureDoesNotMatch", "Signature expired: the request's time is more than 15 minutes from the server's"
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	need := map[string]bool{"content-type": true, "host": true, "x-amz-date": true}
	for _, h := range signed {
		delete(need, h)
	}
	if len(need) > 0 || !sort.StringsAreSorted(signed) {
		return "SignatureDoesNotMatch", "SignedHeaders must be sorted and include content-type, host and x-amz-date: " + fields["SignedHeaders"]
	}
	// The canonical request (AWS's Signature Version 4 specification).
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	canon.WriteString(escapePath(r.URL.EscapedPath()) + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range signed {
		var v string
		if h == "host" {
			v = r.Host
		} else {
			v = strings.Join(r.Header.Values(h), ",")
		}
		canon.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	canon.WriteString("\n" + fields["SignedHeaders"] + "\n")
	sum := sha256.Sum256(body)
	canon.WriteString(hex.EncodeToString(sum[:]))
	creq := sha256.Sum256([]byte(canon.String()))
	scope := strings.Join(cred[1:], "/")
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	key := []byte("AWS4" + s.SecretKey)
	for _, p := range cred[1:] {
		key = hmacSHA256(key, p)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
	}
	return "", ""
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// escapePath: SigV4 for services other than S3 escapes each segment of
// the already escaped path once more.
func escapePath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
	}
	return strings.Join(segs, "/")
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

// ---- the inbox: a subset of mailpit's API ----

type apiAddress struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

func addrs(list []string) []apiAddress {
	out := make([]apiAddress, len(list))
	for i, a := range list {
		out[i] = apiAddress{Address: a}
	}
	return out
}

func (s *Server) list(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type summary struct {
		ID string       `json:"ID"`
		To []apiAddress `json:"To"`
	}
	out := struct {
		Total    int       `json:"total"`
		Messages []summary `json:"messages"`
	}{Total: len(s.messages), Messages: []summary{}}
	for i := len(s.messages) - 1; i >= 0; i-- {
		out.Messages = append(out.Messages, summary{ID: s.messages[i].ID, To: addrs(s.messages[i].To)})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) message(w http.ResponseWriter, rest string) {
	id, headers := strings.CutSuffix(rest, "/headers")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.messages {
		if m.ID != id {
			continue
		}
		w.Header().Set("Content-Type", "application/json")
		if headers {
			json.NewEncoder(w).Encode(m.Headers)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"ID": m.ID, "MessageID": m.ID + "@eu-west-1.amazonses.com", "From": apiAddress{Address: m.From}, "To": addrs(m.To),
			"Subject": m.Subject, "Text": m.Text, "HTML": m.HTML, "Size": strconv.Itoa(len(m.Text) + len(m.HTML)),
		})
		return
	}
	http.Error(w, "not found", http.StatusNotFound)
}
