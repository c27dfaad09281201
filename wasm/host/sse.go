package host

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
)

// Parsers of what the hub reads from the guest's stream answers and from a
// client's request (cursors), and the frames the hub writes itself. Each
// has a fuzz target in sse_test.go.

// maxCursor: cursors are SQL sequence numbers, and D1 holds numbers as
// doubles, so none reaches 2^53.
const maxCursor = 1<<53 - 1

// parseCursor reads a stream cursor as docs/realtime.md defines it: a
// decimal integer 0 <= N < 2^53, digits only.
func parseCursor(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		// Stopping past the bound keeps n from overflowing.
		if n = n*10 + int64(c-'0'); n > maxCursor {
			return 0, false
		}
	}
	return n, true
}

// requestCursor is the cursor a stream request asks from: Last-Event-ID
// (an SSE client's resume) or else ?after=, else 0, as the application
// reads it. ok is false when the request's cursor is malformed (the
// application will have said so).
func requestCursor(r *http.Request) (int64, bool) {
	if v := r.Header.Values("Last-Event-ID"); len(v) > 0 {
		c, ok := parseCursor(v[0])
		return c, ok && len(v) == 1
	}
	if v, ok := r.URL.Query()["after"]; ok {
		if len(v) != 1 {
			return 0, false
		}
		return parseCursor(v[0])
	}
	return 0, true
}

// parseWait reads the long-poll wait the application echoed, in seconds:
// 1..30, else none.
func parseWait(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 30 {
		return 0
	}
	return n
}

// sseFrames checks that b is whole Server-Sent Events frames, so that what
// the hub writes after it (a ping, the next poll's frames) starts a frame
// of its own: lines end in "\n" and hold no CR or NUL, and every frame
// ends with an empty line. It returns the number of frames (comment-only
// frames included).
func sseFrames(b []byte) (frames int, ok bool) {
	inFrame := false
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return 0, false
		}
		line := b[:i]
		b = b[i+1:]
		if len(line) == 0 {
			if inFrame {
				frames++
				inFrame = false
			}
			continue
		}
		if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, 0) >= 0 {
			return 0, false
		}
		inFrame = true
	}
	return frames, !inFrame
}

// errorFrame is the SSE frame that ends a stream: `event: error` with the
// JSON error body on one line. A body that is not JSON (a guest bug) is
// replaced by an internal error rather than passed on.
func errorFrame(status int, body []byte) []byte {
	var c bytes.Buffer
	if json.Compact(&c, body) != nil || c.Len() == 0 || c.Bytes()[0] != '{' {
		c.Reset()
		json.Compact(&c, handlers.ErrorBody("internal", "the stream's poll failed with status "+strconv.Itoa(status)))
	}
	out := make([]byte, 0, c.Len()+24)
	out = append(out, "event: error\ndata: "...)
	out = append(out, c.Bytes()...)
	return append(out, "\n\n"...)
}

// homeErrorFrame is errorFrame for an error of the host's own.
func homeErrorFrame(code, message string) []byte {
	return errorFrame(0, handlers.ErrorBody(code, message))
}

// stripStreamHeaders deletes every Pommy-Stream-* header: from a client's
// request (only the home sets them) and from an answer before a client
// sees it.
func stripStreamHeaders(h http.Header) {
	for name := range h {
		if len(name) >= len(storage.StreamHeaderPrefix) && strings.EqualFold(name[:len(storage.StreamHeaderPrefix)], storage.StreamHeaderPrefix) {
			delete(h, name)
		}
	}
}
