package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero/api"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// ServeHTTP runs the request through a guest instance. An instance is
// taken only once the body, or its first PreReadLimit bytes, has arrived
// (body.go), and never for a request refused by its head.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := handlers.RequestID(r)
	// Only the home sets the stream hand-off's headers (a forged
	// Pommy-Stream-Poll would skip the application's audit).
	stripStreamHeaders(r.Header)
	if len(r.TransferEncoding) > 0 {
		// net/http drops Content-Length when Transfer-Encoding is
		// present, so a request framed both ways (smuggling's shape)
		// cannot be told from a plain chunked one; the API needs
		// neither. Refused before the body is read, and the connection
		// closed: what follows on it cannot be trusted to be a request.
		h.log.Debug("refused a request with Transfer-Encoding", "request", id, "remote", r.RemoteAddr)
		refuseTransferEncoding(w, id)
		return
	}
	if r.ContentLength > h.opts.MaxBody {
		// Refused before any guest runs: nothing of the body is read.
		w.Header().Set("Connection", "close")
		handlers.WriteHomeError(w, id, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("request body exceeds %d bytes", h.opts.MaxBody))
		return
	}
	select {
	case <-h.closed:
		handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
		return
	default:
	}

	deadline := time.Now().Add(h.opts.Timeout)
	// A slow reader of the response must not hold an instance past the
	// deadline: the write deadline makes writes to it fail. The read
	// deadlines are the body's (body.go); none is cleared on the way out,
	// so that net/http's discard of an unread body cannot block forever.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(deadline.Add(h.opts.Grace))
	held := false // the hub took the connection: its deadlines are the hub's
	defer func() {
		if !held {
			rc.SetWriteDeadline(time.Time{})
		}
	}()

	var body *requestBody
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = h.readBody(w, rc, r, deadline)
		defer body.release()
		if err != nil {
			h.log.Debug("request body not read", "request", id, "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			h.writeBodyError(w, id, err)
			return
		}
		if body.rest != nil {
			if !h.takeStreamSlot(r.Context(), deadline) {
				h.stats.timeouts.Add(1)
				w.Header().Set("Connection", "close")
				handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "busy", "too many uploads in progress; retry shortly")
				return
			}
			defer func() { <-h.streams }()
		}
	}

	inv := h.newInvocation(r.Context(), id, deadline)
	inv.r, inv.w = r, w
	// Wake-ups after this point reach a stream this request may become.
	from := h.hub.begin()
	inst, err := h.pool.acquire(inv.ctx)
	if err != nil {
		timedOut := errors.Is(err, errBusy) || inv.ctx.Err() != nil
		inv.cleanup()
		switch {
		case errors.Is(err, ErrClosed):
			handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
			return
		case errors.Is(err, errOverloaded):
			// Admission control: fast, and logged at debug only, since
			// under overload a line per request would add to it.
			w.Header().Set("Retry-After", "1")
			handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "overloaded", "the server is at capacity; retry shortly")
			h.log.Debug("request shed", "request", id, "err", err)
			return
		case !timedOut:
			// A new instance failed to start (memory, a broken init).
			h.log.Error("no guest instance", "request", id, "err", err)
			handlers.WriteHomeError(w, id, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		h.stats.timeouts.Add(1)
		w.Header().Set("Retry-After", "1")
		handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "busy", "no capacity to serve the request before its deadline")
		h.log.Warn("request not served", "request", id, "err", err)
		return
	}
	if body != nil {
		inv.bodyID, _ = inv.add(&reader{r: body.reader(),
			onErr: func(err error) {
				var mbe *http.MaxBytesError
				switch {
				case errors.As(err, &mbe):
					inv.tooLarge = true
				case errors.Is(err, errBodyTimeout):
					inv.bodyTimedOut = true
				}
			}})
	}

	result, callErr, killed := h.run(inst, inst.handle, inv)
	h.stats.requests.Add(1)

	var status int
	var code, msg string
	switch {
	case killed:
		h.stats.timeouts.Add(1)
		h.stats.killed.Add(1)
		status, code, msg = http.StatusGatewayTimeout, "timeout", timeoutMessage(h.opts.Timeout)
		h.log.Error("guest killed at its deadline", "request", id, "instance", inst.id, "path", r.URL.Path)
	case callErr != nil || result == abi.ResultCrashed || result != abi.ResultOK || inst.broken:
		h.stats.traps.Add(1)
		status, code, msg = http.StatusInternalServerError, "internal", "internal error"
		h.log.Error("guest crashed; instance discarded", "request", id, "instance", inst.id,
			"path", r.URL.Path, "err", callErr, "result", result, "abi_misuse", inst.broken, "guest_report", inv.fail)
	case !inv.headSent && inv.bodyTimedOut:
		w.Header().Set("Connection", "close")
		status, code, msg = http.StatusRequestTimeout, "request_timeout", h.streamTimeoutMessage()
	case !inv.headSent && time.Now().After(deadline):
		h.stats.timeouts.Add(1)
		status, code, msg = http.StatusGatewayTimeout, "timeout", timeoutMessage(h.opts.Timeout)
	case !inv.headSent:
		// The guest always finishes a response; this is a bug to see.
		status, code, msg = http.StatusInternalServerError, "internal", "internal error"
		h.log.Error("guest returned without a response", "request", id, "instance", inst.id)
	case inv.capture != nil:
		// A stream's first answer, held back until now; the instance
		// is already back in the pool.
		held = h.serveStream(w, r, inv.capture, from, id)
		return
	default:
		return
	}
	if inv.headSent && inv.capture == nil {
		// Part of a response is out; all we can do is cut the
		// connection so the client does not take it for whole.
		panic(http.ErrAbortHandler)
	}
	// The write deadline set above may have passed by now (a kill comes
	// after deadline plus grace); the short error must still go out.
	rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	handlers.WriteHomeError(w, id, status, code, msg)
}

// takeStreamSlot waits for a slot to stream a body to an instance until
// the deadline.
func (h *Host) takeStreamSlot(ctx context.Context, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case h.streams <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// streamTimeoutMessage is the answer for a client whose streamed body
// stopped arriving in time.
func (h *Host) streamTimeoutMessage() string {
	rate := ""
	if h.opts.BodyMinRate > 0 {
		rate = fmt.Sprintf(", at least %d bytes/s on average", h.opts.BodyMinRate)
	}
	return fmt.Sprintf("the request body did not keep arriving (each read within %v%s); the connection is closed", h.opts.BodyReadTimeout, rate)
}

// timeoutMessage is the answer for a guest that ran past its deadline. It
// promises nothing about what the guest did: it may have committed its
// writes before it was stopped (a 503, by contrast, means the guest never
// ran).
func timeoutMessage(d time.Duration) string {
	return fmt.Sprintf("the request did not finish within %v; it may or may not have taken effect: check before retrying", d)
}

// refuseTransferEncoding answers a request that carries a Transfer-Encoding
// and closes its connection without reading its body.
func refuseTransferEncoding(w http.ResponseWriter, id string) {
	// An expired read deadline makes net/http's discard of the unread
	// body fail at once instead of reading what may be a smuggled
	// request.
	http.NewResponseController(w).SetReadDeadline(time.Now())
	w.Header().Set("Connection", "close")
	handlers.WriteHomeError(w, id, http.StatusLengthRequired, "length_required", lengthRequiredMessage)
}

const lengthRequiredMessage = "send the request body with a Content-Length; Transfer-Encoding (chunked) is not accepted"

// run calls an export with inv and releases the instance: kept if the call
// ended cleanly, discarded otherwise. killed reports that the host stopped
// the guest at its deadline plus grace.
func (h *Host) run(inst *instance, fn api.Function, inv *invocation) (result int32, err error, killed bool) {
	inv.inst = inst
	callCtx, kill := context.WithCancel(context.Background())
	timer := time.AfterFunc(time.Until(inv.deadline)+h.opts.Grace, kill)
	result, err = inst.call(callCtx, fn, inv)
	// A timer that can no longer be stopped has fired: the call was
	// killed (or ended at the very moment it was, which is the same).
	killed = !timer.Stop() && err != nil
	kill()
	inv.cleanup()
	healthy := err == nil && (result == abi.ResultOK || result == abi.ResultFailed) && !inst.broken
	p := h.pool
	if inv.pool != nil {
		p = inv.pool
	}
	p.release(inst, healthy)
	return result, err, killed
}

// RunScheduled runs the guest's scheduled work once, within
// Options.ScheduledTimeout (or ctx's deadline, if sooner).
func (h *Host) RunScheduled(ctx context.Context) error {
	return h.runTask(ctx, "", h.opts.ScheduledTimeout)
}

// runTask runs the guest's pommy_v1_scheduled export with a task (""
// the periodic work, abi.TaskJobs due background jobs) on the job
// workers' instances, or on the request pool without job workers.
func (h *Host) runTask(ctx context.Context, task string, timeout time.Duration) error {
	select {
	case <-h.closed:
		return ErrClosed
	default:
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	inv := h.newInvocation(ctx, handlers.NewRequestID(), deadline)
	inv.task, inv.pool = task, h.jobs
	if inv.pool == nil {
		inv.pool = h.pool
	}
	inst, err := inv.pool.acquireUnbounded(inv.ctx)
	if err != nil {
		inv.cleanup()
		return err
	}
	result, callErr, killed := h.run(inst, inst.scheduled, inv)
	h.stats.scheduled.Add(1)
	switch {
	case killed:
		h.stats.killed.Add(1)
		return fmt.Errorf("host: scheduled run killed at its deadline plus %v", h.opts.Grace)
	case callErr != nil:
		h.stats.traps.Add(1)
		return fmt.Errorf("host: scheduled run trapped: %w (%s)", callErr, inv.fail)
	case result == abi.ResultFailed:
		return fmt.Errorf("host: scheduled run: %s", inv.fail)
	case result != abi.ResultOK || inst.broken:
		h.stats.traps.Add(1)
		return fmt.Errorf("host: scheduled run crashed: %s", inv.fail)
	}
	return nil
}

// Schedule calls RunScheduled every interval until ctx ends, logging
// failures. It is the local stand-in for the edge's cron trigger.
func (h *Host) Schedule(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.closed:
			return
		case <-t.C:
			if err := h.RunScheduled(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				h.log.Error("scheduled run failed", "err", err)
			}
		}
	}
}

// ---- request ops ----

func (inv *invocation) requestHead() *abi.RequestHead {
	head := &abi.RequestHead{RequestID: inv.id, Deadline: inv.deadline.UnixNano()}
	r := inv.r
	if r == nil {
		head.Method = inv.task // a scheduled run: its task
		return head
	}
	head.Method = r.Method
	head.RequestURI = r.RequestURI
	if head.RequestURI == "" {
		head.RequestURI = r.URL.RequestURI()
	}
	head.Host = r.Host
	head.Proto = r.Proto
	head.Header = r.Header
	head.RemoteAddr = r.RemoteAddr
	head.TLS = r.TLS != nil
	head.ContentLength = r.ContentLength
	head.Body = inv.bodyID
	head.MaxBody = inv.h.opts.MaxBody
	return head
}

var errNoRequest = fmt.Errorf("%w: no request in this call", storage.ErrInvalid)

func (inv *invocation) responseHead(m *abi.ResponseHead) error {
	switch {
	case inv.r == nil:
		return errNoRequest
	case inv.headSent:
		return fmt.Errorf("%w: the response head was already sent", storage.ErrInvalid)
	case m.Status < 200 || m.Status > 999:
		return fmt.Errorf("%w: status %d", storage.ErrInvalid, m.Status)
	}
	inv.headSent = true
	if inv.capture != nil || (!inv.bodyTimedOut && !inv.tooLarge) {
		if captured, err := inv.captureHead(m); captured {
			return err
		}
	}
	if inv.bodyTimedOut {
		// The client stopped sending its body: whatever the guest made
		// of the failed read, the client's delay is the answer.
		inv.dropBody = true
		inv.w.Header().Set("Connection", "close")
		handlers.WriteHomeError(inv.w, inv.id, http.StatusRequestTimeout, "request_timeout", inv.h.streamTimeoutMessage())
		return nil
	}
	if inv.tooLarge && m.Status < 400 {
		// The body went over the limit while the guest read it and the
		// guest answered as if all was well: the limit wins.
		inv.dropBody = true
		handlers.WriteHomeError(inv.w, inv.id, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("request body exceeds %d bytes", inv.h.opts.MaxBody))
		return nil
	}
	dst := inv.w.Header()
	for name, values := range m.Header {
		if !validHeaderName(name) {
			inv.h.log.Warn("guest sent an invalid header name; dropped", "request", inv.id, "name", name)
			continue
		}
		for _, v := range values {
			if !validHeaderValue(v) {
				inv.h.log.Warn("guest sent an invalid header value; dropped", "request", inv.id, "name", name)
				continue
			}
			dst.Add(name, v)
		}
	}
	if m.Final && inv.r.Method != http.MethodHead && dst.Get("Content-Length") == "" && dst.Get("Transfer-Encoding") == "" &&
		m.Status != http.StatusNoContent && m.Status != http.StatusNotModified {
		dst.Set("Content-Length", strconv.Itoa(len(m.Body)))
	}
	inv.w.WriteHeader(m.Status)
	return inv.write(m.Body, m.Flush)
}

func (inv *invocation) responseWrite(m *abi.ResponseWrite) error {
	switch {
	case inv.r == nil:
		return errNoRequest
	case !inv.headSent:
		return fmt.Errorf("%w: body written before the response head", storage.ErrInvalid)
	case inv.dropBody:
		return nil
	case inv.capture != nil:
		return inv.capture.add(m.Data)
	}
	return inv.write(m.Data, m.Flush)
}

func (inv *invocation) write(b []byte, flush bool) error {
	if len(b) > 0 {
		if _, err := inv.w.Write(b); err != nil {
			return fmt.Errorf("%w: writing the response: %v", storage.ErrUnavailable, err)
		}
	}
	if flush {
		if err := http.NewResponseController(inv.w).Flush(); err != nil {
			return fmt.Errorf("%w: flushing the response: %v", storage.ErrUnavailable, err)
		}
	}
	return nil
}

// ---- helpers ----

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok {
			switch c {
			case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// validHeaderValue: no control characters but tab (so no CR or LF to split
// a response with).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
