package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
)

// net/http's own error responses, as server.go in Go 1.26 writes them on
// the connection (one Write each).
var cannedResponses = []string{
	"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large",
	"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nUnsupported transfer encoding",
	"HTTP/1.1 400 Bad Request: malformed Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: malformed Host header",
	"HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n505 HTTP Version Not Supported: unsupported protocol version",
	"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
	"HTTP/1.1 417 Expectation Failed\r\nConnection: close\r\nContent-Length: 0\r\nDate: Wed, 02 Dec 2026 05:00:00 GMT\r\n\r\n",
}

func testServer() *Server {
	return &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), maxHeader: DefaultMaxHeaderBytes}
}

// checkRewritten parses out as a response in the platform's shape.
func checkRewritten(t testing.TB, out []byte) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("the rewritten response does not parse: %v\n%q", err, out)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not the error shape: %q", body)
	}
	if resp.StatusCode < 400 || !resp.Close {
		t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
	}
	want := http.Header{}
	handlers.SecurityHeaders(want)
	for k := range want {
		if resp.Header.Get(k) != want.Get(k) {
			t.Fatalf("%s = %q", k, resp.Header.Get(k))
		}
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("headers %v", resp.Header)
	}
	return resp
}

func TestRewriteCannedResponses(t *testing.T) {
	s := testServer()
	want := []int{431, 411, 400, 505, 400, 417}
	for i, p := range cannedResponses {
		out, ok := s.rewrite([]byte(p), nil)
		if !ok {
			t.Fatalf("not rewritten: %q", p)
		}
		if resp := checkRewritten(t, out); resp.StatusCode != want[i] {
			t.Errorf("%q: status %d, want %d", p, resp.StatusCode, want[i])
		}
	}
	// What is not the whole head of an error response passes through.
	for _, p := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 400 Bad Request\r\nContent-Type: text/pl", // head cut short
		"0\r\n\r\n",
		"HTTP/1.1 4000 Bad\r\n\r\n",
		"HTTP/1.1 40x Bad\r\n\r\n",
		"",
	} {
		if _, ok := s.rewrite([]byte(p), nil); ok {
			t.Errorf("rewritten: %q", p)
		}
	}
}

// FuzzRewrite: whatever is written while no handler runs, the rewrite
// never panics, and what it makes is always a whole error response in the
// platform's shape.
func FuzzRewrite(f *testing.F) {
	for _, p := range cannedResponses {
		f.Add([]byte(p))
	}
	f.Add([]byte("HTTP/1.0 599 \r\n\r\n"))
	f.Add([]byte("HTTP/1.1 400 Bad Request: <script>\r\n\r\n"))
	s := testServer()
	f.Fuzz(func(t *testing.T, p []byte) {
		out, ok := s.rewrite(p, nil)
		if !ok {
			return
		}
		checkRewritten(t, out)
		if bytes.Contains(out, []byte("<")) {
			t.Fatalf("echoed markup: %q", out)
		}
	})
}

// readBodyOf runs readBody on a request whose body is n bytes.
func readBodyOf(t *testing.T, h *Host, n int) (*requestBody, error) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", n)))
	b, err := h.readBody(w, http.NewResponseController(w), r, time.Now().Add(time.Minute))
	t.Cleanup(b.release)
	return b, err
}

// TestPreReadLimit: a body of PreReadLimit bytes is read whole before an
// instance is taken; one byte more, and the rest streams.
func TestPreReadLimit(t *testing.T) {
	h := &Host{opts: Options{MaxBody: 4 * PreReadLimit, BodyReadTimeout: time.Minute, PreReadMemory: DefaultPreReadMemory}}
	for _, n := range []int{1, PreReadLimit - 1, PreReadLimit, PreReadLimit + 1, 3 * PreReadLimit} {
		b, err := readBodyOf(t, h, n)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if streams := b.rest != nil; streams != (n > PreReadLimit) {
			t.Errorf("%d bytes: streams %v", n, streams)
		}
		if len(b.buf) != min(n, PreReadLimit) {
			t.Errorf("%d bytes: %d read ahead", n, len(b.buf))
		}
		all, err := io.ReadAll(b.reader())
		if err != nil || len(all) != n {
			t.Errorf("%d bytes: the guest would read %d, %v", n, len(all), err)
		}
	}
}

// TestPreReadMemory: past Options.PreReadMemory, held across requests, a
// body is refused; memory comes back when a request ends.
func TestPreReadMemory(t *testing.T) {
	const budget = 256 << 10
	h := &Host{opts: Options{MaxBody: PreReadLimit, BodyReadTimeout: time.Minute, PreReadMemory: budget}}
	first, err := readBodyOf(t, h, 200<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readBodyOf(t, h, 100<<10); err != errNoMemory {
		t.Fatalf("over the budget: %v", err)
	}
	first.release()
	if _, err := readBodyOf(t, h, 100<<10); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// A client that declares a body and sends little holds little.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/", strings.NewReader("tiny"))
	r.ContentLength = PreReadLimit
	b, err := h.readBody(w, http.NewResponseController(w), r, time.Now().Add(time.Minute))
	if err != io.ErrUnexpectedEOF || b.held > 16<<10 {
		t.Fatalf("held %d bytes for 4 (%v)", b.held, err)
	}
	b.release()
}

// TestServerAnswersHTTP10Once: an HTTP/1.0 request never keeps its
// connection, even when it asks to.
func TestServerAnswersHTTP10Once(t *testing.T) {
	f := start(t, Options{Pool: 1})
	c, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /rand HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("status %d, close %v", resp.StatusCode, resp.Close)
	}
}
