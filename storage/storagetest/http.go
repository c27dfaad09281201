package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"pommy.ai/edge/storage"
)

// Echo is what EchoHandler reports about a request it received.
type Echo struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Headers map[string][]string `json:"headers"`
	Length  int64               `json:"length"`
	SHA256  string              `json:"sha256"`
	Body    string              `json:"body"` // base64, first 64 KiB
}

const (
	echoMaxBody    = 64 << 10
	echoChunk      = 32 << 10
	echoHoldWait   = 20 * time.Second
	echoHangWait   = 60 * time.Second
	echoTimeoutTag = "ECHO-HOLD-TIMED-OUT"
)

// EchoHandler returns the loopback server that HTTPSuite talks to. The test
// harness of each home serves it (httptest.NewServer in go test; a listener
// on 127.0.0.1 that the worker's fetch can reach for the edge) and passes its
// URL to HTTPSuite.
//
// By default it answers 200 with a JSON Echo of the request. Query
// parameters change that:
//
//	status=N           answer with status N
//	header=Name:Value  add a response header (repeatable)
//	redirect=PATH      answer 302 with Location PATH
//	stream=N           answer N bytes of a deterministic pattern, in flushed chunks
//	hold=ID            answer one chunk, flush, and wait until a request with
//	                   release=ID arrives before finishing (proves streaming)
//	release=ID         release a held response
//	hang=1             flush the headers and then wait for the client to go away
func EchoHandler() http.Handler { return newEchoHandler(echoHoldWait) }

func newEchoHandler(holdWait time.Duration) *echoHandler {
	return &echoHandler{holds: map[string]chan struct{}{}, holdWait: holdWait}
}

type echoHandler struct {
	mu       sync.Mutex
	holds    map[string]chan struct{}
	holdWait time.Duration
}

func (e *echoHandler) hold(id string) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.holds[id]
	if !ok {
		ch = make(chan struct{})
		e.holds[id] = ch
	}
	return ch
}

func (e *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, h := range q["header"] {
		if name, value, ok := strings.Cut(h, ":"); ok {
			w.Header().Add(name, value)
		}
	}
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	switch {
	case q.Get("release") != "":
		ch := e.hold(q.Get("release"))
		e.mu.Lock()
		select {
		case <-ch:
		default:
			close(ch)
		}
		e.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case q.Get("redirect") != "":
		http.Redirect(w, r, q.Get("redirect"), http.StatusFound)
		return
	case q.Get("stream") != "":
		n, err := strconv.ParseInt(q.Get("stream"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad stream", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		buf := make([]byte, echoChunk)
		p := newPattern("http-stream", n)
		for {
			k, _ := io.ReadFull(p, buf)
			if k == 0 {
				return
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			flush()
		}
	case q.Get("hold") != "":
		ch := e.hold(q.Get("hold"))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.Write(patternBytes("hold-1", echoChunk))
		flush()
		select {
		case <-ch:
			w.Write(patternBytes("hold-2", echoChunk))
		case <-time.After(e.holdWait):
			w.Write([]byte(echoTimeoutTag))
		case <-r.Context().Done():
		}
		return
	case q.Get("hang") != "":
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		flush()
		select {
		case <-r.Context().Done():
		case <-time.After(echoHangWait):
		}
		return
	}

	h := sha256.New()
	var head bytes.Buffer
	n, _ := io.Copy(io.MultiWriter(h, &limitedBuffer{&head, echoMaxBody}), r.Body)
	hdr := map[string][]string{}
	for k, v := range r.Header {
		hdr[strings.ToLower(k)] = v
	}
	out := Echo{
		Method:  r.Method,
		Path:    r.URL.Path,
		Query:   r.URL.RawQuery,
		Headers: hdr,
		Length:  n,
		SHA256:  hex.EncodeToString(h.Sum(nil)),
		Body:    base64.StdEncoding.EncodeToString(head.Bytes()),
	}
	status := http.StatusOK
	if s := q.Get("status"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v >= 200 && v <= 599 {
			status = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status != http.StatusNoContent && status != http.StatusNotModified && r.Method != http.MethodHead {
		json.NewEncoder(w).Encode(out)
	}
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

// HTTPSuite is the contract of storage.HTTPDoer. url is the base URL of a
// server running EchoHandler that the adapter is allowed to reach.
func HTTPSuite(h storage.HTTPDoer, url string) Suite {
	s := &httpSuite{h: h, base: strings.TrimRight(url, "/")}
	return Suite{Name: "HTTP", Cases: []Case{
		{"GetHeadersQuery", s.get},
		{"PostBinaryBody", s.post},
		{"StreamedRequestBody", s.streamedUpload},
		{"Methods", s.methods},
		{"StatusCodesAreNotErrors", s.statuses},
		{"ResponseHeaders", s.responseHeaders},
		{"LargeResponse", s.largeResponse},
		{"ResponseIsStreamed", s.streamed},
		{"RedirectFollowed", s.redirect},
		{"CancelledContext", s.cancelled},
		{"CancelWhileReadingBody", s.cancelDuringBody},
	}}
}

type httpSuite struct {
	h    storage.HTTPDoer
	base string
}

func (s *httpSuite) do(t T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := s.h.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp == nil || resp.Body == nil {
		t.Fatalf("%s %s: nil response or body with nil error", req.Method, req.URL)
	}
	return resp
}

func (s *httpSuite) echo(t T, req *http.Request) (*http.Response, Echo) {
	t.Helper()
	resp := s.do(t, req)
	defer resp.Body.Close()
	var e Echo
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("decode echo (status %d): %v: %q", resp.StatusCode, err, short(body))
	}
	return resp, e
}

func (s *httpSuite) newReq(t T, ctx context.Context, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	return req
}

func (s *httpSuite) get(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	req := s.newReq(t, ctx, "GET", "/some/path?x=1&y=%C3%A9", nil)
	req.Header.Set("X-Pommy-Test", "value with spaces")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, e := s.echo(t, req)
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
	if e.Method != "GET" || e.Path != "/some/path" || e.Query != "x=1&y=%C3%A9" {
		t.Errorf("server saw %s %s?%s", e.Method, e.Path, e.Query)
	}
	if got := e.Headers["x-pommy-test"]; len(got) != 1 || got[0] != "value with spaces" {
		t.Errorf("X-Pommy-Test arrived as %q", got)
	}
	if got := strings.Join(e.Headers["x-multi"], ","); got != "one,two" && got != "one, two" {
		t.Errorf("X-Multi arrived as %q, want both values in order", e.Headers["x-multi"])
	}
	if got := e.Headers["authorization"]; len(got) != 1 || got[0] != "Bearer t0ken" {
		t.Errorf("Authorization arrived as %q", got)
	}
	if e.Length != 0 {
		t.Errorf("GET carried a %d-byte body", e.Length)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("response Content-Type %q", ct)
	}
}

func (s *httpSuite) post(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	body := make([]byte, 40000)
	for i := range body {
		body[i] = byte(i % 251)
	}
	req := s.newReq(t, ctx, "POST", "/upload", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	_, e := s.echo(t, req)
	sum := sha256.Sum256(body)
	if e.Method != "POST" || e.Length != int64(len(body)) || e.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("server saw %s with %d bytes (sha256 %.12s), want POST with %d bytes (%.12x)", e.Method, e.Length, e.SHA256, len(body), sum)
	}
	if got := e.Headers["content-type"]; len(got) != 1 || got[0] != "application/octet-stream" {
		t.Errorf("Content-Type arrived as %q", got)
	}
	// A JSON body, as AI providers get.
	js := `{"model":"m","messages":[{"role":"user","content":"héllo 🎉"}]}`
	req = s.newReq(t, ctx, "POST", "/v1/chat", strings.NewReader(js))
	req.Header.Set("Content-Type", "application/json")
	_, e = s.echo(t, req)
	got, _ := base64.StdEncoding.DecodeString(e.Body)
	if string(got) != js {
		t.Errorf("JSON body arrived as %q", got)
	}
}

func (s *httpSuite) streamedUpload(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	const n = 3<<20 + 7
	req := s.newReq(t, ctx, "PUT", "/stream-up", onlyReader{newPattern("upload", n)})
	req.ContentLength = -1
	_, e := s.echo(t, req)
	if e.Length != n || e.SHA256 != patternSum("upload", n) {
		t.Errorf("server got %d bytes (sha256 %.12s), want %d (%.12s)", e.Length, e.SHA256, n, patternSum("upload", n))
	}
}

func (s *httpSuite) methods(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	for _, m := range []string{"PUT", "PATCH", "DELETE", "OPTIONS"} {
		req := s.newReq(t, ctx, m, "/m", strings.NewReader("payload-"+m))
		_, e := s.echo(t, req)
		if e.Method != m {
			t.Errorf("sent %s, server saw %s", m, e.Method)
		}
		if m != "OPTIONS" && e.Length != int64(len("payload-"+m)) {
			t.Errorf("%s body arrived with %d bytes", m, e.Length)
		}
	}
	resp := s.do(t, s.newReq(t, ctx, "HEAD", "/head", nil))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Errorf("HEAD: status %d with %d body bytes", resp.StatusCode, len(b))
	}
}

func (s *httpSuite) statuses(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	for _, code := range []int{200, 201, 202, 204, 400, 401, 403, 404, 409, 418, 429, 500, 502, 503} {
		resp := s.do(t, s.newReq(t, ctx, "GET", fmt.Sprintf("/status?status=%d", code), nil))
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("status %d arrived as %d", code, resp.StatusCode)
		}
	}
}

func (s *httpSuite) responseHeaders(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	resp := s.do(t, s.newReq(t, ctx, "GET", "/h?header=X-Custom:abc&header=Retry-After:30&header=X-Two:1&header=X-Two:2", nil))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Custom"); got != "abc" {
		t.Errorf("X-Custom = %q", got)
	}
	if got := resp.Header.Get("Retry-After"); got != "30" {
		t.Errorf("Retry-After = %q", got)
	}
	two := resp.Header.Values("X-Two")
	sort.Strings(two)
	if j := strings.Join(two, ","); j != "1,2" && j != "1, 2" {
		t.Errorf("X-Two = %q, want both values", two)
	}
}

func (s *httpSuite) largeResponse(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	const n = 8<<20 + 3
	resp := s.do(t, s.newReq(t, ctx, "GET", fmt.Sprintf("/big?stream=%d", n), nil))
	defer resp.Body.Close()
	h := sha256.New()
	got, err := io.CopyBuffer(h, resp.Body, make([]byte, 16<<10))
	if err != nil {
		t.Fatalf("read large body: %v", err)
	}
	if got != n || hex.EncodeToString(h.Sum(nil)) != patternSum("http-stream", n) {
		t.Errorf("large body: %d bytes (want %d) or content differs", got, n)
	}
}

// streamed proves the adapter hands the body over as it arrives: the server
// sends one chunk and then waits for a second request before it finishes.
// An adapter that buffers the whole response never returns from Do until
// the server gives up (after echoHoldWait) and the case fails.
func (s *httpSuite) streamed(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	id := randomHex(8)
	resp := s.do(t, s.newReq(t, ctx, "GET", "/hold?hold="+id, nil))
	defer resp.Body.Close()
	first := make([]byte, echoChunk)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("read first chunk: %v", err)
	}
	if !bytes.Equal(first, patternBytes("hold-1", echoChunk)) {
		t.Errorf("first chunk differs")
	}
	rel := s.do(t, s.newReq(t, ctx, "GET", "/release?release="+id, nil))
	io.Copy(io.Discard, rel.Body)
	rel.Body.Close()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read rest: %v", err)
	}
	if string(rest) == echoTimeoutTag {
		t.Fatalf("the adapter buffered the whole response: the first chunk only arrived after the server gave up waiting")
	}
	if !bytes.Equal(rest, patternBytes("hold-2", echoChunk)) {
		t.Errorf("second chunk differs (%d bytes)", len(rest))
	}
}

func (s *httpSuite) redirect(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	_, e := s.echo(t, s.newReq(t, ctx, "GET", "/from?redirect=/to/target", nil))
	if e.Path != "/to/target" {
		t.Errorf("redirect ended at %q, want /to/target", e.Path)
	}
}

func (s *httpSuite) cancelled(t T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := s.newReq(t, ctx, "GET", "/cancelled", nil)
	resp, err := s.h.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Errorf("request with a cancelled context succeeded")
	}
}

func (s *httpSuite) cancelDuringBody(t T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := s.do(t, s.newReq(t, ctx, "GET", "/hang?hang=1", nil))
	defer resp.Body.Close()
	first := make([]byte, len("partial"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("read first bytes: %v", err)
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("reading a body after its context was cancelled ended without an error")
		}
	case <-time.After(echoHangWait / 2):
		t.Errorf("reading a body did not stop when its context was cancelled")
	}
}
