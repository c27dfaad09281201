package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"

	"pommy.ai/edge/wasm/abi"
)

// handle serves the request the host is holding: it pulls the head, runs
// the application with a ResponseWriter whose bytes go straight back to the
// host, and turns a panic into ResultCrashed so the host throws the
// instance away (a panic can leave locks held and caches half-built).
func handle(c *client) (result int32) {
	var head abi.RequestHead
	if err := c.do(abi.OpRequestHead, &abi.RequestHeadReq{}, &head); err != nil {
		reportFail(c, fmt.Sprintf("reading the request head: %v", err))
		return abi.ResultCrashed
	}
	ctx, cancel := deadlineContext(head.Deadline)
	defer cancel()

	w := &responseWriter{c: c, header: http.Header{}}
	req, err := buildRequest(ctx, c, &head)
	if err != nil {
		// The host's server parsed this request; if we cannot, say so
		// rather than guess.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"code":"bad_request","message":%q}}`, err.Error())
		w.finish()
		return abi.ResultOK
	}

	defer func() {
		if v := recover(); v != nil {
			reportFail(c, fmt.Sprintf("panic serving %s %s: %v\n%s", head.Method, req.URL.Path, v, debug.Stack()))
			result = abi.ResultCrashed
		}
	}()
	app(c).ServeHTTP(w, req)
	w.finish()
	return abi.ResultOK
}

// scheduled runs the application's periodic work within this one export.
func scheduled(c *client) (result int32) {
	var head abi.RequestHead
	if err := c.do(abi.OpRequestHead, &abi.RequestHeadReq{}, &head); err != nil {
		reportFail(c, fmt.Sprintf("reading the invocation head: %v", err))
		return abi.ResultCrashed
	}
	ctx, cancel := deadlineContext(head.Deadline)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			reportFail(c, fmt.Sprintf("panic in scheduled work: %v\n%s", v, debug.Stack()))
			result = abi.ResultCrashed
		}
	}()
	if err := runScheduled(ctx, c, head.Method); err != nil {
		reportFail(c, err.Error())
		return abi.ResultFailed
	}
	return abi.ResultOK
}

func reportFail(c *client, msg string) { c.do(abi.OpFail, &abi.FailReq{Message: msg}, &abi.Empty{}) }

// deadlineContext makes the host's deadline the context's, so handlers see
// it through Request.Context() and stop in time. The guest's clock is the
// host's real wall clock (WASI), so the two agree.
func deadlineContext(deadline int64) (context.Context, context.CancelFunc) {
	if deadline == 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), time.Unix(0, deadline))
}

func buildRequest(ctx context.Context, c *client, h *abi.RequestHead) (*http.Request, error) {
	u, err := url.ParseRequestURI(h.RequestURI)
	if err != nil {
		return nil, fmt.Errorf("bad request URI: %v", err)
	}
	major, minor, ok := http.ParseHTTPVersion(h.Proto)
	if !ok {
		major, minor = 1, 1
	}
	r := &http.Request{
		Method:        h.Method,
		URL:           u,
		Proto:         h.Proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        h.Header,
		ContentLength: h.ContentLength,
		Host:          h.Host,
		RemoteAddr:    h.RemoteAddr,
		RequestURI:    h.RequestURI,
		Body:          http.NoBody,
	}
	if h.Header == nil {
		r.Header = http.Header{}
	}
	if h.TLS {
		// The host terminated TLS; the details stay there. Handlers
		// only ask whether the request was secure.
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	if h.Body != 0 {
		r.Body = &bodyReader{s: stream{c: c, ctx: ctx, handle: h.Body}, limit: h.MaxBody}
	}
	return r.WithContext(ctx), nil
}

// bodyReader enforces the body limit in the guest too, so the application
// sees the same *http.MaxBytesError as under net/http whichever side notices
// first. The stream is a field, not embedded, so that its WriteTo (which
// would bypass the limit) is not promoted.
type bodyReader struct {
	s        stream
	limit, n int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.s.Read(p)
	b.n += int64(n)
	var e *abi.Error
	if errors.As(err, &e) && e.Code == abi.CodeTooLarge || b.limit > 0 && b.n > b.limit {
		b.s.err = &http.MaxBytesError{Limit: b.limit}
		return 0, b.s.err
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.s.Close() }

// responseWriter sends the response to the host: the head (with the first
// bytes of the body) when the handler first writes or flushes, then the body
// in chunks. A response that fits the buffer costs a single call.
type responseWriter struct {
	c      *client
	header http.Header
	status int         // set by WriteHeader
	frozen http.Header // header as of WriteHeader, as net/http does
	sent   bool        // the head has gone to the host
	buf    []byte
	err    error // the first failure (the client went away): later writes fail fast
}

const writeChunk = 64 << 10

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		// A superfluous call, or an informational status, which this
		// home does not forward.
		return
	}
	w.status = code
	w.frozen = w.header.Clone()
}

func (w *responseWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if len(w.buf) == 0 && len(p) >= writeChunk {
		// A large write (a blob streamed by io.Copy) goes out as it is,
		// in pieces a message can carry: buffering it would only copy it.
		for len(p) > 0 && w.err == nil {
			k := min(len(p), abi.MaxChunk)
			w.sendData(p[:k], false, false)
			p = p[k:]
		}
		if w.err != nil {
			return 0, w.err
		}
		return n, nil
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= writeChunk {
		w.send(false, false)
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *responseWriter) WriteString(s string) (int, error) {
	return w.Write([]byte(s))
}

// Flush implements http.Flusher (server-sent events).
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.send(true, false)
}

// finish sends whatever is left once the handler has returned.
func (w *responseWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent || len(w.buf) > 0 {
		w.send(false, true)
	}
}

func (w *responseWriter) send(flush, final bool) {
	w.sendData(w.buf, flush, final)
	w.buf = w.buf[:0]
}

// sendData sends data as the head's first body bytes or as the next part
// of the body.
func (w *responseWriter) sendData(data []byte, flush, final bool) {
	if w.err != nil {
		return
	}
	var err error
	if !w.sent {
		h := w.frozen
		if h.Get("Content-Type") == "" && len(data) > 0 && h.Get("Transfer-Encoding") == "" {
			h.Set("Content-Type", http.DetectContentType(data[:min(len(data), 512)]))
		}
		w.sent = true
		err = w.c.do(abi.OpResponseHead, &abi.ResponseHead{Status: w.status, Header: h, Body: data, Flush: flush, Final: final}, &abi.Empty{})
	} else if len(data) > 0 || flush {
		err = w.c.do(abi.OpResponseWrite, &abi.ResponseWrite{Data: data, Flush: flush}, &abi.Empty{})
	}
	if err != nil {
		w.err = err
	}
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

var _ io.ReadCloser = (*bodyReader)(nil)
