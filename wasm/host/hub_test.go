package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/storage"
)

// The hub's tests run testdata/testguest's /stream route, a stream over KV
// "n" events. The real application's route runs end to end in tests/e2e.

// hangGuard bounds waits so that a broken hub fails instead of hanging;
// no test asserts a duration.
const hangGuard = 30 * time.Second

type frame struct{ id, event, data string }

type sseConn struct {
	resp   *http.Response
	frames chan frame
	err    error
}

func (f *fixture) sse(t *testing.T, path string, header ...string) *sseConn {
	t.Helper()
	req, _ := http.NewRequest("GET", f.url+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	c := &sseConn{resp: resp, frames: make(chan frame, 256)}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(c.frames)
		br := bufio.NewReader(resp.Body)
		var fr frame
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if err != io.EOF || line != "" {
					c.err = err
				}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				c.frames <- fr
				fr = frame{}
				continue
			}
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "id":
				fr.id = v
			case "event":
				fr.event = v
			case "data":
				fr.data = v
			}
		}
	}()
	return c
}

// next returns the next frame that is not a ping (any frame with pings).
func (c *sseConn) next(t *testing.T, pings bool) (frame, bool) {
	t.Helper()
	for {
		select {
		case fr, ok := <-c.frames:
			if ok && fr.event == "ping" && !pings {
				continue
			}
			return fr, ok
		case <-time.After(hangGuard):
			t.Fatal("no frame")
		}
	}
}

func (c *sseConn) expectIDs(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		fr, ok := c.next(t, false)
		if !ok || fr.id != strconv.Itoa(i) || fr.event != "test" {
			t.Fatalf("want event %d, got %+v (open %v, err %v)", i, fr, ok, c.err)
		}
	}
}

// expectEnd: the stream ends cleanly (the chunked body's end, not a cut).
func (c *sseConn) expectEnd(t *testing.T) {
	t.Helper()
	if fr, ok := c.next(t, false); ok {
		t.Fatalf("want the end of the stream, got %+v", fr)
	}
	if c.err != nil {
		t.Fatalf("the stream was cut, not ended: %v", c.err)
	}
}

func (f *fixture) setN(n int) {
	f.kv.Put(context.Background(), "n", []byte(strconv.Itoa(n)), storage.KVPutOptions{})
}

func (f *fixture) waitStats(t *testing.T, what string, ok func(Stats) bool) {
	t.Helper()
	for end := time.Now().Add(hangGuard); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if ok(f.h.Stats()) {
			return
		}
	}
	t.Fatalf("never: %s (%+v)", what, f.h.Stats())
}

func TestHubSince(t *testing.T) {
	hb := newHub(nil, time.Second, 10, 1)
	from := hb.begin()
	for range 10 {
		hb.Publish(context.Background(), "t/other")
	}
	hb.mu.Lock()
	if hb.since("t/mine", from) {
		t.Error("a wake-up of another topic counted")
	}
	hb.mu.Unlock()
	hb.Publish(context.Background(), "t/mine")
	hb.mu.Lock()
	if !hb.since("t/mine", from) {
		t.Error("a wake-up of the topic missed")
	}
	if hb.since("t/mine", hb.begin()) {
		t.Error("a wake-up before from counted")
	}
	hb.mu.Unlock()
	// Past the history the answer is yes: a spare poll, never a missed one.
	from = hb.begin()
	for range publishHistory {
		hb.Publish(context.Background(), "t/other")
	}
	hb.mu.Lock()
	if !hb.since("t/mine", from) {
		t.Error("past the history: no")
	}
	hb.mu.Unlock()
	if err := hb.Publish(context.Background(), "no spaces"); err == nil {
		t.Error("an invalid topic published")
	}
}

// TestPublishOp: the guest's realtime.publish reaches the hub; an invalid
// topic is an ABI error (invalid), not a panic.
func TestPublishOp(t *testing.T) {
	f := start(t, Options{Pool: 1})
	for topic, want := range map[string]string{
		"t/1/c/2":                "<nil>",
		"bad%20topic":            "invalid",
		"":                       "invalid",
		strings.Repeat("a", 201): "invalid",
		strings.Repeat("a", 200): "<nil>",
		"t%2F1%0Ac":              "invalid",
		"t:1.c-2_x":              "<nil>",
	} {
		if status, body := f.get(t, "/publish?topic="+topic); status != 200 || body != want {
			t.Errorf("publish %q: %d %s, want %s", topic, status, body, want)
		}
	}
	if st := f.h.Stats(); st.Streams.Published != 3 || st.Discarded != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestSSEHeld: the first answer goes out, the connection is held with no
// instance, wake-ups re-poll from the cursor, the internal headers never
// reach the client, and a client's forged Pommy-Stream-Poll never reaches
// the guest.
func TestSSEHeld(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(2)
	c := f.sse(t, "/stream?mode=sse&topic=t1", "Pommy-Stream-Poll", "1", "Pommy-Stream-Topic", "evil")
	if got := c.resp.Header.Get("X-Saw-Poll"); got != "false" {
		t.Errorf("the guest saw the client's Pommy-Stream-Poll: %q", got)
	}
	for name := range c.resp.Header {
		if strings.HasPrefix(name, "Pommy-Stream-") {
			t.Errorf("internal header %s reached the client", name)
		}
	}
	if ct := c.resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/") {
		t.Logf("content type %q", ct)
	}
	c.expectIDs(t, 1, 2)
	f.waitStats(t, "one held stream, no instance busy", func(s Stats) bool { return s.Streams.Held == 1 && s.Busy == 0 })
	f.setN(5)
	f.h.Realtime().Publish(context.Background(), "t1")
	c.expectIDs(t, 3, 5)
	// Another topic's wake-up polls nothing.
	polls := f.h.Stats().Streams.Polls
	f.h.Realtime().Publish(context.Background(), "t2")
	if got := f.h.Stats().Streams.Polls; got != polls {
		t.Errorf("a wake-up of another topic polled: %d -> %d", polls, got)
	}
}

// TestWakeupDuringPoll: a wake-up that arrives after a poll has read the
// log, while it still runs, is not lost: the stream polls once more.
func TestWakeupDuringPoll(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(0)
	c := f.sse(t, "/stream?mode=sse&topic=dp&hold_ms=300")
	f.waitStats(t, "held", func(s Stats) bool { return s.Streams.Held == 1 })
	f.h.Realtime().Publish(context.Background(), "dp")
	// The poll has read n=0 and counted itself; it holds for 300 ms.
	f.waitStats(t, "the poll past its read", func(Stats) bool {
		v, _ := f.kv.Get(context.Background(), "polls")
		return string(v) == "1"
	})
	f.setN(1)
	f.h.Realtime().Publish(context.Background(), "dp")
	c.expectIDs(t, 1, 1)
	if st := f.h.Stats().Streams; st.Polls != 2 {
		t.Errorf("%d polls, want 2", st.Polls)
	}
}

// TestGoneClientCostsNoPoll: a wake-up of a stream whose client has left
// cuts it without a guest call.
func TestGoneClientCostsNoPoll(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(0)
	// A raw connection, closed by this goroutine before any wake-up: an
	// HTTP client's Body.Close hands the close to its transport's own
	// goroutine, and a wake-up that overtook it would rightly poll.
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /stream?mode=sse&topic=gone HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", strings.TrimPrefix(f.url, "http://"))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("stream answer: %q, %v", line, err)
	}
	f.waitStats(t, "held", func(s Stats) bool { return s.Streams.Held == 1 })
	conn.Close()
	f.waitStats(t, "the stream cut", func(s Stats) bool {
		f.h.Realtime().Publish(context.Background(), "gone")
		return s.Streams.Held == 0
	})
	if st := f.h.Stats().Streams; st.Polls != 0 || st.Cut != 1 {
		t.Errorf("stats %+v: want no poll, one cut", st)
	}
}

// TestSSEMorePages: Pommy-Stream-More polls again at once, without a
// wake-up, until the log is read.
func TestSSEMorePages(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(23)
	c := f.sse(t, "/stream?mode=sse&topic=pages&page=5")
	c.expectIDs(t, 1, 23)
	if st := f.h.Stats(); st.Streams.Published != 0 || st.Streams.Polls < 4 {
		t.Errorf("stats: %+v", st.Streams)
	}
}

// TestSSEPollErrorEnds: a poll answering non-200 ends the stream with
// `event: error` and the application's body on one line; a guest crash
// with the host's internal error. Either way the stream's place is freed.
func TestSSEPollErrorEnds(t *testing.T) {
	f := start(t, Options{Pool: 1})
	for _, tc := range []struct{ query, code string }{
		{"fail_on_poll=401", "revoked"},
		{"crash_on_poll=1", "internal"},
	} {
		f.setN(1)
		c := f.sse(t, "/stream?mode=sse&topic=err&"+tc.query)
		c.expectIDs(t, 1, 1)
		f.waitStats(t, "held", func(s Stats) bool { return s.Streams.Held == 1 })
		f.h.Realtime().Publish(context.Background(), "err")
		fr, ok := c.next(t, false)
		var e struct {
			Error struct{ Code, Message string }
		}
		if !ok || fr.event != "error" || json.Unmarshal([]byte(fr.data), &e) != nil || e.Error.Code != tc.code {
			t.Fatalf("%s: want an error frame with %s, got %+v", tc.query, tc.code, fr)
		}
		c.expectEnd(t)
		f.waitStats(t, "released", func(s Stats) bool { return s.Streams.Held == 0 })
	}
}

// TestStreamCap: past MaxStreams an SSE stream gets `event: error`
// too_many_streams and ends, a long-poll 503 too_many_streams; and a freed
// place can be taken again.
func TestStreamCap(t *testing.T) {
	f := start(t, Options{Pool: 1, MaxStreams: 2})
	f.setN(0)
	a := f.sse(t, "/stream?mode=sse&topic=cap&fail_on_poll=401")
	f.sse(t, "/stream?mode=sse&topic=cap2")
	f.waitStats(t, "two held", func(s Stats) bool { return s.Streams.Held == 2 })
	c := f.sse(t, "/stream?mode=sse&topic=cap")
	fr, ok := c.next(t, false)
	if !ok || fr.event != "error" || !strings.Contains(fr.data, `"too_many_streams"`) {
		t.Fatalf("third stream: %+v", fr)
	}
	c.expectEnd(t)
	status, body := f.get(t, "/stream?mode=longpoll&topic=cap&wait=5")
	if status != 503 || errorCode(t, body) != "too_many_streams" {
		t.Fatalf("long-poll past the cap: %d %s", status, body)
	}
	// End the first stream (its poll fails): its place is free again.
	f.h.Realtime().Publish(context.Background(), "cap")
	a.next(t, false)
	a.expectEnd(t)
	f.waitStats(t, "one held", func(s Stats) bool { return s.Streams.Held == 1 })
	d := f.sse(t, "/stream?mode=sse&topic=cap3")
	f.waitStats(t, "two held again", func(s Stats) bool { return s.Streams.Held == 2 })
	f.setN(1)
	f.h.Realtime().Publish(context.Background(), "cap3")
	d.expectIDs(t, 1, 1)
	if st := f.h.Stats(); st.Streams.Refused != 2 {
		t.Errorf("refused %d, want 2", st.Streams.Refused)
	}
}

// TestMalformedHandOffNotHeld: a stream answer the hub cannot hold safely
// (not a GET, frames cut short, a bad cursor, topic or mode) is the
// application's bug: 500, logged, nothing of it sent, as at the edge. A
// HEAD gets the answer's head, unheld.
func TestMalformedHandOffNotHeld(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(1)
	for _, q := range []string{"bad=frames", "bad=cursor", "bad=topic", "bad=mode"} {
		status, body := f.get(t, "/stream?mode=sse&topic=m&"+q)
		if status != 500 || errorCode(t, body) != "internal" {
			t.Errorf("%s: %d %q", q, status, body)
		}
	}
	resp, err := http.Post(f.url+"/stream?mode=sse&topic=m", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get("Pommy-Stream-Topic") != "" {
		t.Errorf("POST: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	resp, err = http.Head(f.url + "/stream?mode=sse&topic=m")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Saw-Poll") != "false" || resp.Header.Get("Pommy-Stream-Topic") != "" {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	if st := f.h.Stats(); st.Streams.Held != 0 {
		t.Errorf("held %d", st.Streams.Held)
	}
	if n := strings.Count(f.log.String(), "not held"); n != 5 {
		t.Errorf("%d log lines say not held, want 5", n)
	}
}

// TestHeartbeat: a quiet stream gets pings at the configured interval.
func TestHeartbeat(t *testing.T) {
	f := start(t, Options{Pool: 1, StreamHeartbeat: 20 * time.Millisecond})
	f.setN(0)
	c := f.sse(t, "/stream?mode=sse&topic=quiet")
	for range 3 {
		fr, ok := c.next(t, true)
		var p struct{ T int64 }
		if !ok || fr.event != "ping" || json.Unmarshal([]byte(fr.data), &p) != nil || p.T <= 0 {
			t.Fatalf("want a ping, got %+v", fr)
		}
	}
}

// TestLongPoll: a long-poll without events waits for a wake-up and then
// returns the re-poll's answer; without one it returns the empty answer at
// the end of its wait; with events it is answered at once.
func TestLongPoll(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(0)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		s, b := f.get(t, "/stream?mode=longpoll&topic=lp&wait=30")
		done <- result{s, b}
	}()
	f.waitStats(t, "the long-poll held", func(s Stats) bool { return s.Streams.Held == 1 && s.Busy == 0 })
	f.setN(2)
	f.h.Realtime().Publish(context.Background(), "lp")
	r := <-done
	if r.status != 200 || r.body != `{"events":[1,2],"cursor":2}` {
		t.Fatalf("woken long-poll: %+v", r)
	}
	// A wake-up with nothing new for this cursor (here: another
	// client's event, already read) waits again, to the end of the wait.
	published := f.h.Stats().Streams.Published
	polls := f.h.Stats().Streams.Polls
	go func() {
		s, b := f.get(t, "/stream?mode=longpoll&topic=lp&wait=2&after=2")
		done <- result{s, b}
	}()
	f.waitStats(t, "the long-poll held", func(s Stats) bool { return s.Streams.Held == 1 })
	f.h.Realtime().Publish(context.Background(), "lp")
	f.waitStats(t, "its re-poll", func(s Stats) bool { return s.Streams.Polls == polls+1 })
	f.setN(3)
	f.h.Realtime().Publish(context.Background(), "lp")
	if r := <-done; r.status != 200 || r.body != `{"events":[3],"cursor":3}` {
		t.Fatalf("long-poll after an empty re-poll: %+v", r)
	}
	f.setN(2)
	// No wake-up: the empty answer, once the wait is over.
	status, body := f.get(t, "/stream?mode=longpoll&topic=lp&wait=1&after=2")
	if status != 200 || body != `{"events":[],"cursor":2}` {
		t.Fatalf("long-poll with no wake-up: %d %s", status, body)
	}
	// Events at hand: answered at once, never held.
	published = f.h.Stats().Streams.Published
	status, body = f.get(t, "/stream?mode=longpoll&topic=lp&wait=30&after=1")
	if status != 200 || body != `{"events":[2],"cursor":2}` {
		t.Fatalf("long-poll with events: %d %s", status, body)
	}
	if st := f.h.Stats(); st.Streams.Held != 0 || st.Streams.Published != published {
		t.Errorf("stats: %+v", st.Streams)
	}
}

// TestLongPollOutlivesTimeout: a waiting long-poll has no per-request
// deadline (here shorter than its wait, grace included); its answer is
// written after the wait as any answer is.
func TestLongPollOutlivesTimeout(t *testing.T) {
	f := start(t, Options{Pool: 1, Timeout: 100 * time.Millisecond, Grace: 100 * time.Millisecond})
	f.setN(0)
	status, body := f.get(t, "/stream?mode=longpoll&topic=lpt&wait=1")
	if status != 200 || body != `{"events":[],"cursor":0}` {
		t.Fatalf("%d %s", status, body)
	}
}

// TestPollRetriedWhenShed: a poll that admission control refuses is
// retried, and the events arrive once an instance is free.
func TestPollRetriedWhenShed(t *testing.T) {
	f := start(t, Options{Pool: 1, QueueWait: 10 * time.Millisecond})
	f.setN(1)
	c := f.sse(t, "/stream?mode=sse&topic=shed")
	c.expectIDs(t, 1, 1)
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		f.get(t, "/sleep?ms=400")
	}()
	f.waitStats(t, "the instance busy", func(s Stats) bool { return s.Busy == 1 })
	f.setN(3)
	f.h.Realtime().Publish(context.Background(), "shed")
	c.expectIDs(t, 2, 3)
	<-busy
	if st := f.h.Stats(); st.Streams.PollRetries == 0 {
		t.Logf("no poll was refused (the sleep ended first): %+v", st.Streams)
	}
}

// syncRecorder is a ResponseWriter that cannot be hijacked, safe to read
// while the hub writes.
type syncRecorder struct {
	mu     sync.Mutex
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *syncRecorder) Header() http.Header { return r.header }
func (r *syncRecorder) WriteHeader(s int) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}
func (r *syncRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.Write(p)
}
func (r *syncRecorder) Flush() {}
func (r *syncRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body.String()
}

// TestStreamInHandler: behind a ResponseWriter that cannot be hijacked
// (another server, HTTP/2) the stream is held in its handler, with the
// same protocol; closing the host ends it.
func TestStreamInHandler(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(1)
	rec := &syncRecorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/stream?mode=sse&topic=inh", nil)
	req.RequestURI = "/stream?mode=sse&topic=inh"
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		f.h.ServeHTTP(rec, req)
	}()
	f.waitStats(t, "held", func(s Stats) bool { return s.Streams.Held == 1 })
	f.setN(2)
	f.h.Realtime().Publish(context.Background(), "inh")
	for end := time.Now().Add(hangGuard); !strings.Contains(rec.String(), "id: 2\n"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no second event: %q", rec.String())
		}
	}
	select {
	case <-returned:
		t.Fatal("the handler returned while its stream was held")
	default:
	}
	f.h.hub.close()
	<-returned
	if rec.status != 200 || rec.header.Get("Pommy-Stream-Topic") != "" || !strings.HasPrefix(rec.String(), "id: 1\n") {
		t.Errorf("%d %v %q", rec.status, rec.header, rec.String())
	}
}

// TestShutdownEndsStreams: closing the host ends every held stream
// cleanly and wakes waiting long-polls with their empty answer.
func TestShutdownEndsStreams(t *testing.T) {
	f := start(t, Options{Pool: 1})
	f.setN(0)
	a := f.sse(t, "/stream?mode=sse&topic=s1")
	b := f.sse(t, "/stream?mode=sse&topic=s2")
	lp := make(chan string, 1)
	go func() {
		_, body := f.get(t, "/stream?mode=longpoll&topic=s3&wait=30")
		lp <- body
	}()
	f.waitStats(t, "three held", func(s Stats) bool { return s.Streams.Held == 3 })
	if err := f.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.expectEnd(t)
	b.expectEnd(t)
	if body := <-lp; body != `{"events":[],"cursor":0}` {
		t.Errorf("long-poll at shutdown: %s", body)
	}
}
