package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// The hand-off of a stream request from the guest to the hub
// (docs/realtime.md §2). The guest's answer to a request is captured
// rather than sent when it carries Pommy-Stream-Topic; once the guest call
// has ended (and its instance is back in the pool), serveStream decides:
// an SSE answer becomes a held stream, a long-poll answer without events
// waits for a wake-up, and anything malformed is sent as an ordinary,
// finished response.

// answer is a guest's answer captured whole: a stream request's first
// answer, or a poll's.
type answer struct {
	status int
	header http.Header
	body   []byte
	over   bool // the body went over maxStreamAnswer
}

func (a *answer) add(p []byte) error {
	if len(a.body)+len(p) > maxStreamAnswer {
		a.over = true
		return fmt.Errorf("%w: a stream answer over %d bytes", storage.ErrInvalid, maxStreamAnswer)
	}
	a.body = append(a.body, p...)
	return nil
}

// captureHead starts capturing the answer whose head is m; it reports
// false for an answer that is sent as usual.
func (inv *invocation) captureHead(m *abi.ResponseHead) (bool, error) {
	if inv.capture == nil {
		if inv.h.hub == nil || len(m.Header[storage.StreamTopicHeader]) == 0 {
			return false, nil
		}
		inv.capture = &answer{}
	}
	a := inv.capture
	a.status = m.Status
	a.header = make(http.Header, len(m.Header))
	for name, values := range m.Header {
		if !validHeaderName(name) {
			continue
		}
		for _, v := range values {
			if validHeaderValue(v) {
				a.header.Add(name, v)
			}
		}
	}
	return true, a.add(m.Body)
}

// serveStream answers a request whose guest answer was captured. The
// instance is back in the pool by now. It reports whether the hub took
// the connection (hijacked it).
func (h *Host) serveStream(w http.ResponseWriter, r *http.Request, a *answer, from uint64, id string) (hijacked bool) {
	if a.over {
		h.log.Error("a stream answer was too large", "request", id, "path", r.URL.Path, "limit", maxStreamAnswer)
		handlers.WriteHomeError(w, id, http.StatusInternalServerError, "internal", "internal error")
		return false
	}
	topic := a.header.Get(storage.StreamTopicHeader)
	mode := a.header.Get(storage.StreamModeHeader)
	cursor, cursorOK := parseCursor(a.header.Get(storage.StreamCursorHeader))
	more := a.header.Get(storage.StreamMoreHeader) == "1"
	wait := parseWait(a.header.Get(storage.StreamWaitHeader))
	stripStreamHeaders(a.header)
	if a.status != http.StatusOK {
		writeAnswer(w, r, a)
		return false
	}
	// A HEAD of a stream route gets the head of its answer, unheld. A
	// malformed hand-off is the application's bug: it is logged and
	// answered 500, as the edge's stream holder does, never held in a
	// state the hub does not understand.
	_, framesOK := sseFrames(a.body)
	var bug string
	switch {
	case r.Method == http.MethodHead:
		writeAnswer(w, r, a)
		return false
	case r.Method != http.MethodGet:
		bug = "stream answer to a request that is neither GET nor HEAD"
	case !storage.ValidTopic(topic) || !cursorOK:
		bug = "stream answer with a malformed topic or cursor"
	case mode == storage.StreamModeSSE && !framesOK:
		bug = "SSE stream answer that is not whole frames"
	case mode == storage.StreamModeSSE:
		return h.holdSSE(w, r, a, topic, cursor, more, from, id)
	case mode == storage.StreamModeLongPoll:
		h.holdLongPoll(w, r, a, topic, cursor, more, wait, from, id)
		return false
	default:
		bug = "stream answer with an unknown mode"
	}
	h.log.Error(bug+"; not held", "request", id, "method", r.Method, "path", r.URL.Path, "mode", mode)
	handlers.WriteHomeError(w, id, http.StatusInternalServerError, "internal", "internal error")
	return false
}

// writeAnswer sends a captured answer as an ordinary response.
func writeAnswer(w http.ResponseWriter, r *http.Request, a *answer) {
	dst := w.Header()
	for name, values := range a.header {
		dst[name] = values
	}
	if r.Method != http.MethodHead && a.status != http.StatusNoContent && a.status != http.StatusNotModified {
		dst.Set("Content-Length", strconv.Itoa(len(a.body)))
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// ---- held requests and polls ----

// heldRequest is what a poll re-runs: the stream request's method, URL and
// headers (credentials included), without its body (streams are GETs).
type heldRequest struct {
	uri, host, proto, remote string
	url                      *url.URL
	header                   http.Header
}

func holdRequest(r *http.Request) heldRequest {
	hdr := r.Header.Clone()
	// Each poll is a request of its own, with an id of its own.
	hdr.Del("X-Request-Id")
	hdr.Del("Last-Event-Id")
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	return heldRequest{uri: uri, host: r.Host, proto: r.Proto, remote: r.RemoteAddr, url: r.URL, header: hdr}
}

// request is the poll's request: the held one plus Pommy-Stream-Poll and,
// for SSE, Last-Event-ID at the stream's cursor.
func (q *heldRequest) request(lastEventID string) *http.Request {
	hdr := q.header.Clone()
	hdr.Set(storage.StreamPollHeader, "1")
	if lastEventID != "" {
		hdr.Set("Last-Event-ID", lastEventID)
	}
	return &http.Request{Method: http.MethodGet, RequestURI: q.uri, URL: q.url, Host: q.host,
		Proto: q.proto, Header: hdr, RemoteAddr: q.remote, Body: http.NoBody}
}

var (
	errPollTimeout = errors.New("host: the stream's poll did not finish before its deadline")
	errPollCrashed = errors.New("host: the guest crashed in the stream's poll")
)

// invokeStream runs a poll through the guest: an ordinary request with
// its own deadline, through the pool and its admission control, whose
// answer is captured.
func (h *Host) invokeStream(r *http.Request) (*answer, error) {
	select {
	case <-h.closed:
		return nil, ErrClosed
	default:
	}
	id := handlers.RequestID(r)
	deadline := time.Now().Add(h.opts.Timeout)
	inv := h.newInvocation(context.Background(), id, deadline)
	inv.r = r
	inv.capture = &answer{}
	inst, err := h.pool.acquire(inv.ctx)
	if err != nil {
		inv.cleanup()
		return nil, err
	}
	result, callErr, killed := h.run(inst, inst.handle, inv)
	h.stats.requests.Add(1)
	switch {
	case killed:
		h.stats.timeouts.Add(1)
		h.stats.killed.Add(1)
		h.log.Error("guest killed at its deadline in a stream poll", "request", id, "instance", inst.id, "path", r.URL.Path)
		return nil, errPollTimeout
	case callErr != nil || result != abi.ResultOK || inst.broken:
		h.stats.traps.Add(1)
		h.log.Error("guest crashed in a stream poll; instance discarded", "request", id, "instance", inst.id,
			"path", r.URL.Path, "err", callErr, "result", result, "abi_misuse", inst.broken, "guest_report", inv.fail)
		return nil, errPollCrashed
	case !inv.headSent && time.Now().After(deadline):
		h.stats.timeouts.Add(1)
		return nil, errPollTimeout
	case !inv.headSent:
		h.log.Error("guest returned without a response to a stream poll", "request", id, "instance", inst.id)
		return nil, errPollCrashed
	case inv.capture.over:
		h.log.Error("a stream poll's answer was too large", "request", id, "path", r.URL.Path, "limit", maxStreamAnswer)
		return nil, errPollCrashed
	}
	return inv.capture, nil
}

// ---- SSE ----

// stream is a held SSE stream.
type stream struct {
	hb     *hub
	topic  string
	req    heldRequest
	cursor int64 // read and written only by the stream's poll (one at a time)
	conn   streamConn

	// Poll state, under hb.mu (hub.schedule).
	queued, polling, dirty, gone bool
	// pollOnDrain: the next page waits until the backlog is written.
	pollOnDrain atomic.Bool

	// The write side, under wmu. out holds framed bytes not yet written;
	// one short-lived goroutine (flush) writes while there are some.
	wmu     sync.Mutex
	out     []byte
	writing bool
	ending  bool // the last bytes are queued: close once they are out
	closed  bool
	beat    *time.Timer

	released atomic.Bool
}

// pollOutcome tells the hub what a stream needs after a poll.
type pollOutcome int

const (
	pollDone       pollOutcome = iota // wait for the next wake-up
	pollMore                          // more events remain: poll again now
	pollAfterDrain                    // more remain, once the backlog is written
	pollLater                         // the poll was refused by admission control: retry shortly
)

func (h *Host) holdSSE(w http.ResponseWriter, r *http.Request, a *answer, topic string, cursor int64, more bool, from uint64, id string) (hijacked bool) {
	hb := h.hub
	if !hb.admit() {
		// The head is not out yet, but an SSE client (EventSource) only
		// reads errors from the stream, so the refusal is one.
		h.log.Warn("stream refused: too many streams", "request", id, "max", hb.maxStreams)
		hdr := w.Header()
		for name, values := range a.header {
			hdr[name] = values
		}
		hdr.Del("Content-Length")
		hdr.Set("Connection", "close")
		w.WriteHeader(http.StatusOK)
		w.Write(homeErrorFrame("too_many_streams", fmt.Sprintf("this server holds at most %d streams; retry shortly", hb.maxStreams)))
		return false
	}
	s := &stream{hb: hb, topic: topic, req: holdRequest(r), cursor: cursor}
	conn, head, err := takeConn(w, r, a)
	if err != nil {
		hb.release(topic, s)
		h.log.Warn("stream not held: taking the connection", "request", id, "err", err)
		panic(http.ErrAbortHandler)
	}
	s.conn = conn
	_, hijacked = conn.(*hijackConn)
	// The head and the first answer go out in the handler's goroutine;
	// a client that does not take them within the write timeout is cut.
	if err := conn.write(conn.frame(head, a.body)); err != nil {
		hb.stats.cut.Add(1)
		hb.release(topic, s)
		conn.close(false)
		return hijacked
	}
	ok, woken := hb.subscribe(topic, s, from)
	if !ok {
		s.end(nil)
		conn.wait()
		return hijacked
	}
	s.wmu.Lock()
	s.beat = time.AfterFunc(hb.heartbeat, s.ping)
	s.wmu.Unlock()
	if woken || more {
		hb.mu.Lock()
		hb.schedule(s)
		hb.mu.Unlock()
	}
	conn.wait()
	return hijacked
}

// wake is a wake-up of the stream's topic (hb.mu held).
func (s *stream) wake() { s.hb.schedule(s) }

// poll re-runs the stream's request from its cursor and sends what it
// answers.
func (s *stream) poll() pollOutcome {
	hb := s.hb
	// A client that left costs no guest call (nor a place in the cap
	// until its next write fails).
	if !s.conn.alive() {
		s.cut()
		return pollDone
	}
	hb.stats.polls.Add(1)
	a, err := hb.h.invokeStream(s.req.request(strconv.FormatInt(s.cursor, 10)))
	switch {
	case errors.Is(err, ErrClosed):
		s.end(nil)
		return pollDone
	case errors.Is(err, errOverloaded), errors.Is(err, errBusy):
		hb.stats.pollRetries.Add(1)
		return pollLater
	case errors.Is(err, errPollTimeout):
		s.end(homeErrorFrame("timeout", timeoutMessage(hb.h.opts.Timeout)))
		return pollDone
	case err != nil:
		s.end(homeErrorFrame("internal", "internal error"))
		return pollDone
	}
	if a.status != http.StatusOK {
		s.end(errorFrame(a.status, a.body))
		return pollDone
	}
	cursor, ok := parseCursor(a.header.Get(storage.StreamCursorHeader))
	if _, framed := sseFrames(a.body); !ok || !framed || cursor < s.cursor {
		hb.h.log.Error("a stream poll's answer is malformed (cursor or frames); stream ended", "path", s.req.url.Path,
			"cursor", a.header.Get(storage.StreamCursorHeader), "previous", s.cursor)
		s.end(homeErrorFrame("internal", "internal error"))
		return pollDone
	}
	advanced := cursor > s.cursor
	s.cursor = cursor
	backlog := s.send(a.body)
	if a.header.Get(storage.StreamMoreHeader) != "1" || !advanced {
		// More without progress would poll forever.
		return pollDone
	}
	if backlog > streamPollBackpressure {
		return pollAfterDrain
	}
	return pollMore
}

// ping sends the heartbeat and sets the next one.
func (s *stream) ping() {
	if !s.conn.alive() {
		s.cut()
		return
	}
	s.send(pingFrame(time.Now()))
	s.wmu.Lock()
	if !s.closed && !s.ending {
		s.beat.Reset(s.hb.heartbeat)
	}
	s.wmu.Unlock()
}

// send queues p for the client and returns the bytes now waiting.
func (s *stream) send(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	s.wmu.Lock()
	if s.closed || s.ending {
		s.wmu.Unlock()
		return 0
	}
	s.out = s.conn.frame(s.out, p)
	n := len(s.out)
	if n > maxStreamBacklog {
		s.wmu.Unlock()
		s.hb.h.log.Warn("stream cut: the client fell too far behind", "path", s.req.url.Path, "backlog", n)
		s.cut()
		return 0
	}
	s.kick()
	s.wmu.Unlock()
	return n
}

// kick starts the writer if it is not running (wmu held).
func (s *stream) kick() {
	if !s.writing {
		s.writing = true
		go s.flush()
	}
}

// flush writes what is queued until nothing is, then ends (closing the
// connection if the stream is ending).
func (s *stream) flush() {
	for {
		s.wmu.Lock()
		buf := s.out
		if len(buf) == 0 {
			s.writing = false
			ending := s.ending && !s.closed
			if ending {
				s.closed = true
			}
			s.wmu.Unlock()
			if ending {
				s.conn.close(true)
			} else if s.pollOnDrain.CompareAndSwap(true, false) {
				s.hb.mu.Lock()
				s.hb.schedule(s)
				s.hb.mu.Unlock()
			}
			return
		}
		s.out = nil
		s.wmu.Unlock()
		if err := s.conn.write(buf); err != nil {
			s.wmu.Lock()
			s.writing = false
			s.wmu.Unlock()
			s.cut()
			return
		}
	}
}

// end finishes the stream: it stops taking wake-ups at once, and its
// connection closes cleanly after last (an error frame, or nothing) and
// whatever was queued before it.
func (s *stream) end(last []byte) {
	s.release()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed || s.ending {
		return
	}
	if len(last) > 0 {
		s.out = s.conn.frame(s.out, last)
	}
	s.out = s.conn.final(s.out)
	s.ending = true
	s.kick()
}

// cut closes the stream's connection at once: its client is gone or too
// slow. It resumes from its cursor when it comes back.
func (s *stream) cut() {
	s.release()
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return
	}
	s.closed = true
	s.out = nil
	s.wmu.Unlock()
	s.hb.stats.cut.Add(1)
	s.conn.close(false)
}

// release takes the stream out of the hub, once.
func (s *stream) release() {
	if !s.released.CompareAndSwap(false, true) {
		return
	}
	s.hb.mu.Lock()
	s.gone = true
	s.hb.mu.Unlock()
	s.hb.release(s.topic, s)
	s.wmu.Lock()
	if s.beat != nil {
		s.beat.Stop()
	}
	s.wmu.Unlock()
}

// ---- connections ----

// streamConn is a held stream's connection: taken from net/http
// (hijacked), or, where it cannot be, the handler's ResponseWriter with
// the handler's goroutine waiting.
type streamConn interface {
	frame(dst, p []byte) []byte // appends p framed for the connection
	final(dst []byte) []byte    // appends the end of the body
	write(p []byte) error       // writes within streamWriteTimeout
	close(graceful bool)
	wait() // returns when the handler may return
	// alive reports, without blocking, that the client has not gone.
	alive() bool
}

// takeConn takes the connection for a held stream and returns the bytes
// that start its response (the head, for a hijacked connection).
func takeConn(w http.ResponseWriter, r *http.Request, a *answer) (streamConn, []byte, error) {
	hdr := a.header.Clone()
	for _, name := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Trailer"} {
		hdr.Del(name)
	}
	rc := http.NewResponseController(w)
	c, brw, err := rc.Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		dst := w.Header()
		for name, values := range hdr {
			dst[name] = values
		}
		w.WriteHeader(a.status)
		return &handlerConn{ctx: r.Context(), w: w, rc: rc, done: make(chan struct{})}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if sc, ok := r.Context().Value(serverConnKey{}).(*serverConn); ok {
		sc.hijacked.Store(true)
	}
	// Bytes the client sent after its request (it should send none)
	// are dropped with net/http's buffers: a held stream keeps none.
	_ = brw
	chunked := r.ProtoAtLeast(1, 1)
	if chunked {
		hdr.Set("Transfer-Encoding", "chunked")
	}
	hdr.Set("Connection", "close")
	if hdr.Get("Date") == "" {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	head := make([]byte, 0, 1024)
	head = fmt.Appendf(head, "HTTP/1.1 %03d %s\r\n", a.status, http.StatusText(a.status))
	b := &appendWriter{head}
	hdr.Write(b)
	head = append(b.b, "\r\n"...)
	return &hijackConn{c: c, chunked: chunked}, head, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// hijackConn is a connection taken from net/http: the hub writes the
// response itself, in HTTP/1.1 chunks, and holds no goroutine or buffer
// for it while it waits.
type hijackConn struct {
	c       net.Conn
	chunked bool
}

func (h *hijackConn) frame(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	if !h.chunked {
		return append(dst, p...)
	}
	dst = strconv.AppendInt(dst, int64(len(p)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, p...)
	return append(dst, "\r\n"...)
}

func (h *hijackConn) final(dst []byte) []byte {
	if !h.chunked {
		return dst
	}
	return append(dst, "0\r\n\r\n"...)
}

func (h *hijackConn) write(p []byte) error {
	h.c.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	_, err := h.c.Write(p)
	return err
}

func (h *hijackConn) close(graceful bool) {
	if sc, ok := h.c.(*serverConn); ok && graceful {
		// Half-close and drain briefly, so the client reads the end
		// of the stream rather than a reset (serverConn.Close).
		sc.linger.Store(true)
	}
	h.c.Close()
}

func (h *hijackConn) wait()       {}
func (h *hijackConn) alive() bool { return connAlive(h.c) }

// handlerConn holds a stream in its handler, for a ResponseWriter that
// cannot be hijacked. A ResponseWriter must not be used once its handler
// returns, so close waits for a write in progress, and none starts after.
type handlerConn struct {
	ctx    context.Context
	w      http.ResponseWriter
	rc     *http.ResponseController
	done   chan struct{}
	mu     sync.Mutex
	closed bool
}

func (h *handlerConn) frame(dst, p []byte) []byte { return append(dst, p...) }
func (h *handlerConn) final(dst []byte) []byte    { return dst }

func (h *handlerConn) write(p []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return net.ErrClosed
	}
	h.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if len(p) > 0 {
		if _, err := h.w.Write(p); err != nil {
			return err
		}
	}
	return h.rc.Flush()
}

func (h *handlerConn) close(bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

func (h *handlerConn) wait() { <-h.done }

// alive: net/http cancels the request's context when its client goes.
func (h *handlerConn) alive() bool { return h.ctx.Err() == nil }

// ---- long-poll ----

// longPoll is a long-poll request waiting for a wake-up.
type longPoll struct {
	woken    chan struct{}
	shutdown func()
}

func (l *longPoll) wake() {
	select {
	case l.woken <- struct{}{}:
	default:
	}
}

func (h *Host) holdLongPoll(w http.ResponseWriter, r *http.Request, a *answer, topic string, cursor int64, more bool, wait int, from uint64, id string) {
	reqCursor, ok := requestCursor(r)
	if !ok || cursor != reqCursor || more || wait == 0 {
		// Events (or no wait asked): answered at once.
		writeAnswer(w, r, a)
		return
	}
	hb := h.hub
	if !hb.admit() {
		h.log.Warn("long-poll refused: too many streams", "request", id, "max", hb.maxStreams)
		w.Header().Set("Retry-After", "1")
		handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "too_many_streams",
			fmt.Sprintf("this server holds at most %d streams; retry shortly", hb.maxStreams))
		return
	}
	closing := make(chan struct{})
	var once sync.Once
	lp := &longPoll{woken: make(chan struct{}, 1), shutdown: func() { once.Do(func() { close(closing) }) }}
	subscribed, woken := hb.subscribe(topic, lp, from)
	defer hb.release(topic, lp)
	if !subscribed {
		writeAnswer(w, r, a)
		return
	}
	// Until the wait is over: each wake-up re-runs the request once; an
	// answer with nothing new (the wake-up was for an event the first
	// answer already had, or the history's spare one) waits again.
	t := time.NewTimer(time.Duration(wait) * time.Second)
	defer t.Stop()
	for {
		if !woken {
			select {
			case <-lp.woken:
			case <-t.C:
				h.extendWrite(w)
				writeAnswer(w, r, a)
				return
			case <-closing:
				h.extendWrite(w)
				writeAnswer(w, r, a)
				return
			case <-r.Context().Done():
				return
			}
		}
		woken = false
		hb.stats.polls.Add(1)
		// The same request again, with its own cursor (?after= or
		// Last-Event-ID, as the client sent it).
		q := holdRequest(r)
		pr := q.request("")
		if v := r.Header.Values("Last-Event-Id"); len(v) > 0 {
			pr.Header["Last-Event-Id"] = v
		}
		p, err := h.invokeStream(pr)
		switch {
		case errors.Is(err, errOverloaded), errors.Is(err, errBusy), errors.Is(err, ErrClosed):
			// The empty first answer: the client asks again.
			h.extendWrite(w)
			writeAnswer(w, r, a)
			return
		case errors.Is(err, errPollTimeout):
			h.extendWrite(w)
			handlers.WriteHomeError(w, id, http.StatusGatewayTimeout, "timeout", timeoutMessage(h.opts.Timeout))
			return
		case err != nil:
			h.extendWrite(w)
			handlers.WriteHomeError(w, id, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		pc, ok := parseCursor(p.header.Get(storage.StreamCursorHeader))
		if p.status == http.StatusOK && ok && pc == reqCursor && p.header.Get(storage.StreamMoreHeader) != "1" {
			continue
		}
		stripStreamHeaders(p.header)
		h.extendWrite(w)
		writeAnswer(w, r, p)
		return
	}
}

// extendWrite gives a held request's answer the usual time to be written,
// from now: its own write deadline (set when it came in) passed while it
// was held.
func (h *Host) extendWrite(w http.ResponseWriter) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(h.opts.Timeout + h.opts.Grace))
}
