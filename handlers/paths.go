package handlers

import (
	"net/http"
	"net/url"
	"strings"

	"pommy.ai/edge/handlers/web"
)

// canonicalPaths makes every home route a request path the same way.
//
// The edge runtime parses each request's URL as a WHATWG URL before the
// application sees it, which resolves dot segments ("..", ".", and their
// percent-encoded spellings %2e): /v1/contacts/../x reaches the worker as
// /v1/x. The local home's server passes the path as sent, and
// net/http.ServeMux answers an unclean path with a 307 redirect and an
// HTML body. So the two homes disagreed on the same request: the edge a
// JSON 404, the local home an HTML redirect. Here the application resolves
// dot segments itself, as the WHATWG parser does, and routes the result
// without a redirect (at the edge this finds nothing left to do). A path
// with an empty segment (//), which no route has and which ServeMux would
// also redirect, gets the JSON 404. An encoded slash (%2f) stays inside its
// segment in both homes: /v1/contacts/..%2f..%2fetc%2fpasswd asks for the contact
// "../../etc/passwd", which does not exist.
func canonicalPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect || r.URL == nil {
			next.ServeHTTP(w, r)
			return
		}
		escaped := r.URL.EscapedPath()
		clean, ok := resolveDotSegments(escaped)
		if !ok {
			web.WriteError(w, r, web.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, web.Truncate(r.URL.Path, 200)))
			return
		}
		if clean != escaped {
			p, err := url.PathUnescape(clean)
			if err != nil {
				web.WriteError(w, r, web.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, web.Truncate(r.URL.Path, 200)))
				return
			}
			u := *r.URL
			u.Path, u.RawPath = p, clean
			r2 := *r
			r2.URL = &u
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// resolveDotSegments removes dot segments from an escaped absolute path the
// way the WHATWG URL parser does (a "." or ".." segment, also spelled with
// %2e in any case, is resolved; one at the end leaves a trailing slash). It
// reports false for a path that is not absolute or that has an empty
// segment other than a trailing one.
func resolveDotSegments(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch dotSegment(s) {
		case 1:
			if last {
				out = append(out, "")
			}
		case 2:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			if s == "" && !last {
				return "", false
			}
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/"), true
}

// dotSegment is 1 for ".", 2 for "..", 0 otherwise, with %2e for a dot.
func dotSegment(s string) int {
	if len(s) > 6 {
		return 0
	}
	s = strings.ReplaceAll(strings.ToLower(s), "%2e", ".")
	switch s {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}
