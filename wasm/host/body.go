package host

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"pommy.ai/edge/handlers"
)

// Request bodies reach the guest without an instance ever waiting on a slow
// client for long:
//
//   - A body of at most PreReadLimit bytes (every JSON route's) is read
//     whole, within Options.BodyReadTimeout, before an instance is taken;
//     the guest then reads it from memory.
//   - Of a larger one (an attachment upload), the first PreReadLimit bytes
//     are read the same way, so that a client that declares a large body
//     and sends nothing takes no instance. The rest is streamed to the
//     guest: each read must make progress within BodyReadTimeout, and the
//     whole must keep up Options.BodyMinRate on average, else the read
//     fails and the client gets 408. At most streamSlots requests stream
//     at once, so that tricklers cannot hold every instance.
//   - Bytes held in memory across all requests are bounded by
//     Options.PreReadMemory; past it a request gets 503 with Retry-After.

const (
	// PreReadLimit is the most bytes of a body read before an instance is
	// taken. 1 MiB is above every JSON route's limit (the largest, a
	// contact's, is about 100 KiB) with room for the routes to come, and
	// small next to PreReadMemory.
	PreReadLimit = 1 << 20
	// DefaultBodyReadTimeout is Options.BodyReadTimeout's default: 1 MiB
	// in 10 s asks a client for 100 KiB/s, well under any connection that
	// could upload an attachment within the request's deadline.
	DefaultBodyReadTimeout = 10 * time.Second
	// DefaultBodyMinRate is Options.BodyMinRate's default, in bytes per
	// second (256 kbit/s).
	DefaultBodyMinRate = 32 << 10
	// DefaultPreReadMemory is Options.PreReadMemory's default.
	DefaultPreReadMemory = 128 << 20
)

// errBodyTimeout marks a body that did not arrive in time.
var errBodyTimeout = errors.New("host: the request body did not arrive in time")

// errNoMemory marks a body refused because PreReadMemory was spent.
var errNoMemory = errors.New("host: too many request bodies held at once")

// requestBody is what the host read of a body before taking an instance,
// and the reader of the rest, if any.
type requestBody struct {
	h    *Host
	buf  []byte
	held int64     // bytes of h.bodyMemory this body holds
	rest io.Reader // nil when buf is the whole body
}

func (b *requestBody) release() {
	if b != nil && b.held > 0 {
		b.h.bodyMemory.Add(-b.held)
		b.held = 0
	}
}

// reserve takes n bytes of the memory budget for b.
func (b *requestBody) reserve(n int64) bool {
	if b.h.bodyMemory.Add(n) > b.h.opts.PreReadMemory {
		b.h.bodyMemory.Add(-n)
		return false
	}
	b.held += n
	return true
}

// readBody reads r's body, or its first PreReadLimit bytes, within
// BodyReadTimeout (and the request's deadline). It returns a body to
// release even with an error.
func (h *Host) readBody(w http.ResponseWriter, rc *http.ResponseController, r *http.Request, deadline time.Time) (*requestBody, error) {
	b := &requestBody{h: h}
	src := http.MaxBytesReader(w, r.Body, h.opts.MaxBody)
	limit := int64(PreReadLimit)
	whole := r.ContentLength >= 0 && r.ContentLength <= PreReadLimit
	if whole {
		limit = r.ContentLength
	}
	rc.SetReadDeadline(earliest(time.Now().Add(h.opts.BodyReadTimeout), deadline))
	// The buffer grows with what arrives, so that a client declaring a
	// large body and sending nothing costs no memory.
	size := min(limit, 16<<10)
	if !b.reserve(size) {
		return b, errNoMemory
	}
	b.buf = make([]byte, 0, size)
	for int64(len(b.buf)) < limit {
		if len(b.buf) == cap(b.buf) {
			grown := min(2*int64(cap(b.buf)), limit)
			if !b.reserve(grown - int64(cap(b.buf))) {
				return b, errNoMemory
			}
			b.buf = append(make([]byte, 0, grown), b.buf...)
		}
		n, err := src.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		if err == io.EOF {
			if whole && int64(len(b.buf)) < limit {
				return b, io.ErrUnexpectedEOF
			}
			return b, nil // net/http cleared the read deadline at EOF
		}
		if err != nil {
			return b, bodyErr(err)
		}
	}
	if whole {
		// Read on to EOF (it is at hand: the length is reached), which
		// lets net/http watch the connection again and clears the
		// deadline.
		var one [1]byte
		n, err := src.Read(one[:])
		switch {
		case n > 0:
			return b, errors.New("host: the body is longer than its Content-Length")
		case err != io.EOF && err != nil:
			return b, bodyErr(err)
		}
		return b, nil
	}
	b.rest = &pacedReader{r: src, rc: rc, timeout: h.opts.BodyReadTimeout, minRate: h.opts.BodyMinRate, end: deadline}
	return b, nil
}

// reader is the guest's view of the body.
func (b *requestBody) reader() io.Reader {
	if b.rest == nil {
		return bytes.NewReader(b.buf)
	}
	return io.MultiReader(bytes.NewReader(b.buf), b.rest)
}

// pacedReader sets the connection's read deadline before each read of a
// streamed body: the read must make progress within timeout, and the body
// must keep up minRate on average since the first read (which is when an
// instance started waiting on it); the request's deadline bounds both.
type pacedReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	minRate int64 // bytes per second; 0: none
	end     time.Time
	start   time.Time
	n       int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	now := time.Now()
	if p.start.IsZero() {
		p.start = now
	}
	d := earliest(now.Add(p.timeout), p.end)
	if p.minRate > 0 {
		credit := time.Duration(float64(p.n) / float64(p.minRate) * float64(time.Second))
		d = earliest(d, p.start.Add(p.timeout+credit))
	}
	p.rc.SetReadDeadline(d)
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && err != io.EOF {
		err = bodyErr(err)
	}
	return n, err
}

// bodyErr turns a read deadline's error into errBodyTimeout.
func bodyErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", errBodyTimeout, err)
	}
	return err
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// writeBodyError answers a body that could not be read before the guest
// ran. The connection is closed after the answer: what is left of the body
// on it cannot be told from a next request.
func (h *Host) writeBodyError(w http.ResponseWriter, id string, err error) {
	var mbe *http.MaxBytesError
	w.Header().Set("Connection", "close")
	switch {
	case errors.Is(err, errBodyTimeout):
		handlers.WriteHomeError(w, id, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within %v; the connection is closed", h.opts.BodyReadTimeout))
	case errors.Is(err, errNoMemory):
		handlers.WriteHomeError(w, id, http.StatusServiceUnavailable, "busy", "too many request bodies in flight; retry shortly")
	case errors.As(err, &mbe):
		handlers.WriteHomeError(w, id, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body exceeds %d bytes", h.opts.MaxBody))
	default:
		handlers.WriteHomeError(w, id, http.StatusBadRequest, "incomplete_body", "the request body ended before its Content-Length")
	}
}
