package identity

import (
	"encoding/base64"
	"errors"
	"hash/crc32"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/web"
)

func TestRequestCredential(t *testing.T) {
	tok, tok2, key := newToken(), newToken(), newAPIKey()
	ck := func(v ...string) []string {
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = sessionCookie + "=" + x
		}
		return out
	}
	cases := []struct {
		name    string
		auth    []string
		cookies []string // one Cookie header each
		key     string
		session string
		code    string
	}{
		{name: "nothing"},
		{name: "key", auth: []string{"Bearer " + key}, key: key},
		{name: "lower-case scheme", auth: []string{"bearer " + key}, key: key},
		{name: "extra spaces", auth: []string{"Bearer   " + key}, key: key},
		{name: "session", cookies: []string{"theme=dark; " + ck(tok)[0] + "; lang=en"}, session: tok},
		{name: "empty session cookie", cookies: ck("")},
		{name: "other cookies only", cookies: []string{"__Host-pommy_sessionx=" + tok + "; pommy_session=" + tok}},
		{name: "two session cookies in one header", cookies: []string{strings.Join(ck(tok, tok2), "; ")}, code: "ambiguous_credentials"},
		{name: "the same session cookie twice", cookies: []string{strings.Join(ck(tok, tok), "; ")}, code: "ambiguous_credentials"},
		{name: "two Cookie headers", cookies: ck(tok, tok2), code: "ambiguous_credentials"},
		{name: "joined with a comma", cookies: []string{strings.Join(ck(tok, tok2), ", ")}, code: "ambiguous_credentials"},
		{name: "one empty, one set", cookies: []string{strings.Join(ck("", tok), "; ")}, code: "ambiguous_credentials"},
		{name: "key and cookie", auth: []string{"Bearer " + key}, cookies: ck(tok), code: "ambiguous_credentials"},
		{name: "key and empty cookie", auth: []string{"Bearer " + key}, cookies: ck(""), code: "ambiguous_credentials"},
		{name: "two Authorization headers", auth: []string{"Bearer " + key, "Bearer " + key}, code: "ambiguous_credentials"},
		{name: "two keys joined with a comma", auth: []string{"Bearer " + key + ", Bearer " + key}, code: "ambiguous_credentials"},
		{name: "basic scheme", auth: []string{"Basic dXNlcjpwYXNz"}, code: "unauthenticated"},
		{name: "no key", auth: []string{"Bearer "}, code: "unauthenticated"},
		{name: "no space", auth: []string{"Bearer" + key}, code: "unauthenticated"},
		{name: "two keys", auth: []string{"Bearer " + key + " " + key}, code: "unauthenticated"},
		{name: "tab inside", auth: []string{"Bearer " + key + "\tx"}, code: "unauthenticated"},
		{name: "empty header", auth: []string{""}, code: "unauthenticated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, a := range tc.auth {
				h.Add("Authorization", a)
			}
			for _, c := range tc.cookies {
				h.Add("Cookie", c)
			}
			c, err := requestCredential(h)
			var ae *web.Error
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code != "" && (!errors.As(err, &ae) || ae.Code != tc.code):
				t.Fatalf("got %v, want %s", err, tc.code)
			case tc.code == "ambiguous_credentials" && ae.Status != http.StatusBadRequest:
				t.Fatalf("status %d", ae.Status)
			case tc.code == "" && (c.apiKey != tc.key || c.session != tc.session):
				t.Fatalf("credential %+v, want key %q session %q", c, tc.key, tc.session)
			}
			if err != nil && (strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), key)) {
				t.Errorf("the error repeats a secret: %v", err)
			}
		})
	}
}

func TestValidTokenIsCanonical(t *testing.T) {
	tok := newToken()
	if !validToken(tok) {
		t.Fatalf("fresh token %q refused", tok)
	}
	// The last character carries 2 spare bits; another character with the
	// same 4 data bits is another spelling of the same bytes.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", tok[len(tok)-1])
	alt := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	if validToken(alt) {
		t.Errorf("non-canonical spelling %q of a token accepted", alt)
	}
}

func TestDecodeJSONRefusal(t *testing.T) {
	req := httptest.NewRequest("POST", "/v1/invitations", strings.NewReader(`{"email":"a@example.com","role":"agent","role":"owner"}`))
	var v invitationRequest
	err := web.DecodeJSON(httptest.NewRecorder(), req, identityBodyLimit, &v)
	var ae *web.Error
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "duplicate_key" || ae.Field != "role" || !strings.Contains(ae.Message, "role") {
		t.Fatalf("got %#v", err)
	}
	if v.Role != "" {
		t.Errorf("refused body filled the request: %+v", v)
	}
	w := httptest.NewRecorder()
	web.WriteError(w, req, err)
	if !strings.Contains(w.Body.String(), `"field":"role"`) {
		t.Errorf("error body %s does not name the field", w.Body)
	}
	// Over the limit: 413, before any JSON is looked at.
	req = httptest.NewRequest("POST", "/v1/invitations", strings.NewReader(`{"email":"`+strings.Repeat("a", identityBodyLimit)+`"}`))
	if err := web.DecodeJSON(httptest.NewRecorder(), req, identityBodyLimit, &v); !errors.As(err, &ae) || ae.Status != 413 {
		t.Fatalf("oversized body: %v", err)
	}
	// A request without a body (the edge bridge gives nil) is an empty body.
	req = httptest.NewRequest("POST", "/v1/invitations", nil)
	req.Body = nil
	if err := web.DecodeJSON(httptest.NewRecorder(), req, identityBodyLimit, &v); !errors.As(err, &ae) || ae.Code != "malformed_json" {
		t.Fatalf("no body: %v", err)
	}
}

// --- fuzz targets for the credential parsers ---------------------------

// FuzzCheckAPIKey: checkAPIKey never panics, and what it accepts has the
// documented shape and a checksum that holds.
func FuzzCheckAPIKey(f *testing.F) {
	k := newAPIKey()
	for _, s := range []string{k, k[:len(k)-1], k + "0", "pk_live_", "", "pk_live_" + strings.Repeat("z", 28),
		strings.Replace(k, "pk_live_", "PK_LIVE_", 1), k[:20] + "é" + k[22:], k[:len(k)-6] + "zzzzzz", k[:12] + "\x00" + k[13:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkAPIKey(s) != nil {
			return
		}
		if len(s) != apiKeyLen || !strings.HasPrefix(s, apiKeyPrefix) {
			t.Fatalf("accepted %q of the wrong shape", s)
		}
		for _, c := range []byte(s[len(apiKeyPrefix):]) {
			if strings.IndexByte(base62Alphabet, c) < 0 {
				t.Fatalf("accepted %q with a non-base62 character", s)
			}
		}
		body := s[:len(s)-apiKeyCRCLen]
		if base62(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), apiKeyCRCLen) != s[len(body):] {
			t.Fatalf("accepted %q whose checksum does not hold", s)
		}
	})
}

// FuzzValidToken: validToken never panics, and a token it accepts is the
// one canonical spelling of 32 bytes.
func FuzzValidToken(f *testing.F) {
	tok := newToken()
	for _, s := range []string{tok, tok[:42], tok + "A", strings.Repeat("A", 43), strings.Repeat("_", 43), tok[:42] + "B",
		tok[:42] + "=", strings.Replace(tok, tok[:1], "+", 1), strings.Replace(tok, tok[:1], "/", 1), tok[:10] + "\x00" + tok[11:], ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validToken(s) {
			return
		}
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) != 32 || base64.RawURLEncoding.EncodeToString(b) != s {
			t.Fatalf("accepted %q, which is not the canonical encoding of 32 bytes", s)
		}
	})
}

// FuzzRequestCredential: over any Authorization and Cookie headers,
// requestCredential never panics, returns at most one credential, never
// returns a value the headers do not hold, refuses every request in which
// net/http's own cookie parser sees more than one session cookie or a
// session cookie beside an Authorization header, and so never picks one
// credential where another reader would pick another.
func FuzzRequestCredential(f *testing.F) {
	tok, key := newToken(), newAPIKey()
	seeds := [][3]string{
		{"Bearer " + key, "", ""},
		{"", sessionCookie + "=" + tok, ""},
		{"", sessionCookie + "=" + tok + "; " + sessionCookie + "=" + tok, ""},
		{"", sessionCookie + "=a", sessionCookie + "=b"},
		{"Bearer " + key, sessionCookie + "=" + tok, ""},
		{"bEaReR " + key, "a=1;" + sessionCookie + "=\"" + tok + "\"", ""},
		{"", sessionCookie + "=" + tok + "," + sessionCookie + "=x", ""},
		{"", " " + sessionCookie + " = " + tok + " ", ""},
		{"Bearer\t" + key, "", ""},
		{"", "a=" + sessionCookie + "=x; " + sessionCookie, ""},
		{"Bearer " + key + "\x00", sessionCookie + "=\x00", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, auth, cookie1, cookie2 string) {
		h := http.Header{}
		if auth != "" {
			h.Add("Authorization", auth)
		}
		for _, c := range []string{cookie1, cookie2} {
			if c != "" {
				h.Add("Cookie", c)
			}
		}
		c, err := requestCredential(h)
		if err != nil {
			var ae *web.Error
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 401 {
				t.Fatalf("refusal %v is not a 400 or 401 in the error shape", err)
			}
			return
		}
		if c.apiKey != "" && c.session != "" {
			t.Fatal("two credentials returned")
		}
		if c.apiKey != "" && (!strings.Contains(auth, c.apiKey) || strings.ContainsAny(c.apiKey, " \t\r\n")) {
			t.Fatalf("key %q is not a run of visible characters from %q", c.apiKey, auth)
		}
		if c.session != "" && !strings.Contains(cookie1, c.session) && !strings.Contains(cookie2, c.session) {
			t.Fatalf("session %q is not in the cookies", c.session)
		}
		// What net/http's parser sees: accepted means it sees at most one
		// session cookie, and none beside an Authorization header.
		r := &http.Request{Header: h}
		var seen []string
		for _, ck := range r.Cookies() {
			if ck.Name == sessionCookie {
				seen = append(seen, ck.Value)
			}
		}
		if len(seen) > 1 || len(seen) == 1 && auth != "" {
			t.Fatalf("accepted %q / %q / %q, where net/http sees session cookies %q", auth, cookie1, cookie2, seen)
		}
		if len(seen) == 1 && seen[0] != "" && validToken(seen[0]) && c.session != seen[0] {
			t.Fatalf("net/http reads session %q, requestCredential %q", seen[0], c.session)
		}
	})
}
func TestPasswordPolicy(t *testing.T) {
	for _, bad := range []string{"", "short", "password", "PASSWORD1", "12345678", "qwertyuiop", "iloveyou", strings.Repeat("a", 129), "me@example.com"} {
		if checkPassword(bad, "me@example.com") == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	for _, good := range []string{"correct horse battery staple", "Tr0ub4dor&3x", strings.Repeat("é", 128)} {
		if err := checkPassword(good, "me@example.com"); err != nil {
			t.Errorf("refused %q: %v", good, err)
		}
	}
	if n := len(commonPasswords()); n < 3000 {
		t.Errorf("only %d common passwords loaded", n)
	}
}

func TestThrottleDelays(t *testing.T) {
	r := throttleAccountIP
	if r.delay(r.free-1) != 0 || r.delay(r.free) != r.base || r.delay(r.free+1) != 2*r.base || r.delay(r.free+100) != r.max {
		t.Errorf("delays: %v %v %v %v", r.delay(r.free-1), r.delay(r.free), r.delay(r.free+1), r.delay(r.free+100))
	}
}
