package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host"
)

// The local home's HTTP server as a client on the internet meets it: slow
// clients, smuggling-shaped requests, requests net/http refuses by itself,
// and the statuses of the host's own answers. Raw connections, since a Go
// client would not send most of these.

// guard bounds every wait on the server; it is a failure guard, far above
// any limit the tests set, not a measure of speed.
const guard = time.Minute

// dial opens a raw connection to the home.
func (h *home) dial(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *rawConn) send(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("sending: %v", err)
	}
}

// response reads one response, within guard.
func (c *rawConn) response(t testing.TB) response {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	if resp.Close {
		// ReadResponse takes the header into resp.Close.
		resp.Header.Set("Connection", "close")
	}
	return response{resp.StatusCode, resp.Header, b}
}

// closed checks that the server closed the connection: nothing more
// arrives, and the read ends (EOF, or a reset) within guard.
func (c *rawConn) closed(t testing.TB) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(guard))
	b, err := c.br.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		t.Fatalf("the connection is still served: %q", append([]byte{b}, rest...))
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the connection was not closed within %v", guard)
	}
}

// within is a client whose requests fail after guard.
var within = &http.Client{Timeout: guard}

// probe makes a request that must be answered within guard.
func (h *home) probe(t testing.TB, method, path string, body string, header ...string) response {
	t.Helper()
	return h.send(t, within, method, path, strings.NewReader(body), header...)
}

// hostHeader names the server in raw requests.
func (h *home) hostHeader() string { return strings.TrimPrefix(h.url, "http://") }

// headerNames is the set of header names that describe a response rather
// than its framing.
func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		switch k {
		case "Connection", "Content-Length", "Transfer-Encoding", "Retry-After":
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// appError is an error answered by the application inside the guest: the
// reference for the header set of every other answer.
func appError(t *testing.T, h *home) response {
	t.Helper()
	r := h.do(t, "POST", "/v1/signup", strings.NewReader(`{"organization":`), "Content-Type", "application/json")
	if r.status != 400 || r.errorCode() == "" {
		t.Fatalf("the application's error: %v", r)
	}
	want := http.Header{}
	handlers.SecurityHeaders(want)
	for k := range want {
		if r.header.Get(k) != want.Get(k) {
			t.Fatalf("the application's error has %s: %q, want %q", k, r.header.Get(k), want.Get(k))
		}
	}
	return r
}

// sameShape checks that r has the JSON error shape with code and the
// header set, names and security values, of the application's own error.
func sameShape(t *testing.T, r, app response, status int, code string) {
	t.Helper()
	if r.status != status || r.errorCode() != code {
		t.Errorf("got %v, want %d %s", r, status, code)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Message == "" {
		t.Errorf("not the JSON error shape with a message: %q", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if got, want := headerNames(r.header), headerNames(app.header); !slices.Equal(got, want) {
		t.Errorf("header names differ from the application's:\n got  %v\n want %v", got, want)
	}
	sec := http.Header{}
	handlers.SecurityHeaders(sec)
	for k := range sec {
		if r.header.Get(k) != sec.Get(k) {
			t.Errorf("%s: %q, want %q", k, r.header.Get(k), sec.Get(k))
		}
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
}

// TestSlowClientsHoldNoInstance: many clients that send a sign-up's head
// and then too little of its body (or none) take no guest instance: with a
// pool of 2, others are served meanwhile, and each slow one gets a 408 and
// a closed connection once the body timeout passes.
func TestSlowClientsHoldNoInstance(t *testing.T) {
	// The request deadline is far beyond guard: only the body timeout
	// can end the stalled requests in time.
	h := startHome(t, homeOptions{pool: 2, timeout: 10 * time.Minute, bodyReadTimeout: time.Second})
	app := appError(t, h)
	const stalled = 20
	conns := make([]*rawConn, stalled)
	for i := range conns {
		c := h.dial(t)
		body := `{"organization":"Slow`
		if i%2 == 0 {
			body = "" // the head only
		}
		// A Content-Length larger than what is sent.
		c.send(t, fmt.Sprintf("POST /v1/signup HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n%s", h.hostHeader(), body))
		conns[i] = c
	}
	// Give the server the time to take every stalled request in (not a
	// measure: the checks below hold however long this is).
	time.Sleep(200 * time.Millisecond)

	if r := h.probe(t, "GET", "/healthz", ""); r.status != 200 {
		t.Fatalf("healthz while %d clients stall: %v", stalled, r)
	}
	(&apitest.Client{Base: h.url, HTTP: within}).Signup(t, "Served Meanwhile")

	for i, c := range conns {
		r := c.response(t)
		sameShape(t, r, app, http.StatusRequestTimeout, "request_timeout")
		if !strings.EqualFold(r.header.Get("Connection"), "close") {
			t.Errorf("stalled client %d: no Connection: close", i)
		}
		c.closed(t)
	}
	if s := h.host.Stats(); s.Killed != 0 || s.Timeouts != 0 {
		t.Errorf("slow clients cost the guest: %+v", s)
	}
}

// TestSlowUploadIsCut: an attachment upload larger than what is read before
// an instance is taken streams to the guest; one that stops, or trickles
// below the minimum rate (each read still within the timeout), is cut with
// a 408 and its connection closed, while others are served. Two such
// uploads at once, against a pool of 2.
func TestSlowUploadIsCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		gap  time.Duration // between trickled bytes; 0: nothing more is sent
		rate int64
	}{
		// No minimum rate: only the per-read timeout can cut it.
		{"stops", 0, -1},
		// Each read makes progress within the timeout: only the
		// minimum rate can cut it, long before the request's deadline.
		{"trickles below the minimum rate", 300 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The request deadline is far beyond guard: only the
			// body limits can end these uploads in time.
			h := startHome(t, homeOptions{pool: 2, timeout: 10 * time.Minute, bodyReadTimeout: time.Second, bodyMinRate: tc.rate})
			app := appError(t, h)
			c := &apitest.Client{Base: h.url}
			ch := newChat(t, h, "Upload Co")
			key, auth := ch.key, []string{"Authorization", "Bearer " + ch.key}
			mid := ch.send(t, h, "with a slow file")

			const declared = 4 << 20
			var wg sync.WaitGroup
			stop := make(chan struct{})
			defer func() { close(stop); wg.Wait() }()
			conns := make([]*rawConn, 2)
			for i := range conns {
				conn := h.dial(t)
				conn.send(t, fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
					attachmentPath(ch.conv, mid), h.hostHeader(), key, declared))
				// More than the host reads before it takes an
				// instance, so that the rest streams to the guest.
				conn.send(t, strings.Repeat("x", host.PreReadLimit+64<<10))
				if tc.gap > 0 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							case <-time.After(tc.gap):
							}
							if _, err := conn.Write([]byte("x")); err != nil {
								return // cut
							}
						}
					}()
				}
				conns[i] = conn
			}
			time.Sleep(200 * time.Millisecond) // as above, not a measure

			if r := h.probe(t, "GET", "/healthz", ""); r.status != 200 {
				t.Fatalf("healthz during slow uploads: %v", r)
			}
			(&apitest.Client{Base: h.url, HTTP: within}).Do(t, "POST", "/v1/contacts", map[string]string{"name": "Served meanwhile"}, auth...).Expect(t, 201)

			for _, conn := range conns {
				r := conn.response(t)
				sameShape(t, r, app, http.StatusRequestTimeout, "request_timeout")
				conn.closed(t)
			}
			// Nothing of the cut uploads was stored.
			c.Do(t, "GET", attachmentPath(ch.conv, mid), nil, auth...).Expect(t, 404)
			if r := h.get(t, "/healthz"); r.status != 200 {
				t.Fatalf("healthz after: %v", r)
			}
		})
	}
}

// TestSmugglingShapedRequestsAreRefused: a request framed by both
// Transfer-Encoding and Content-Length, followed on the same connection by
// a second one, gets one 411 and a closed connection; the body it carried
// is not acted on. Any Transfer-Encoding is refused alike, and an HTTP/1.0
// connection never carries a second request.
func TestSmugglingShapedRequestsAreRefused(t *testing.T) {
	h := startHome(t, homeOptions{pool: 2})
	app := appError(t, h)
	email := fmt.Sprintf("smuggled-%d@example.com", time.Now().UnixNano())
	signup := fmt.Sprintf(`{"organization":"Smuggled","email":%q,"password":"smuggled password 1"}`, email)
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(signup), signup)
	second := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", h.hostHeader())

	t.Run("chunked and Content-Length", func(t *testing.T) {
		c := h.dial(t)
		c.send(t, fmt.Sprintf("POST /v1/signup HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n%s%s",
			h.hostHeader(), len(chunked), chunked, second))
		r := c.response(t)
		sameShape(t, r, app, http.StatusLengthRequired, "length_required")
		if !strings.EqualFold(r.header.Get("Connection"), "close") {
			t.Errorf("no Connection: close: %v", r.header)
		}
		c.closed(t)
		// The sign-up in the refused body did not happen: the email is
		// free for another password.
		r = h.do(t, "POST", "/v1/signup", strings.NewReader(fmt.Sprintf(`{"organization":"Real","email":%q,"password":"another password 2"}`, email)),
			"Content-Type", "application/json")
		if r.status != 201 {
			t.Fatalf("the refused request's sign-up took effect: %v", r)
		}
	})
	for name, te := range map[string]string{
		"chunked alone":         "Transfer-Encoding: chunked\r\n",
		"an unknown coding":     "Transfer-Encoding: gzip, chunked\r\n",
		"two Transfer-Encoding": "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := h.dial(t)
			c.send(t, fmt.Sprintf("POST /v1/signup HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s\r\n%s%s", h.hostHeader(), te, chunked, second))
			r := c.response(t)
			sameShape(t, r, app, http.StatusLengthRequired, "length_required")
			c.closed(t)
		})
	}
	t.Run("HTTP/1.0 with Transfer-Encoding", func(t *testing.T) {
		// net/http ignores Transfer-Encoding in HTTP/1.0 and frames by
		// Content-Length; the connection must still end after it.
		c := h.dial(t)
		c.send(t, fmt.Sprintf("GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n%s", h.hostHeader(), second))
		c.response(t)
		c.closed(t)
	})
	t.Run("two different Content-Length", func(t *testing.T) {
		c := h.dial(t)
		c.send(t, fmt.Sprintf("POST /v1/signup HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}%s", h.hostHeader(), second))
		sameShape(t, c.response(t), app, http.StatusBadRequest, "bad_request")
		c.closed(t)
	})
	t.Run("a plain keep-alive connection still serves a second request", func(t *testing.T) {
		c := h.dial(t)
		c.send(t, second+second)
		for range 2 {
			if r := c.response(t); r.status != 200 {
				t.Fatalf("%v", r)
			}
		}
	})
}

// TestHostErrorsHaveTheAPIShape: what the server answers by itself, before
// the guest runs or before any handler does, has the JSON error body and the
// application's header set.
func TestHostErrorsHaveTheAPIShape(t *testing.T) {
	h := startHome(t, homeOptions{pool: 2})
	app := appError(t, h)
	host := h.hostHeader()
	for _, tc := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"oversized header block",
			fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", host, strings.Repeat("a", hostMaxHeader()+8<<10)),
			http.StatusRequestHeaderFieldsTooLarge, "headers_too_large"},
		{"malformed header line",
			fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nNo colon here\r\n\r\n", host), http.StatusBadRequest, "bad_request"},
		{"bad Host", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", http.StatusBadRequest, "bad_request"},
		{"no Host", "GET /healthz HTTP/1.1\r\n\r\n", http.StatusBadRequest, "bad_request"},
		{"bad request line", "GARBAGE\r\n\r\n", http.StatusBadRequest, "bad_request"},
		{"unsupported version", fmt.Sprintf("GET /healthz HTTP/2.0\r\nHost: %s\r\n\r\n", host), http.StatusHTTPVersionNotSupported, "http_version_not_supported"},
		{"unknown expectation", fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nExpect: teapot\r\n\r\n", host), http.StatusExpectationFailed, "expectation_failed"},
		{"body over the limit", fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", attachmentPath("c_x", "m_x"), host, handlers.MaxRequestBody+1),
			http.StatusRequestEntityTooLarge, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.host.Stats().Requests
			c := h.dial(t)
			c.send(t, tc.req)
			sameShape(t, c.response(t), app, tc.status, tc.code)
			c.closed(t)
			if h.host.Stats().Requests != before {
				t.Error("the guest ran")
			}
		})
	}
	t.Run("after a response on a kept-alive connection", func(t *testing.T) {
		// Both in one write: the second is refused by net/http right
		// after the first was answered by the guest.
		c := h.dial(t)
		c.send(t, fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\nGET /healthz HTTP/1.1\r\nHost: %s\r\nNo colon here\r\n\r\n", host, host))
		if r := c.response(t); r.status != 200 {
			t.Fatalf("first: %v", r)
		}
		sameShape(t, c.response(t), app, http.StatusBadRequest, "bad_request")
		c.closed(t)
	})
}

// hostMaxHeader is the server's header limit as net/http applies it.
func hostMaxHeader() int { return host.DefaultMaxHeaderBytes + 4<<10 }

// TestHostStatusesMeanWhatTheDocsSay: a guest stopped past its deadline
// gets 504 (it ran, so it may have changed something); a request no guest
// could take gets 503 with Retry-After, and the guest never ran for it.
func TestHostStatusesMeanWhatTheDocsSay(t *testing.T) {
	// The queue wait is longer than the deadline, so the waiting request
	// meets its deadline (busy) before admission control sheds it
	// (overloaded, tests/e2e/overload_test.go).
	h := startHome(t, homeOptions{pool: 2, timeout: 2 * time.Second, queueWait: 10 * time.Second})
	app := appError(t, h)
	before := h.host.Stats()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// /__test/spin ignores its context: only the host stops it.
			r := h.get(t, "/__test/spin?ms=60000")
			sameShape(t, r, app, http.StatusGatewayTimeout, "timeout")
			if !strings.Contains(string(r.body), "may or may not have taken effect") {
				t.Errorf("a 504 must not promise that nothing changed: %s", r.body)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // let both take an instance; not a measure
	r := h.get(t, "/healthz")
	sameShape(t, r, app, http.StatusServiceUnavailable, "busy")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	wg.Wait()
	if s := h.host.Stats(); s.Requests != before.Requests+2 {
		t.Errorf("the guest ran %d requests, want the 2 spins only (not the 503)", s.Requests-before.Requests)
	}
}
