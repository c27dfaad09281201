package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The scenarios below hold issue 6's strict-input rules in every home that
// runs them (the wasip1 guest in tests/e2e, the worker in tests/workerd):
// one reading of a request body, one credential per request, the same
// answer to the same unclean path, and error text meant for people.

// Raw sends req as built, without redirects followed, and returns the
// exchange; for what Do cannot express (repeated headers, paths sent as
// they are).
func (c *Client) Raw(t testing.TB, req *http.Request) *Response {
	t.Helper()
	hc := http.Client{Timeout: 2 * time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if c.HTTP != nil {
		hc.Transport, hc.Timeout = c.HTTP.Transport, c.HTTP.Timeout
	}
	sent := c.capture(req)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	c.check(t, req, sent, r)
	return r
}

// refusal checks a 4xx in the error shape with the code and, if field is
// not empty, the error's field.
func refusal(t testing.TB, r *Response, status int, code, field string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d %s: %s", r.Status, status, code, trunc(r.Body))
	}
	if got := r.ErrorCode(t); got != code {
		t.Fatalf("code %q, want %q: %s", got, code, trunc(r.Body))
	}
	if field != "" {
		e, _ := r.JSON(t)["error"].(map[string]any)
		if e["field"] != field {
			t.Fatalf("error field %v, want %q: %s", e["field"], field, trunc(r.Body))
		}
	}
}

// StrictInput: a body has one reading. Duplicate keys (at any depth, or
// differing only in case), invalid UTF-8, escaped lone surrogates and NUL
// are refused with a 400 naming the field, and nothing is changed.
func StrictInput(t *testing.T, c *Client) {
	owner := c.Signup(t, "Strict Co")
	key := owner.NewKey(t, AllScopes...)

	t.Run("InviteWithTwoRoles", func(t *testing.T) {
		email := randomEmail()
		refusal(t, owner.Do(t, "POST", "/v1/invitations", `{"email":"`+email+`","role":"agent","role":"owner"}`), 400, "duplicate_key", "role")
		refusal(t, owner.Do(t, "POST", "/v1/invitations", `{"email":"`+email+`","role":"owner","role":"agent"}`), 400, "duplicate_key", "role")
		refusal(t, owner.Do(t, "POST", "/v1/invitations", `{"email":"`+email+`","role":"agent","Role":"owner"}`), 400, "unknown_field", "Role")
		refusal(t, owner.Do(t, "POST", "/v1/invitations", `{"email":"`+email+`","r\u006fle":"agent","role":"owner"}`), 400, "duplicate_key", "role")
		if inv := owner.Do(t, "GET", "/v1/invitations", nil).Expect(t, 200).JSON(t)["invitations"].([]any); len(inv) != 0 {
			t.Fatalf("a refused invitation was made: %v", inv)
		}
	})

	t.Run("LoginWithTwoPasswords", func(t *testing.T) {
		for _, body := range []string{
			`{"email":"` + owner.Email + `","password":"not the password","password":"` + Password + `"}`,
			`{"email":"` + owner.Email + `","password":"` + Password + `","password":"not the password"}`,
		} {
			r := c.Do(t, "POST", "/v1/login", body)
			refusal(t, r, 400, "duplicate_key", "password")
			if tok, _ := cookieToken(r); tok != "" {
				t.Fatal("a refused login set a session cookie")
			}
		}
	})

	// Text fields of a canned response (code, text): the strict decoding
	// path refuses bad text in any field, naming it.
	t.Run("CannedResponseText", func(t *testing.T) {
		for _, tc := range []struct{ name, body, field string }{
			{"raw C3 28", "{\"text\":\"caf\xc3\x28\",\"code\":\"b\"}", "text"},
			{"raw ED A0 80 (encoded surrogate)", "{\"text\":\"\xed\xa0\x80\",\"code\":\"b\"}", "text"},
			{"overlong C0 AF", "{\"text\":\"a\xc0\xafb\",\"code\":\"b\"}", "text"},
			{"escaped lone high surrogate", `{"text":"x\ud800","code":"b"}`, "text"},
			{"escaped lone low surrogate", `{"text":"\udc00x","code":"b"}`, "text"},
			{"invalid UTF-8 in the code", "{\"text\":\"t\",\"code\":\"\xff\"}", "code"},
			{"escaped NUL in the text", `{"text":"a\u0000b","code":"b"}`, "text"},
			{"raw NUL in the text", "{\"text\":\"a\x00b\",\"code\":\"b\"}", "text"},
			{"escaped NUL in the code", `{"text":"t","code":"line\u0000"}`, "code"},
			{"raw NUL in the code", "{\"text\":\"t\",\"code\":\"\x00\"}", "code"},
			{"two texts", `{"text":"a","code":"b","text":"c"}`, "text"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code := "invalid_text"
				if tc.name == "two texts" {
					code = "duplicate_key"
				}
				refusal(t, c.Do(t, "POST", "/v1/canned-responses", tc.body, bearer(key)...), 400, code, tc.field)
			})
		}
		if l := c.Do(t, "GET", "/v1/canned-responses", nil, bearer(key)...).Expect(t, 200).JSON(t)["canned_responses"].([]any); len(l) != 0 {
			t.Fatalf("refused canned responses were stored: %v", l)
		}
		// A valid escaped pair is one character, stored as sent.
		n := c.Do(t, "POST", "/v1/canned-responses", `{"code":"smile","text":"\ud83d\ude00 caf\u00e9"}`, bearer(key)...).Expect(t, 201).JSON(t)
		if n["text"] != "😀 café" {
			t.Errorf("text %q", n["text"])
		}
	})
}

// AmbiguousCredentials: a request with two credentials (two session
// cookies, or a key and a cookie) is refused, whichever would have won.
func AmbiguousCredentials(t *testing.T, c *Client) {
	owner := c.Signup(t, "Two Cookies Co")
	other := c.Signup(t, "Other Co")
	key := owner.NewKey(t, AllScopes...)
	req := func(method, path string, body string, hdr ...string) *http.Request {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r, err := http.NewRequest(method, c.Base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	ck := func(tok string) string { return SessionCookie + "=" + tok }
	for _, tc := range []struct {
		name string
		hdr  []string
	}{
		{"two session cookies in one header", []string{"Cookie", ck(owner.Token) + "; " + ck(other.Token)}},
		{"the same cookie twice", []string{"Cookie", ck(owner.Token) + "; " + ck(owner.Token)}},
		{"two Cookie headers", []string{"Cookie", ck(other.Token), "Cookie", ck(owner.Token)}},
		{"an empty one first", []string{"Cookie", ck("") + "; " + ck(owner.Token)}},
		{"a key and a cookie", []string{"Authorization", "Bearer " + key, "Cookie", ck(other.Token)}},
		{"two Authorization headers", []string{"Authorization", "Bearer " + key, "Authorization", "Bearer " + key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusal(t, c.Raw(t, req("GET", "/v1/me", "", tc.hdr...)), 400, "ambiguous_credentials", "")
			refusal(t, c.Raw(t, req("POST", "/v1/contacts", `{"name":"should not exist"}`, tc.hdr...)), 400, "ambiguous_credentials", "")
		})
	}
	for _, s := range []*Session{owner, other} {
		if l := s.Do(t, "GET", "/v1/contacts", nil).Expect(t, 200).JSON(t)["contacts"].([]any); len(l) != 0 {
			t.Fatalf("a refused request made a contact: %v", l)
		}
	}
	// One credential still works, whatever other cookies come with it.
	me := c.Raw(t, req("GET", "/v1/me", "", "Cookie", "theme=dark; "+ck(owner.Token)+"; lang=en")).Expect(t, 200).JSON(t)
	if u, _ := me["user"].(map[string]any); u["id"] != owner.UserID {
		t.Errorf("me: %v", me)
	}
	c.Raw(t, req("GET", "/v1/contacts", "", "Authorization", "bearer "+key)).Expect(t, 200)
}

// UncleanPaths: the same request gets the same answer in every home, in
// the JSON error shape with the security headers, never a redirect or an
// empty body. The edge runtime resolves dot segments before the worker
// sees the URL; the application does the same in every home.
func UncleanPaths(t *testing.T, c *Client) {
	owner := c.Signup(t, "Paths Co")
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/contacts/..%2f..%2fetc%2fpasswd", 404, "not_found"},
		{"/v1/contacts/..%2F..%2Fetc%2Fpasswd", 404, "not_found"},
		{"/v1/contacts/../../etc/passwd", 404, "not_found"},
		{"/v1/contacts/%2e%2e/%2e%2e/etc/passwd", 404, "not_found"},
		{"/v1/contacts//x", 404, "not_found"},
		{"//v1/contacts", 404, "not_found"},
		{"/v1/contacts/x/..", 404, "not_found"},
		{"/v1/x/../contacts", 200, ""},
		{"/v1/./contacts", 200, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequest("GET", c.Base+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Cookie", SessionCookie+"="+owner.Token)
			r := c.Raw(t, req)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %v %s", r.Status, tc.status, r.Header, trunc(r.Body))
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			for _, h := range []string{"Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Permissions-Policy", "X-Request-Id"} {
				if r.Header.Get(h) == "" {
					t.Errorf("missing header %s", h)
				}
			}
			if loc := r.Header.Get("Location"); loc != "" {
				t.Errorf("redirects to %s", loc)
			}
			if tc.code != "" {
				if got := r.ErrorCode(t); got != tc.code {
					t.Errorf("code %q, want %q", got, tc.code)
				}
			}
		})
	}
}

// ErrorText: errors name what was refused in words, JSON is not
// HTML-escaped, and a settings change is audited as objects, not as JSON
// text inside a string.
func ErrorText(t *testing.T, c *Client) {
	owner := c.Signup(t, "Words & <Co>")
	agent := owner.Invite(t, "agent")
	r := agent.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "k", "scopes": []string{"conversations:read"}})
	refusal(t, r, 403, "forbidden", "")
	if msg := r.JSON(t)["error"].(map[string]any)["message"]; msg != "the agent role may not manage API keys" {
		t.Errorf("message %q", msg)
	}

	key := owner.NewKey(t, AllScopes...)
	r = c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "<b>Fish & Chips</b> a > b"}, bearer(key)...).Expect(t, 201)
	if !bytes.Contains(r.Body, []byte(`"name":"<b>Fish & Chips</b> a > b"`)) || bytes.Contains(r.Body, []byte(`\u003c`)) {
		t.Errorf("the contact comes back escaped: %s", r.Body)
	}

	owner.Do(t, "PATCH", "/v1/settings", map[string]any{"name": "New <Name> & Co", "session_idle_minutes": 15}).Expect(t, 200)
	r = owner.Do(t, "GET", "/v1/audit/events?action=settings.changed", nil).Expect(t, 200)
	if bytes.Contains(r.Body, []byte(`\u003c`)) || bytes.Contains(r.Body, []byte(`\"`)) {
		t.Errorf("audit events carry escaped or nested JSON text: %s", trunc(r.Body))
	}
	var page struct {
		Events []struct {
			Details struct {
				From map[string]any `json:"from"`
				To   map[string]any `json:"to"`
			} `json:"details"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Events) != 1 {
		t.Fatalf("settings.changed events: %v %s", err, trunc(r.Body))
	}
	d := page.Events[0].Details
	if d.From["name"] != "Words & <Co>" || d.To["name"] != "New <Name> & Co" || d.From["session_idle_minutes"] != float64(30) ||
		d.To["session_idle_minutes"] != float64(15) || len(d.To) != 2 {
		t.Errorf("settings change details: %+v", d)
	}
	if v := owner.Do(t, "GET", "/v1/audit/verify", nil).Expect(t, 200).JSON(t); v["ok"] != true {
		t.Errorf("the audit chain does not verify after a structured event: %v", v)
	}
}
