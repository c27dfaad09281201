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
	if method == "POST" && publicAuth[path] && req.Header.Get(TestClientIP) == "" {
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

// TestClientIP is the header a home started with Config.TestRoutes takes
// the client's address from.
const TestClientIP = "X-Pommy-Test-Client-IP"

var publicAuth = map[string]bool{"/v1/signup": true, "/v1/login": true, "/v1/invitations/accept": true}

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
	return c.sessionFrom(t, r, email)
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
	t.Run("NotesRoundTrip", func(t *testing.T) { notesRoundTrip(t, c) })
	t.Run("Attachment", func(t *testing.T) { attachment(t, c) })
	t.Run("TenantIsolation", func(t *testing.T) { isolation(t, c) })
	t.Run("BadInput", func(t *testing.T) { badInput(t, c) })
	t.Run("DeleteTenantShreds", func(t *testing.T) { deleteTenant(t, c) })
	runIdentity(t, c)
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

func notesRoundTrip(t *testing.T, c *Client) {
	_, key := c.Tenant(t, "Round Trip Co")
	body := "Ünïcode body ✓ " + strings.Repeat("x", 5000)
	n := c.Do(t, "POST", "/v1/notes", map[string]string{"title": "First", "body": body}, bearer(key)...).Expect(t, 201).JSON(t)
	id, _ := n["id"].(string)
	got := c.Do(t, "GET", "/v1/notes/"+id, nil, bearer(key)...).Expect(t, 200).JSON(t)
	if got["title"] != "First" || got["body"] != body {
		t.Fatalf("read back %v", got)
	}
	if got["cached"] != true {
		t.Errorf("metadata written to KV at create was not found on read: %v", got["cached"])
	}
	list := c.Do(t, "GET", "/v1/notes", nil, bearer(key)...).Expect(t, 200).JSON(t)
	if notes, _ := list["notes"].([]any); len(notes) != 1 {
		t.Fatalf("list: %v", list)
	}
	c.Do(t, "DELETE", "/v1/notes/"+id, nil, bearer(key)...).Expect(t, 204)
	if code := c.Do(t, "GET", "/v1/notes/"+id, nil, bearer(key)...).Expect(t, 404).ErrorCode(t); code != "not_found" {
		t.Errorf("code %s", code)
	}
	c.Do(t, "DELETE", "/v1/notes/"+id, nil, bearer(key)...).Expect(t, 404)
}

func attachment(t *testing.T, c *Client) {
	_, key := c.Tenant(t, "Attach Co")
	id := c.Do(t, "POST", "/v1/notes", map[string]string{"title": "With file"}, bearer(key)...).Expect(t, 201).JSON(t)["id"].(string)
	data := make([]byte, 5<<20+12345)
	rand.Read(data)
	r := c.Do(t, "PUT", "/v1/notes/"+id+"/attachment", data, append(bearer(key), "Content-Type", "application/octet-stream")...).Expect(t, 200).JSON(t)
	if r["attachment_size"] != float64(len(data)) {
		t.Fatalf("size %v", r["attachment_size"])
	}
	back := c.Do(t, "GET", "/v1/notes/"+id+"/attachment", nil, bearer(key)...).Expect(t, 200)
	if !bytes.Equal(back.Body, data) {
		t.Fatalf("attachment changed in the round trip (%d bytes back)", len(back.Body))
	}
	// A body of unknown length (chunked) is refused in every home
	// (docs/api.md), and the old attachment stays.
	lr := c.Do(t, "PUT", "/v1/notes/"+id+"/attachment", io.MultiReader(bytes.NewReader([]byte("streamed without a length"))), bearer(key)...).Expect(t, 411)
	if code := lr.ErrorCode(t); code != "length_required" {
		t.Fatalf("chunked upload: code %s", code)
	}
	if back := c.Do(t, "GET", "/v1/notes/"+id+"/attachment", nil, bearer(key)...).Expect(t, 200); !bytes.Equal(back.Body, data) {
		t.Fatalf("after the refused upload: got %d bytes", len(back.Body))
	}
}

func isolation(t *testing.T, c *Client) {
	_, keyA := c.Tenant(t, "Tenant A")
	_, keyB := c.Tenant(t, "Tenant B")
	id := c.Do(t, "POST", "/v1/notes", map[string]string{"title": "A's secret", "body": "for A only"}, bearer(keyA)...).Expect(t, 201).JSON(t)["id"].(string)
	c.Do(t, "PUT", "/v1/notes/"+id+"/attachment", []byte("A's file"), bearer(keyA)...).Expect(t, 200)
	// B cannot see, change or delete A's note, and cannot tell it exists.
	for _, probe := range []struct{ method, path string }{
		{"GET", "/v1/notes/" + id}, {"DELETE", "/v1/notes/" + id},
		{"GET", "/v1/notes/" + id + "/attachment"}, {"PUT", "/v1/notes/" + id + "/attachment"},
	} {
		var body any
		if probe.method == "PUT" {
			body = []byte("overwrite")
		}
		r := c.Do(t, probe.method, probe.path, body, bearer(keyB)...)
		if r.Status != 404 {
			t.Errorf("B %s %s: status %d, want 404", probe.method, probe.path, r.Status)
		}
	}
	if notes := c.Do(t, "GET", "/v1/notes", nil, bearer(keyB)...).Expect(t, 200).JSON(t)["notes"].([]any); len(notes) != 0 {
		t.Errorf("B lists A's notes: %v", notes)
	}
	if got := c.Do(t, "GET", "/v1/notes/"+id+"/attachment", nil, bearer(keyA)...).Expect(t, 200); string(got.Body) != "A's file" {
		t.Errorf("A's attachment changed: %q", got.Body)
	}
	c.Do(t, "GET", "/v1/notes/"+id, nil, bearer(keyA)...).Expect(t, 200)
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
		{"no key", "GET", "/v1/notes", nil, nil, 401, "unauthenticated"},
		{"bad checksum", "GET", "/v1/notes", nil, bearer(alterLast(key)), 401, "invalid_api_key"},
		{"unknown key", "GET", "/v1/notes", nil, bearer(fakeKey(t, c)), 401, "invalid_api_key"},
		{"malformed json", "POST", "/v1/notes", `{"title":`, bearer(key), 400, "malformed_json"},
		{"unknown field", "POST", "/v1/notes", `{"title":"x","colour":"red"}`, bearer(key), 400, "unknown_field"},
		{"trailing data", "POST", "/v1/notes", `{"title":"x"} {}`, bearer(key), 400, "malformed_json"},
		{"empty title", "POST", "/v1/notes", `{"title":"  "}`, bearer(key), 400, "invalid_title"},
		{"long title", "POST", "/v1/notes", map[string]string{"title": strings.Repeat("é", 201)}, bearer(key), 400, "invalid_title"},
		{"body too large", "POST", "/v1/notes", map[string]string{"title": "x", "body": strings.Repeat("a", 64<<10+1)}, bearer(key), 413, "too_large"},
		{"request too large", "POST", "/v1/notes", `{"title":"x","body":"` + strings.Repeat("a", 512<<10) + `"}`, bearer(key), 413, "too_large"},
		{"wrong content type", "POST", "/v1/notes", []byte(`{"title":"x"}`), append(bearer(key), "Content-Type", "text/plain"), 415, "unsupported_media_type"},
		{"bad id", "GET", "/v1/notes/n_..%2F..%2Fetc", nil, bearer(key), 404, "not_found"},
		{"bad cursor", "GET", "/v1/notes?before=-1", nil, bearer(key), 400, "invalid_cursor"},
		{"no route", "GET", "/v1/nothing", nil, nil, 404, "not_found"},
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
	// Nothing above created a note.
	if notes := c.Do(t, "GET", "/v1/notes", nil, bearer(key)...).Expect(t, 200).JSON(t)["notes"].([]any); len(notes) != 0 {
		t.Errorf("bad input left notes behind: %v", notes)
	}
}

// fakeKey is a well-formed key that no tenant has any more: it passes the
// checksum, so only the lookup can refuse it.
func fakeKey(t *testing.T, c *Client) string {
	o := c.Signup(t, "Throwaway")
	k := o.NewKey(t, "notes:read")
	o.Do(t, "DELETE", "/v1/tenant", nil).Expect(t, 204)
	return k
}

func deleteTenant(t *testing.T, c *Client) {
	o := c.Signup(t, "Leaving Co")
	key := o.NewKey(t, AllScopes...)
	id := c.Do(t, "POST", "/v1/notes", map[string]string{"title": "bye", "body": "b"}, bearer(key)...).Expect(t, 201).JSON(t)["id"].(string)
	// API keys cannot delete the tenant: only an owner's session can.
	if code := c.Do(t, "DELETE", "/v1/tenant", nil, bearer(key)...).Expect(t, 403).ErrorCode(t); code != "session_required" {
		t.Errorf("code %s", code)
	}
	o.Do(t, "DELETE", "/v1/tenant", nil).Expect(t, 204)
	if r := c.Do(t, "GET", "/v1/notes/"+id, nil, bearer(key)...); r.Status != 401 {
		t.Fatalf("deleted tenant's key still works: %d", r.Status)
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
