package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseCursor(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "7": 7, "007": 7, "9007199254740991": 1<<53 - 1} {
		if n, ok := parseCursor(s); !ok || n != want {
			t.Errorf("%q: %d %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "-1", "+1", "1.0", " 1", "1 ", "0x10", "9007199254740992", "99999999999999999999", "１"} {
		if n, ok := parseCursor(s); ok {
			t.Errorf("%q accepted as %d", s, n)
		}
	}
}

func TestRequestCursor(t *testing.T) {
	for _, tc := range []struct {
		uri, lastID string
		want        int64
		ok          bool
	}{
		{"/s", "", 0, true},
		{"/s?after=5", "", 5, true},
		{"/s?after=5", "9", 9, true},
		{"/s?after=x", "", 0, false},
		{"/s?after=1&after=2", "", 0, false},
		{"/s", "-3", 0, false},
	} {
		r := &http.Request{URL: &url.URL{}, Header: http.Header{}}
		r.URL, _ = url.ParseRequestURI(tc.uri)
		if tc.lastID != "" {
			r.Header.Set("Last-Event-ID", tc.lastID)
		}
		if n, ok := requestCursor(r); n != tc.want || ok != tc.ok {
			t.Errorf("%s Last-Event-ID %q: %d %v", tc.uri, tc.lastID, n, ok)
		}
	}
}

func TestSSEFrames(t *testing.T) {
	for b, want := range map[string]int{
		"":                                     0,
		"id: 1\nevent: x\ndata: {}\n\n":        1,
		"id: 1\ndata: a\n\nid: 2\ndata: b\n\n": 2,
		": comment\n\n":                        1,
		"\n\nid: 1\n\n":                        1,
	} {
		if n, ok := sseFrames([]byte(b)); !ok || n != want {
			t.Errorf("%q: %d %v, want %d", b, n, ok, want)
		}
	}
	for _, b := range []string{"id: 1\n", "id: 1", "id: 1\r\n\r\n", "data: a\x00\n\n", "data: a\n\ndata: b"} {
		if _, ok := sseFrames([]byte(b)); ok {
			t.Errorf("%q accepted", b)
		}
	}
}

func TestErrorFrame(t *testing.T) {
	got := string(errorFrame(401, []byte("{\n  \"error\": {\"code\": \"revoked\", \"message\": \"a\\nb\"}\n}\n")))
	if got != "event: error\ndata: {\"error\":{\"code\":\"revoked\",\"message\":\"a\\nb\"}}\n\n" {
		t.Errorf("%q", got)
	}
	for _, body := range []string{"", "not json", "[1]", "\"s\""} {
		fr := errorFrame(502, []byte(body))
		if n, ok := sseFrames(fr); !ok || n != 1 || !bytes.Contains(fr, []byte(`"code":"internal"`)) {
			t.Errorf("%q: %q", body, fr)
		}
	}
}

// FuzzParseCursor: the cursor parser agrees with strconv on what it
// accepts, and accepts nothing at or past 2^53.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0", "42", "9007199254740991", "9007199254740992", "-1", "+1", "00", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseCursor(s)
		ref, err := strconv.ParseUint(s, 10, 64)
		digits := s != "" && strings.Trim(s, "0123456789") == ""
		want := err == nil && digits && ref <= maxCursor
		if ok != want || ok && uint64(n) != ref {
			t.Fatalf("%q: %d %v; strconv %d %v", s, n, ok, ref, err)
		}
	})
}

// FuzzSSEFrames: the frame scanner never panics; what it accepts stays
// whole frames with a ping after it (the hub's appends cannot join a
// guest's frame), and a client's reading finds the same number of frames.
func FuzzSSEFrames(f *testing.F) {
	for _, s := range []string{"", "id: 1\nevent: t\ndata: {}\n\n", "id: 1\n", "a\n\n\n\nb\n\n", ": c\n\n", "\r\n\r\n", "x"} {
		f.Add([]byte(s))
	}
	ping := pingFrame(time.Unix(1, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := sseFrames(b)
		if !ok {
			return
		}
		m, ok2 := sseFrames(append(bytes.Clone(b), ping...))
		if !ok2 || m != n+1 {
			t.Fatalf("%q + ping: %d %v, want %d", b, m, ok2, n+1)
		}
		// A reader that dispatches a frame at each empty line after a
		// non-empty one, as EventSource does.
		frames, pending := 0, false
		for _, line := range strings.Split(string(b), "\n") {
			if line == "" {
				if pending {
					frames++
				}
				pending = false
			} else {
				pending = true
			}
		}
		if frames != n {
			t.Fatalf("%q: scanner %d frames, reader %d", b, n, frames)
		}
	})
}

// FuzzErrorFrame: whatever a failing poll answers, the hub's error frame
// is one whole frame whose data is one line of JSON.
func FuzzErrorFrame(f *testing.F) {
	for _, s := range []string{"", `{"error":{"code":"x","message":"y"}}`, "{\n}\n", "\r\n", "{\"a\":\"\\n\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fr := errorFrame(400, body)
		if n, ok := sseFrames(fr); !ok || n != 1 {
			t.Fatalf("%q: %q is not one frame", body, fr)
		}
		data, found := bytes.CutPrefix(fr, []byte("event: error\ndata: "))
		data, found2 := bytes.CutSuffix(data, []byte("\n\n"))
		if !found || !found2 || bytes.IndexByte(data, '\n') >= 0 || !json.Valid(data) {
			t.Fatalf("%q: %q", body, fr)
		}
	})
}

// TestStreamAnswerLimit: a stream answer over maxStreamAnswer is a 500,
// not held; one at the limit is held.
func TestStreamAnswerLimit(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(0)
	status, body := f.get(t, "/stream?mode=sse&topic=big&pad="+strconv.Itoa(maxStreamAnswer))
	if status != 500 || errorCode(t, body) != "internal" || !strings.Contains(f.log.String(), "too large") {
		t.Fatalf("over the limit: %d %.200s", status, body)
	}
	c := f.sse(t, "/stream?mode=sse&topic=big&pad="+strconv.Itoa(maxStreamAnswer-6))
	if fr, ok := c.next(t, false); !ok || fr.id != "" || fr.event != "" {
		t.Fatalf("at the limit: %+v %v", fr.event, ok)
	}
	f.waitStats(t, "held", func(s Stats) bool { return s.Streams.Held == 1 })
}

// blockedConn is a streamConn whose writes wait until released: a client
// that takes nothing.
type blockedConn struct {
	release chan struct{}
	mu      sync.Mutex
	closed  bool
}

func (c *blockedConn) frame(dst, p []byte) []byte { return append(dst, p...) }
func (c *blockedConn) final(dst []byte) []byte    { return dst }
func (c *blockedConn) write([]byte) error {
	<-c.release
	return errors.New("closed")
}
func (c *blockedConn) close(bool) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}
func (c *blockedConn) wait()       {}
func (c *blockedConn) alive() bool { return true }

// TestBacklogCut: a client that falls maxStreamBacklog behind is cut, and
// its place under the cap freed.
func TestBacklogCut(t *testing.T) {
	h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	hb := newHub(h, time.Hour, 10, 1)
	conn := &blockedConn{release: make(chan struct{})}
	defer close(conn.release)
	s := &stream{hb: hb, topic: "t", conn: conn, req: heldRequest{url: &url.URL{Path: "/s"}}}
	if !hb.admit() {
		t.Fatal("not admitted")
	}
	hb.subscribe("t", s, hb.begin())
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	sent := 0
	// The writer holds what it took for its (blocked) write; the backlog
	// behind it is what is bounded.
	for range 3 * maxStreamBacklog / len(chunk) {
		if s.send(chunk) == 0 {
			break
		}
		sent += len(chunk)
	}
	conn.mu.Lock()
	closed := conn.closed
	conn.mu.Unlock()
	if !closed || sent > 2*maxStreamBacklog || hb.heldNow() != 0 || hb.stats.cut.Load() != 1 {
		t.Fatalf("after %d bytes: closed %v, held %d, cut %d", sent, closed, hb.heldNow(), hb.stats.cut.Load())
	}
}
