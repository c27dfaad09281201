// Package apitest is the HTTP-level acceptance suite of the application. It
// speaks only HTTP, so the same scenarios run against every home: the
// handlers compiled natively, the wasip1 guest in the wazero host (pooled and
// instance-per-request), and the worker in workerd.
package apitest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"pommy.ai/edge/handlers"
)

// Client talks to one running home.
type Client struct {
	Base string
	HTTP *http.Client
	// Check, when set, is shown every exchange (check.go).
	Check Checker
	// Verify, when set, marks a new owner's address verified instead of
	// the test build's shortcut, for a home without test routes (the
	// shipped worker the bench measures).
	Verify func(t testing.TB, email string)
}

// Response is a finished exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, trunc(r.Body))
	}
	return m
}

// ErrorCode returns error.code of a JSON error body, failing the test if
// the body does not have the one error shape.
func (r *Response) ErrorCode(t testing.TB) string {
	t.Helper()
	m := r.JSON(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("status %d body has no error object: %q", r.Status, trunc(r.Body))
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" || msg == "" {
		t.Fatalf("error object lacks code or message: %q", trunc(r.Body))
	}
	return code
}

func trunc(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// Do sends a request; body may be nil, []byte, string, io.Reader or a value
// to encode as JSON. hdr are header pairs.
func (c *Client) Do(t testing.TB, method, path string, body any, hdr ...string) *Response {
	t.Helper()
	return c.do(t, method, path, body, 0, hdr...)
}

// Stream makes a GET to a stream route and reads its answer up to the
// first frames SSE frames (or its end): a home that holds streams keeps
// the connection open after them, so the body would never end.
func (c *Client) Stream(t testing.TB, path string, frames int, hdr ...string) *Response {
	t.Helper()
	return c.do(t, "GET", path, nil, frames, hdr...)
}

// Stream is Client.Stream with the session's cookie.
func (s *Session) Stream(t testing.TB, path string, frames int, hdr ...string) *Response {
	t.Helper()
	h := append([]string{"Cookie", SessionCookie + "=" + s.Token, "Sec-Fetch-Site", "same-origin"}, s.Extra...)
	return s.c.Stream(t, path, frames, append(h, hdr...)...)
}

func (c *Client) do(t testing.TB, method, path string, body any, frames int, hdr ...string) *Response {
	t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r, ct = strings.NewReader(b), "application/json"
	case io.Reader:
		r = b
	default:
		j, _ := json.Marshal(b)
		r, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, c.Base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if (method == "POST" && publicAuth[path] || widgetPath(path)) && req.Header.Get(TestClientIP) == "" {
		// The suite signs in many times a minute from one machine; each
		// sign-in comes from its own address, as a crowd of people's
		// would, so the home's per-IP login limit (tested in
		// tests/native) does not shed the suite. Homes honour the header
		// only with Config.TestRoutes.
		var b [3]byte
		rand.Read(b[:])
		req.Header.Set(TestClientIP, fmt.Sprintf("10.%d.%d.%d", b[0], b[1], b[2]))
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	sent := c.capture(req)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if frames > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		res := &Response{Status: resp.StatusCode, Header: resp.Header, Body: readFrames(t, resp.Body, frames)}
		c.check(t, req, sent, res)
		return res
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	res := &Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
	c.check(t, req, sent, res)
	return res
}

// widgetPath: the widget's routes are called by many visitors, each from
// their own address (the suite plays them from one machine); the
// per-address limits they count against are tested on their own
// (handlers/widget).
func widgetPath(path string) bool {
	return strings.HasPrefix(path, "/v1/widget/") && !strings.HasPrefix(path, "/v1/widget/settings") && !strings.HasPrefix(path, "/v1/widget/identity-secret")
}

// TestClientIP is the header a home started with Config.TestRoutes takes
// the client's address from.
const TestClientIP = "X-Pommy-Test-Client-IP"

var publicAuth = map[string]bool{"/v1/signup": true, "/v1/login": true, "/v1/invitations/accept": true, "/v1/password/forgot": true,
	"/v1/login/mfa": true, "/v1/login/passkey/options": true, "/v1/login/passkey": true, "/v1/login/mfa/webauthn": true}

// Expect fails the test unless the response has the status.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, trunc(r.Body))
	}
	return r
}

// Tenant signs up a new tenant (owner account, session) and creates an
// API key with every scope through the key routes; it returns the tenant id
// and the key. Sign-up returns no key of its own: see docs/decisions.md.
func (c *Client) Tenant(t testing.TB, name string) (id, key string) {
	t.Helper()
	o := c.Signup(t, name)
	return o.Tenant, o.NewKey(t, AllScopes...)
}

// AllScopes is every API key scope, from the route table's declaration.
var AllScopes = handlers.APIKeyScopes()

// Password is the password the helpers give every account they make.
const Password = "correct horse battery staple"

// Session is a signed-in person: the session cookie's token, as a browser
// would hold it.
type Session struct {
	c              *Client
	Token          string
	Tenant, UserID string
	Email          string
	// Header pairs sent with every request (e.g. a test client IP).
	Extra []string
	// Device is the Cookie header pair of the device cookie the sign-in
	// set: a later sign-in from the same browser presents it.
	Device []string
}

// SessionCookie is the session cookie's name.
const SessionCookie = "__Host-pommy_session"

// DeviceCookie is the cookie that marks a browser as one of a person's
// devices (login throttling counts its attempts apart).
const DeviceCookie = "__Host-pommy_device"

// cookieToken returns the session token a response sets, or "".
func cookieToken(r *Response) (string, *http.Cookie) { return setCookie(r, SessionCookie) }

func setCookie(r *Response, name string) (string, *http.Cookie) {
	for _, line := range r.Header.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == name {
			return ck.Value, ck
		}
	}
	return "", nil
}

// DeviceCookieHeader returns the Cookie header pair that presents the
// device cookie a sign-in response set.
func DeviceCookieHeader(t testing.TB, r *Response) []string {
	t.Helper()
	v, _ := setCookie(r, DeviceCookie)
	if v == "" {
		t.Fatalf("sign-in response sets no %s cookie: %v", DeviceCookie, r.Header.Values("Set-Cookie"))
	}
	return []string{"Cookie", DeviceCookie + "=" + v}
}

func randomEmail() string {
	var b [8]byte
	rand.Read(b[:])
	return "p" + hex.EncodeToString(b[:]) + "@example.com"
}

// Signup creates a tenant and its owner and returns the owner's session.
func (c *Client) Signup(t testing.TB, org string) *Session {
	t.Helper()
	email := randomEmail()
	r := c.Do(t, "POST", "/v1/signup", map[string]string{"organization": org, "email": email, "password": Password}).Expect(t, 201)
	s := c.sessionFrom(t, r, email)
	c.VerifyEmail(t, email)
	return s
}

// VerifyEmail marks a person's address verified through the test build's
// shortcut (/__test/users/verify-email), for suites whose subject is not
// the mailed link itself: an unverified owner may not invite people or
// create API keys.
func (c *Client) VerifyEmail(t testing.TB, email string) {
	t.Helper()
	if c.Verify != nil {
		c.Verify(t, email)
		return
	}
	c.Do(t, "POST", "/__test/users/verify-email", map[string]string{"email": email}).Expect(t, 200)
}

func (c *Client) sessionFrom(t testing.TB, r *Response, email string) *Session {
	t.Helper()
	m := r.JSON(t)
	tok, _ := cookieToken(r)
	tn, _ := m["tenant"].(map[string]any)
	u, _ := m["user"].(map[string]any)
	s := &Session{c: c, Token: tok, Email: email, Device: DeviceCookieHeader(t, r)}
	s.Tenant, _ = tn["id"].(string)
	s.UserID, _ = u["id"].(string)
	if tok == "" || !strings.HasPrefix(s.Tenant, "t_") || !strings.HasPrefix(s.UserID, "u_") {
		t.Fatalf("sign-in response without session cookie, tenant or user: %v %v", r.Header.Values("Set-Cookie"), m)
	}
	return s
}

// Login signs in; hdr are extra header pairs (e.g. a client IP).
func (c *Client) Login(t testing.TB, email, password string, hdr ...string) *Response {
	t.Helper()
	return c.Do(t, "POST", "/v1/login", map[string]string{"email": email, "password": password}, hdr...)
}

// LoginSession signs in and returns the new session.
func (c *Client) LoginSession(t testing.TB, email string, hdr ...string) *Session {
	t.Helper()
	s := c.sessionFrom(t, c.Login(t, email, Password, hdr...).Expect(t, 200), email)
	s.Extra = hdr
	return s
}

// Do sends a same-origin browser request with the session cookie.
func (s *Session) Do(t testing.TB, method, path string, body any, hdr ...string) *Response {
	t.Helper()
	h := append([]string{"Cookie", SessionCookie + "=" + s.Token, "Sec-Fetch-Site", "same-origin"}, s.Extra...)
	return s.c.Do(t, method, path, body, append(h, hdr...)...)
}

// NewKey creates an API key with the scopes and returns it.
func (s *Session) NewKey(t testing.TB, scopes ...string) string {
	t.Helper()
	m := s.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "test", "scopes": scopes}).Expect(t, 201).JSON(t)
	key, _ := m["key"].(string)
	if !strings.HasPrefix(key, "pk_live_") {
		t.Fatalf("key response: %v", m)
	}
	return key
}

// Invite invites email with role and has the invitee accept; it returns
// the invitee's session.
func (s *Session) Invite(t testing.TB, role string) *Session {
	t.Helper()
	email := randomEmail()
	inv := s.Do(t, "POST", "/v1/invitations", map[string]string{"email": email, "role": role}).Expect(t, 201).JSON(t)
	tok, _ := inv["token"].(string)
	r := s.c.Do(t, "POST", "/v1/invitations/accept", map[string]string{"token": tok, "password": Password}).Expect(t, 201)
	return s.c.sessionFrom(t, r, email)
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// Run runs every scenario against the home at c.Base. home is what
// /healthz must report.
func Run(t *testing.T, c *Client, home string) {
	t.Run("Health", func(t *testing.T) { health(t, c, home) })
	t.Run("ConversationCache", func(t *testing.T) { conversationCache(t, c) })
	t.Run("Attachment", func(t *testing.T) { attachment(t, c) })
	t.Run("TenantIsolation", func(t *testing.T) { isolation(t, c) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, c) })
	t.Run("DeleteTenantShreds", func(t *testing.T) { deleteTenant(t, c) })
	runIdentity(t, c)
	runMFA(t, c)
	runPasskeys(t, c)
	runAccounts(t, c)
	runConversations(t, c)
	t.Run("CrossTenantMatrix", func(t *testing.T) { Matrix(t, c) })
}

func health(t *testing.T, c *Client, home string) {
	r := c.Do(t, "GET", "/healthz", nil).Expect(t, 200)
	if got := r.JSON(t)["home"]; got != home {
		t.Errorf("home %v, want %s", got, home)
	}
	for _, h := range []string{"Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Permissions-Policy", "X-Request-Id"} {
		if r.Header.Get(h) == "" {
			t.Errorf("missing header %s", h)
		}
	}
	if got := r.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || !strings.Contains(got, "object-src 'none'") {
		t.Errorf("weak CSP %q", got)
	}
}

// conversationCache: a conversation is cached in KV when it is created,
// and reading its events takes the cache instead of its row (the header
// says so), in every home. What the cache holds and why it is never wrong
// is handlers/conversations/cache.go's concern (and its tests').
func conversationCache(t *testing.T, c *Client) {
	f := newChat(t, c, "Cache Co")
	base := "/v1/conversations/" + f.conv
	r := c.Do(t, "GET", base+"/events", nil, bearer(f.key)...).Expect(t, 200)
	if got := r.Header.Get("Pommy-Cache"); got != "hit" {
		t.Errorf("events of a conversation cached at creation: Pommy-Cache %q, want hit", got)
	}
	if evs := r.JSON(t)["events"].([]any); len(evs) != 1 {
		t.Errorf("events %v", evs)
	}
	// The cache never answers for what changes: a message sent now is in
	// the next read.
	c.Do(t, "POST", base+"/messages", map[string]any{"text": "after the cache"}, append(bearer(f.key), idem()...)...).Expect(t, 201)
	if evs := c.Do(t, "GET", base+"/events?after=1", nil, bearer(f.key)...).Expect(t, 200).JSON(t)["events"].([]any); len(evs) != 1 {
		t.Errorf("events after the send: %v", evs)
	}
	// Unknown ids are not found, cache or not.
	if code := c.Do(t, "GET", "/v1/conversations/c_"+strings.Repeat("z", 26)+"/events", nil, bearer(f.key)...).Expect(t, 404).ErrorCode(t); code != "not_found" {
		t.Errorf("unknown conversation: %s", code)
	}
}

// maxAttachment is the largest attachment (docs/api.md).
const maxAttachment = 32 << 20

// attachment: a message's file goes up as a streamed body and comes back
// byte for byte; it is written once, by the message's sender; a body of
// unknown length or over the limit is refused and changes nothing.
func attachment(t *testing.T, c *Client) {
	f := newChat(t, c, "Attach Co")
	base := "/v1/conversations/" + f.conv + "/messages"
	send := func(text string, hdr ...string) string {
		return c.Do(t, "POST", base, map[string]any{"text": text}, append(append(idem(), hdr...), bearer(f.key)...)...).Expect(t, 201).JSON(t)["id"].(string)
	}
	mid := send("here is the file")
	data := make([]byte, 5<<20+12345)
	rand.Read(data)
	path := base + "/" + mid + "/attachment"
	r := c.Do(t, "PUT", path, data, append(bearer(f.key), "Content-Type", "application/octet-stream")...).Expect(t, 201).JSON(t)
	if r["attachment_size"] != float64(len(data)) || r["id"] != mid || r["text"] != "here is the file" {
		t.Fatalf("attached: %v", r)
	}
	back := c.Do(t, "GET", path, nil, bearer(f.key)...).Expect(t, 200)
	if !bytes.Equal(back.Body, data) {
		t.Fatalf("attachment changed in the round trip (%d bytes back)", len(back.Body))
	}
	if ct := back.Header.Get("Content-Type"); ct != "application/octet-stream" || back.Header.Get("Content-Disposition") != "attachment" {
		t.Errorf("served as %q, %q", ct, back.Header.Get("Content-Disposition"))
	}
	// Written once: a second upload is refused, the first stays.
	if code := c.Do(t, "PUT", path, []byte("another file"), bearer(f.key)...).Expect(t, 409).ErrorCode(t); code != "attachment_exists" {
		t.Errorf("second upload: %s", code)
	}
	// Only the sender attaches: the owner cannot add a file to the
	// integration's message.
	other := send("no file yet")
	opath := base + "/" + other + "/attachment"
	if code := f.owner.Do(t, "PUT", opath, []byte("not the sender's")).Expect(t, 403).ErrorCode(t); code != "not_message_sender" {
		t.Errorf("another principal's upload: %s", code)
	}
	// A body of unknown length (chunked) is refused in every home
	// (docs/api.md), and so is one over the limit; neither attaches.
	lr := c.Do(t, "PUT", opath, io.MultiReader(bytes.NewReader([]byte("streamed without a length"))), bearer(f.key)...).Expect(t, 411)
	if code := lr.ErrorCode(t); code != "length_required" {
		t.Fatalf("chunked upload: code %s", code)
	}
	big := c.Do(t, "PUT", opath, make([]byte, maxAttachment+1), bearer(f.key)...)
	if big.Status != 413 || big.ErrorCode(t) != "too_large" || !bytes.Contains(big.Body, []byte(fmt.Sprint(maxAttachment))) {
		t.Errorf("an attachment over the limit: %d %s", big.Status, trunc(big.Body))
	}
	c.Do(t, "GET", opath, nil, bearer(f.key)...).Expect(t, 404)
	// Exactly at the limit is accepted.
	if testing.Short() {
		t.Log("short: the 32 MiB upload at the limit is skipped")
	} else {
		at := c.Do(t, "PUT", opath, make([]byte, maxAttachment), bearer(f.key)...).Expect(t, 201).JSON(t)
		if at["attachment_size"] != float64(maxAttachment) {
			t.Errorf("at the limit: %v", at)
		}
	}
	if back := c.Do(t, "GET", path, nil, bearer(f.key)...).Expect(t, 200); !bytes.Equal(back.Body, data) {
		t.Fatalf("after the refused uploads: got %d bytes", len(back.Body))
	}
	// The message shows its attachment; the log has its event; reading
	// it was audited as data access.
	msgs := f.owner.Do(t, "GET", base, nil).Expect(t, 200).JSON(t)["messages"].([]any)
	if m := msgs[0].(map[string]any); m["attachment_size"] != float64(len(data)) {
		t.Errorf("message: %v", m)
	}
	evs := f.owner.Do(t, "GET", "/v1/conversations/"+f.conv+"/events", nil).Expect(t, 200).JSON(t)["events"].([]any)
	var added int
	for _, e := range evs {
		if ev := e.(map[string]any); ev["type"] == "message.attachment_added" && ev["data"].(map[string]any)["message_id"] == mid {
			added++
		}
	}
	if added != 1 {
		t.Errorf("%d message.attachment_added events for %s", added, mid)
	}
	if a := f.owner.Do(t, "GET", "/v1/audit/events?action=message.attachment.read", nil).Expect(t, 200).JSON(t)["events"].([]any); len(a) == 0 {
		t.Error("reading an attachment was not audited")
	}
}

// isolation: tenant B cannot see, change or attach to anything of A's,
// and cannot tell it exists.
func isolation(t *testing.T, c *Client) {
	a := newChat(t, c, "Tenant A")
	_, keyB := c.Tenant(t, "Tenant B")
	conv := "/v1/conversations/" + a.conv
	mid := c.Do(t, "POST", conv+"/messages", map[string]any{"text": "for A only"}, append(bearer(a.key), idem()...)...).Expect(t, 201).JSON(t)["id"].(string)
	att := conv + "/messages/" + mid + "/attachment"
	c.Do(t, "PUT", att, []byte("A's file"), bearer(a.key)...).Expect(t, 201)
	for _, probe := range []struct{ method, path string }{
		{"GET", conv}, {"PATCH", conv}, {"GET", conv + "/messages"}, {"POST", conv + "/messages"},
		{"GET", conv + "/events"}, {"GET", att}, {"PUT", att}, {"GET", "/v1/contacts/" + a.contact},
	} {
		var body any
		hdr := bearer(keyB)
		switch {
		case probe.method == "PUT":
			body = []byte("overwrite")
		case probe.method == "PATCH":
			body = map[string]any{"status": "resolved"}
		case probe.method == "POST":
			body, hdr = map[string]any{"text": "from B"}, append(hdr, idem()...)
		}
		r := c.Do(t, probe.method, probe.path, body, hdr...)
		if r.Status != 404 {
			t.Errorf("B %s %s: status %d, want 404", probe.method, probe.path, r.Status)
		}
		if bytes.Contains(r.Body, []byte("for A only")) || bytes.Contains(r.Body, []byte("A's file")) {
			t.Errorf("B %s %s: response carries A's content", probe.method, probe.path)
		}
	}
	for _, list := range []string{"/v1/conversations", "/v1/contacts"} {
		field := strings.TrimPrefix(list, "/v1/")
		if l := c.Do(t, "GET", list, nil, bearer(keyB)...).Expect(t, 200).JSON(t)[field].([]any); len(l) != 0 {
			t.Errorf("B lists A's %s: %v", field, l)
		}
	}
	if got := c.Do(t, "GET", att, nil, bearer(a.key)...).Expect(t, 200); string(got.Body) != "A's file" {
		t.Errorf("A's attachment changed: %q", got.Body)
	}
	cv := c.Do(t, "GET", conv, nil, bearer(a.key)...).Expect(t, 200).JSON(t)
	if cv["status"] != "open" || cv["last_seq"] != float64(3) {
		t.Errorf("A's conversation changed: %v", cv)
	}
}

func badInput(t *testing.T, c *Client) {
	_, key := c.Tenant(t, "Bad Input Co")
	cases := []struct {
		name, method, path string
		body               any
		hdr                []string
		status             int
		code               string
	}{
		{"no key", "GET", "/v1/conversations", nil, nil, 401, "unauthenticated"},
		{"bad checksum", "GET", "/v1/conversations", nil, bearer(alterLast(key)), 401, "invalid_api_key"},
		{"unknown key", "GET", "/v1/conversations", nil, bearer(fakeKey(t, c)), 401, "invalid_api_key"},
		{"malformed json", "POST", "/v1/contacts", `{"name":`, bearer(key), 400, "malformed_json"},
		{"unknown field", "POST", "/v1/contacts", `{"name":"x","colour":"red"}`, bearer(key), 400, "unknown_field"},
		{"trailing data", "POST", "/v1/contacts", `{"name":"x"} {}`, bearer(key), 400, "malformed_json"},
		// Over the route's limit (about 100 KiB) by less than the edge
		// worker drains after an early answer (worker/main.go, maxDrain).
		{"request too large", "POST", "/v1/contacts", `{"name":"x","phone":"` + strings.Repeat("a", 200<<10) + `"}`, bearer(key), 413, "too_large"},
		{"wrong content type", "POST", "/v1/contacts", []byte(`{"name":"x"}`), append(bearer(key), "Content-Type", "text/plain"), 415, "unsupported_media_type"},
		{"bad id", "GET", "/v1/conversations/c_..%2F..%2Fetc", nil, bearer(key), 404, "not_found"},
		{"bad attachment id", "GET", "/v1/conversations/c_..%2F..%2Fetc/messages/m_x/attachment", nil, bearer(key), 404, "not_found"},
		{"bad cursor", "GET", "/v1/conversations?cursor=-1", nil, bearer(key), 400, "invalid_cursor"},
		{"no route", "GET", "/v1/nothing", nil, nil, 404, "not_found"},
		{"the notes are retired", "GET", "/v1/notes", nil, bearer(key), 404, "not_found"},
		{"signup without organization", "POST", "/v1/signup", `{"email":"a@example.com","password":"correct horse battery"}`, nil, 400, "invalid_organization"},
		{"signup bad email", "POST", "/v1/signup", `{"organization":"x","email":"not an email","password":"correct horse battery"}`, nil, 400, "invalid_email"},
		{"signup short password", "POST", "/v1/signup", `{"organization":"x","email":"a@example.com","password":"short"}`, nil, 400, "weak_password"},
		{"signup common password", "POST", "/v1/signup", `{"organization":"x","email":"a@example.com","password":"password123"}`, nil, 400, "weak_password"},
		{"signup long password", "POST", "/v1/signup", map[string]string{"organization": "x", "email": "a@example.com", "password": strings.Repeat("x", 129)}, nil, 400, "weak_password"},
		{"login unknown field", "POST", "/v1/login", `{"email":"a@example.com","password":"x","remember":true}`, nil, 400, "unknown_field"},
		{"the old bootstrap is gone", "POST", "/v1/tenants", `{"name":"x"}`, nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do(t, tc.method, tc.path, tc.body, tc.hdr...)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, trunc(r.Body))
			}
			if code := r.ErrorCode(t); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
		})
	}
	// Nothing above created a contact.
	if l := c.Do(t, "GET", "/v1/contacts", nil, bearer(key)...).Expect(t, 200).JSON(t)["contacts"].([]any); len(l) != 0 {
		t.Errorf("bad input left contacts behind: %v", l)
	}
}

// fakeKey is a well-formed key that no tenant has any more: it passes the
// checksum, so only the lookup can refuse it.
func fakeKey(t *testing.T, c *Client) string {
	o := c.Signup(t, "Throwaway")
	k := o.NewKey(t, "conversations:read")
	o.Do(t, "DELETE", "/v1/tenant", nil).Expect(t, 204)
	return k
}

// deleteTenant: only the owner's session deletes; afterwards nothing of
// the tenant answers (its data key is gone: its conversations and
// attachments are crypto-shredded).
func deleteTenant(t *testing.T, c *Client) {
	f := newChat(t, c, "Leaving Co")
	o, key := f.owner, f.key
	mid := c.Do(t, "POST", "/v1/conversations/"+f.conv+"/messages", map[string]any{"text": "bye"}, append(bearer(key), idem()...)...).Expect(t, 201).JSON(t)["id"].(string)
	att := "/v1/conversations/" + f.conv + "/messages/" + mid + "/attachment"
	c.Do(t, "PUT", att, []byte("a file to shred"), bearer(key)...).Expect(t, 201)
	// API keys cannot delete the tenant: only an owner's session can.
	if code := c.Do(t, "DELETE", "/v1/tenant", nil, bearer(key)...).Expect(t, 403).ErrorCode(t); code != "session_required" {
		t.Errorf("code %s", code)
	}
	o.Do(t, "DELETE", "/v1/tenant", nil).Expect(t, 204)
	for _, path := range []string{att, "/v1/conversations/" + f.conv} {
		if r := c.Do(t, "GET", path, nil, bearer(key)...); r.Status != 401 {
			t.Fatalf("deleted tenant's key still works on %s: %d", path, r.Status)
		}
	}
	if r := o.Do(t, "GET", "/v1/me", nil); r.Status != 401 {
		t.Fatalf("deleted tenant's session still works: %d", r.Status)
	}
}

// alterLast changes a key's last character, so its checksum no longer holds.
func alterLast(key string) string {
	last := "0"
	if strings.HasSuffix(key, "0") {
		last = "1"
	}
	return key[:len(key)-1] + last
}

// readFrames reads SSE frames until n have arrived or the body ends.
func readFrames(t testing.TB, r io.Reader, n int) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for bytes.Count(out, []byte("\n\n")) < n {
		k, err := r.Read(buf)
		out = append(out, buf[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading a stream: %v", err)
		}
	}
	return out
}
