package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

func TestResolveDotSegments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/v1/contacts", "/v1/contacts"},
		{"/v1/contacts/", "/v1/contacts/"},
		{"/v1/contacts/../x", "/v1/x"},
		{"/v1/contacts/../../etc/passwd", "/etc/passwd"},
		{"/v1/contacts/../../../../etc/passwd", "/etc/passwd"},
		{"/v1/./contacts", "/v1/contacts"},
		{"/v1/contacts/.", "/v1/contacts/"},
		{"/v1/contacts/x/..", "/v1/contacts/"},
		{"/v1/contacts/%2e%2e/x", "/v1/x"},
		{"/v1/contacts/%2E%2e/x", "/v1/x"},
		{"/v1/contacts/.%2e/x", "/v1/x"},
		{"/v1/contacts/%2e/x", "/v1/contacts/x"},
		{"/v1/contacts/..%2f..%2fetc%2fpasswd", "/v1/contacts/..%2f..%2fetc%2fpasswd"},
		{"/v1/contacts/...", "/v1/contacts/..."},
		{"/v1/contacts/..a", "/v1/contacts/..a"},
	} {
		got, ok := resolveDotSegments(tc.in)
		if !ok || got != tc.want {
			t.Errorf("resolveDotSegments(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "v1/contacts", "//", "/v1//contacts", "//etc/passwd", "/v1/contacts/..//x"} {
		if got, ok := resolveDotSegments(bad); ok {
			t.Errorf("resolveDotSegments(%q) = %q, want a refusal", bad, got)
		}
	}
}

// TestUncleanPathsGetTheJSONError: where net/http's ServeMux would answer
// an HTML redirect, the application routes the resolved path or answers
// its JSON 404, with the security headers.
func TestUncleanPathsGetTheJSONError(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/contacts/{id}", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, web.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
	h := (&app{}).secure(canonicalPaths(mux))
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/v1/contacts/..%2f..%2fetc%2fpasswd", 200, `"id":"../../etc/passwd"`},
		{"/v1/contacts/../../etc/passwd", 404, `"no route for GET /etc/passwd"`},
		{"/v1/x/../contacts/n1", 200, `"id":"n1"`},
		{"/v1/contacts//n1", 404, `"not_found"`},
		{"/v1/contacts/%2e%2e/%2e%2e/etc/passwd", 404, `"no route for GET /etc/passwd"`},
	} {
		req := httptest.NewRequest("GET", "http://pommy.test"+tc.path, nil)
		if req.URL.EscapedPath() != tc.path {
			u, _ := url.Parse("http://pommy.test" + tc.path)
			req.URL = u
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) || w.Header().Get("Content-Type") != "application/json; charset=utf-8" ||
			w.Header().Get("Strict-Transport-Security") == "" || w.Header().Get("Location") != "" {
			t.Errorf("GET %s: %d %v %s, want %d with %s", tc.path, w.Code, w.Header(), w.Body, tc.status, tc.body)
		}
	}
}

// FuzzCanonicalPath: resolveDotSegments never panics; what it returns is
// absolute, has no dot or empty segment but a trailing one, and is a fixed
// point.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/v1/contacts/../x", "/v1/contacts/..%2f..%2fetc%2fpasswd", "/a/%2e%2E/b", "//x", "/a/.", "/a/..", "/..", "/%2e%2e%2f", "/a/b/c/../../..", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, ok := resolveDotSegments(p)
		if !ok {
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("%q -> %q: not absolute", p, got)
		}
		segs := strings.Split(got[1:], "/")
		for i, s := range segs {
			if dotSegment(s) != 0 || s == "" && i != len(segs)-1 {
				t.Fatalf("%q -> %q: segment %q left", p, got, s)
			}
		}
		if again, ok := resolveDotSegments(got); !ok || again != got {
			t.Fatalf("%q -> %q -> %q, %v: not a fixed point", p, got, again, ok)
		}
	})
}

// TestNotFoundDoesNotEchoLongPaths: the 404 names the path, cut short.
func TestNotFoundDoesNotEchoLongPaths(t *testing.T) {
	h := New(storage.Platform{}, Config{})
	long := "/v1/" + strings.Repeat("a", 64<<10)
	for _, p := range []string{long, "/v1/contacts/..%2f" + strings.Repeat("b", 64<<10) + "//x"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://pommy.test"+p, nil))
		if w.Code != 404 || w.Body.Len() > 600 || !strings.Contains(w.Body.String(), `"not_found"`) {
			t.Errorf("GET of a %d-byte path: %d, %d-byte body", len(p), w.Code, w.Body.Len())
		}
	}
}
