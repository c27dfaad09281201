package host

import (
	"context"
	"encoding/json"
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

// ServeHTTP runs the request through a guest instance.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := handlers.RequestID(r)
	if r.ContentLength > h.opts.MaxBody {
		// Refused before any guest runs: nothing of the body is read.
		writeError(w, id, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("request body exceeds %d bytes", h.opts.MaxBody))
		return
	}
	select {
	case <-h.closed:
		writeError(w, id, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
		return
	default:
	}

	deadline := time.Now().Add(h.opts.Timeout)
	// A slow client must not hold an instance past the deadline: the
	// connection's write deadline makes writes to it fail (and, below, its
	// read deadline makes body reads fail). Both are cleared on the way
	// out, since they outlive the request on a kept-alive connection.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(deadline.Add(h.opts.Grace))
	defer rc.SetWriteDeadline(time.Time{})

	inv := h.newInvocation(r.Context(), id, deadline)
	inv.r, inv.w = r, w
	inst, err := h.pool.acquire(inv.ctx)
	if err != nil {
		timedOut := errors.Is(err, errBusy) || inv.ctx.Err() != nil
		inv.cleanup()
		switch {
		case errors.Is(err, ErrClosed):
			writeError(w, id, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
			return
		case errors.Is(err, errOverloaded):
			// Admission control: fast, and logged at debug only, since
			// under overload a line per request would add to it.
			w.Header().Set("Retry-After", "1")
			writeError(w, id, http.StatusServiceUnavailable, "overloaded", "the server is at capacity; retry shortly")
			h.log.Debug("request shed", "request", id, "err", err)
			return
		case !timedOut:
			// A new instance failed to start (memory, a broken init).
			h.log.Error("no guest instance", "request", id, "err", err)
			writeError(w, id, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		h.stats.timeouts.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, id, http.StatusServiceUnavailable, "busy", "no capacity to serve the request before its deadline")
		h.log.Warn("request not served", "request", id, "err", err)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// The read deadline is set only while the body is being read:
		// once it is, net/http reads the connection in the background,
		// and a deadline firing there would cancel the context of every
		// later request on the connection.
		rc.SetReadDeadline(deadline)
		defer rc.SetReadDeadline(time.Time{})
		body := http.MaxBytesReader(w, r.Body, h.opts.MaxBody)
		inv.bodyID, _ = inv.add(&reader{r: body,
			onEOF: func() { rc.SetReadDeadline(time.Time{}) },
			onErr: func(err error) {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					inv.tooLarge = true
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
		status, code, msg = http.StatusServiceUnavailable, "timeout", fmt.Sprintf("the request did not finish within %v", h.opts.Timeout)
		h.log.Error("guest killed at its deadline", "request", id, "instance", inst.id, "path", r.URL.Path)
	case callErr != nil || result == abi.ResultCrashed || result != abi.ResultOK || inst.broken:
		h.stats.traps.Add(1)
		status, code, msg = http.StatusInternalServerError, "internal", "internal error"
		h.log.Error("guest crashed; instance discarded", "request", id, "instance", inst.id,
			"path", r.URL.Path, "err", callErr, "result", result, "abi_misuse", inst.broken, "guest_report", inv.fail)
	case !inv.headSent && time.Now().After(deadline):
		h.stats.timeouts.Add(1)
		status, code, msg = http.StatusServiceUnavailable, "timeout", fmt.Sprintf("the request did not finish within %v", h.opts.Timeout)
	case !inv.headSent:
		// The guest always finishes a response; this is a bug to see.
		status, code, msg = http.StatusInternalServerError, "internal", "internal error"
		h.log.Error("guest returned without a response", "request", id, "instance", inst.id)
	default:
		return
	}
	if inv.headSent {
		// Part of a response is out; all we can do is cut the
		// connection so the client does not take it for whole.
		panic(http.ErrAbortHandler)
	}
	// The write deadline set above may have passed by now (a kill comes
	// after deadline plus grace); the short error must still go out.
	rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	writeError(w, id, status, code, msg)
}

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
	h.pool.release(inst, healthy)
	return result, err, killed
}

// RunScheduled runs the guest's scheduled work once, within
// Options.ScheduledTimeout (or ctx's deadline, if sooner).
func (h *Host) RunScheduled(ctx context.Context) error {
	select {
	case <-h.closed:
		return ErrClosed
	default:
	}
	deadline := time.Now().Add(h.opts.ScheduledTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	inv := h.newInvocation(ctx, handlers.NewRequestID(), deadline)
	inst, err := h.pool.acquireUnbounded(inv.ctx)
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
		return head // a scheduled run
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
	if inv.tooLarge && m.Status < 400 {
		// The body went over the limit while the guest read it and the
		// guest answered as if all was well: the limit wins.
		inv.dropBody = true
		writeError(inv.w, inv.id, http.StatusRequestEntityTooLarge, "too_large",
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

// writeError writes the platform's one error shape,
// {"error":{"code":"...","message":"..."}}, with the headers every response
// carries.
func writeError(w http.ResponseWriter, id string, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Request-Id", id)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"code": code, "message": msg}})
}

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
