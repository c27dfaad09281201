package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The local home's stream hub (docs/realtime.md) with the real guest: the
// test stream route (handlers/testroutes/stream.go) over SQL, wake-ups
// through the guest's realtime.publish op, streams held by the host.

func (h *home) appendEvents(t testing.TB, topic string, n int) int64 {
	t.Helper()
	path := "/__test/stream/" + topic
	if n > 1 {
		path += "?count=" + strconv.Itoa(n)
	}
	r := h.do(t, "POST", path, nil)
	if r.status != 200 {
		t.Fatalf("append to %s: %s", topic, r)
	}
	var out struct {
		Seq       int64
		Published bool
	}
	mustJSON(t, r, &out)
	if !out.Published {
		t.Fatalf("append to %s: no wake-up published: %s", topic, r)
	}
	return out.Seq
}

type streamStats struct{ Seq, Gets, Polls int64 }

// streamStats is what the application saw of a topic: its last seq, the
// stream GETs it served, and of them the home's re-polls.
func (h *home) streamStats(t testing.TB, topic string) streamStats {
	t.Helper()
	var s streamStats
	mustJSON(t, h.get(t, "/__test/stream-stats/"+topic), &s)
	return s
}

func mustJSON(t testing.TB, r response, v any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s", r)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
}

func (h *home) waitHeld(t testing.TB, n int64) {
	t.Helper()
	for end := time.Now().Add(hangGuard); h.host.Stats().Streams.Held != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("held streams: %d, want %d", h.host.Stats().Streams.Held, n)
		}
	}
}

// TestSSEDeliversEventsAfterSubscribing: a held stream gets what is
// appended after it subscribed, through wake-ups, in order, after the
// first answer's events; no instance is held meanwhile, and the internal
// headers never reach the client.
func TestSSEDeliversEventsAfterSubscribing(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			h.appendEvents(t, "t/a/c/1", 2)
			c := h.openSSE(t, nil, "/__test/stream/t/a/c/1")
			if ct := c.resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("content type %q", ct)
			}
			for name := range c.resp.Header {
				if strings.HasPrefix(name, "Pommy-Stream-") {
					t.Errorf("internal header %s reached the client", name)
				}
			}
			consecutive(t, c.until(t, 2), 1, 2)
			h.waitHeld(t, 1)
			if st := h.host.Stats(); st.Busy != 0 {
				t.Errorf("an instance is busy while the stream waits: %+v", st)
			}
			for range 5 {
				h.appendEvents(t, "t/a/c/1", 1)
			}
			last := h.appendEvents(t, "t/a/c/1", 3)
			consecutive(t, c.until(t, last), 3, last)
			if s := h.streamStats(t, "t/a/c/1"); s.Polls == 0 || s.Gets != s.Polls+1 {
				t.Errorf("the application saw %+v: one subscription, then re-polls", s)
			}
		})
	}
}

// TestSSEResumeMissesNothing: a client that drops and comes back with
// Last-Event-ID gets exactly what it missed, however much, in pages.
func TestSSEResumeMissesNothing(t *testing.T) {
	h := startHome(t, homeOptions{})
	h.appendEvents(t, "t/r/c/1", 3)
	c := h.openSSE(t, nil, "/__test/stream/t/r/c/1")
	consecutive(t, c.until(t, 3), 1, 3)
	c.close()
	// While it is away: more than one page (the route's is 100).
	h.appendEvents(t, "t/r/c/1", 250)
	last := h.appendEvents(t, "t/r/c/1", 7)
	c = h.openSSE(t, nil, "/__test/stream/t/r/c/1", "Last-Event-ID", "3")
	consecutive(t, c.until(t, last), 4, last)
	// And the stream goes on from there.
	next := h.appendEvents(t, "t/r/c/1", 1)
	consecutive(t, c.until(t, next), next, next)
}

// TestWakeupStormCoalesces: a thousand wake-ups that arrive while a
// stream's poll waits for an instance become one more poll, not a
// thousand.
func TestWakeupStormCoalesces(t *testing.T) {
	h := startHome(t, homeOptions{pool: 2, queueWait: 20 * time.Second})
	c := h.openSSE(t, nil, "/__test/stream/t/s/c/1")
	h.waitHeld(t, 1)
	before := h.host.Stats().Streams
	// Both instances busy: the first wake-up's poll waits in the queue.
	var sleepers sync.WaitGroup
	for range 2 {
		sleepers.Add(1)
		go func() {
			defer sleepers.Done()
			h.get(t, "/__test/sleep?ms=3000")
		}()
	}
	waitUntil(t, "both instances busy", func() bool { return h.host.Stats().Busy == 2 })
	rt := h.host.Realtime()
	rt.Publish(context.Background(), "t/s/c/1")
	waitUntil(t, "the poll queued", func() bool { return h.host.Stats().Queued == 1 })
	for range 999 {
		rt.Publish(context.Background(), "t/s/c/1")
	}
	sleepers.Wait()
	waitUntil(t, "the polls done", func() bool {
		st := h.host.Stats()
		return st.Busy == 0 && st.Streams.Polls-before.Polls == 2
	})
	after := h.host.Stats().Streams
	if polls, coalesced := after.Polls-before.Polls, after.Coalesced-before.Coalesced; polls != 2 || coalesced != 998 {
		t.Errorf("1000 wake-ups: %d polls (want 2: the one waiting, one more), %d coalesced", polls, coalesced)
	}
	// The stream is alive and delivers.
	last := h.appendEvents(t, "t/s/c/1", 1)
	consecutive(t, c.until(t, last), 1, last)
}

func waitUntil(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(hangGuard); !ok(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestStreamOutlivesRequestTimeout: a held stream is not cut by the
// per-request deadline; each poll has one of its own.
func TestStreamOutlivesRequestTimeout(t *testing.T) {
	h := startHome(t, homeOptions{timeout: 2 * time.Second})
	c := h.openSSE(t, nil, "/__test/stream/t/o/c/1")
	h.waitHeld(t, 1)
	time.Sleep(3 * time.Second) // past the deadline and its grace
	last := h.appendEvents(t, "t/o/c/1", 2)
	consecutive(t, c.until(t, last), 1, last)
	if st := h.host.Stats(); st.Timeouts != 0 || st.Streams.Held != 1 {
		t.Errorf("stats: %+v", st)
	}
}

// TestStreamPollErrorEnds: when a re-poll is refused (here: the session
// "revoked" once the client has seen seq 2), the stream gets `event:
// error` with the application's error and ends; nothing after seq 2 leaks.
func TestStreamPollErrorEnds(t *testing.T) {
	h := startHome(t, homeOptions{})
	c := h.openSSE(t, nil, "/__test/stream/t/e/c/1?fail_at=2")
	h.waitHeld(t, 1)
	h.appendEvents(t, "t/e/c/1", 1)
	h.appendEvents(t, "t/e/c/1", 1)
	consecutive(t, c.until(t, 2), 1, 2)
	h.appendEvents(t, "t/e/c/1", 1)
	f, ok := c.next(t)
	var e struct {
		Error struct{ Code, Message string }
	}
	if !ok || f.event != "error" || json.Unmarshal([]byte(f.data), &e) != nil || e.Error.Code != "unauthorized" {
		t.Fatalf("want event: error unauthorized, got %+v (open %v)", f, ok)
	}
	if f, ok := c.next(t); ok {
		t.Fatalf("the stream went on after its error: %+v", f)
	}
	if c.err != nil {
		t.Errorf("the stream was cut rather than ended: %v", c.err)
	}
	h.waitHeld(t, 0)
}

// TestStreamHeartbeat: a quiet stream gets `event: ping` at the interval.
func TestStreamHeartbeat(t *testing.T) {
	h := startHome(t, homeOptions{streamHeartbeat: 50 * time.Millisecond})
	c := h.openSSE(t, nil, "/__test/stream/t/h/c/1")
	for range 2 {
		f, ok := c.nextAny(t)
		var p struct{ T int64 }
		if !ok || f.event != "ping" || json.Unmarshal([]byte(f.data), &p) != nil || p.T <= 0 {
			t.Fatalf("want a ping, got %+v", f)
		}
	}
}

// TestLongPoll: a long-poll with nothing new waits for a wake-up and
// returns the events then; with no wake-up it returns empty at the end of
// its wait; with events it returns at once.
func TestLongPoll(t *testing.T) {
	h := startHome(t, homeOptions{})
	type page struct {
		Events []struct{ Seq int64 }
		Cursor int64
	}
	got := make(chan response, 1)
	go func() { got <- h.get(t, "/__test/stream/t/l/c/1?wait=30") }()
	h.waitHeld(t, 1)
	h.appendEvents(t, "t/l/c/1", 2)
	var p page
	r := <-got
	mustJSON(t, r, &p)
	if len(p.Events) != 2 || p.Cursor != 2 || r.header.Get("Pommy-Stream-Cursor") != "" {
		t.Fatalf("woken long-poll: %s %v", r, r.header)
	}
	mustJSON(t, h.get(t, "/__test/stream/t/l/c/1?wait=1&after=2"), &p)
	if len(p.Events) != 0 || p.Cursor != 2 {
		t.Fatalf("long-poll with no wake-up: %+v", p)
	}
	mustJSON(t, h.get(t, "/__test/stream/t/l/c/1?wait=30&after=1"), &p)
	if len(p.Events) != 1 || p.Cursor != 2 {
		t.Fatalf("long-poll with an event at hand: %+v", p)
	}
}

// TestStreamCap: past --max-streams, an SSE stream gets `event: error`
// too_many_streams and ends, and a long-poll that would wait gets 503.
func TestStreamCap(t *testing.T) {
	h := startHome(t, homeOptions{maxStreams: 2})
	h.openSSE(t, nil, "/__test/stream/t/c/c/1")
	h.openSSE(t, nil, "/__test/stream/t/c/c/2")
	h.waitHeld(t, 2)
	c := h.openSSE(t, nil, "/__test/stream/t/c/c/3")
	f, ok := c.next(t)
	if !ok || f.event != "error" || !strings.Contains(f.data, `"code":"too_many_streams"`) {
		t.Fatalf("third stream: %+v", f)
	}
	if _, ok := c.next(t); ok {
		t.Fatal("the refused stream went on")
	}
	r := h.get(t, "/__test/stream/t/c/c/3?wait=5")
	if r.status != 503 || r.errorCode() != "too_many_streams" || r.header.Get("Retry-After") == "" {
		t.Fatalf("long-poll past the cap: %s", r)
	}
	// A long-poll that need not wait is not a held stream.
	h.appendEvents(t, "t/c/c/3", 1)
	if r := h.get(t, "/__test/stream/t/c/c/3?wait=5"); r.status != 200 {
		t.Fatalf("long-poll with events at the cap: %s", r)
	}
}

// TestShutdownEndsStreams: closing the home ends every held stream
// cleanly; the clients resume elsewhere with Last-Event-ID.
func TestShutdownEndsStreams(t *testing.T) {
	h := startHome(t, homeOptions{})
	h.appendEvents(t, "t/d/c/1", 1)
	a := h.openSSE(t, nil, "/__test/stream/t/d/c/1")
	b := h.openSSE(t, nil, "/__test/stream/t/d/c/2")
	consecutive(t, a.until(t, 1), 1, 1)
	h.waitHeld(t, 2)
	if err := h.host.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sseClient{a, b} {
		if f, ok := c.next(t); ok || c.err != nil {
			t.Errorf("after shutdown: %+v, %v", f, c.err)
		}
	}
}

// TestClientCannotForgeStreamHeaders: Pommy-Stream-* headers a client
// sends never reach the application, on a stream's first request or on
// any other.
func TestClientCannotForgeStreamHeaders(t *testing.T) {
	h := startHome(t, homeOptions{})
	r := h.do(t, "GET", "/__test/stream-echo", nil, "Pommy-Stream-Poll", "1", "Pommy-Stream-Topic", "t/x", "pommy-stream-cursor", "9")
	var echo struct{ Headers map[string][]string }
	mustJSON(t, r, &echo)
	if len(echo.Headers) != 0 {
		t.Errorf("the application saw %v", echo.Headers)
	}
	c := h.openSSE(t, nil, "/__test/stream/t/f/c/1", "Pommy-Stream-Poll", "1")
	if got := c.resp.Header.Get("X-Pommy-Test-Poll"); got != "0" {
		t.Errorf("the stream's first request reached the application as a poll: %q", got)
	}
	h.waitHeld(t, 1)
	last := h.appendEvents(t, "t/f/c/1", 1)
	consecutive(t, c.until(t, last), 1, last)
	// The home's own re-polls do carry it.
	if s := h.streamStats(t, "t/f/c/1"); s.Polls < 1 || s.Gets != s.Polls+1 {
		t.Errorf("application stats %+v", s)
	}
}
