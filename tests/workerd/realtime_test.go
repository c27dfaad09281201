//go:build !windows

package workerd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/streamclient"
	"pommy.ai/edge/tests/workerd/wrangler"
)

// Knobs of the RealtimeTopic object for this suite: a short heartbeat, so
// that one arrives within the test, and a small per-topic cap, so that a
// test can cross it.
const (
	rtHeartbeat = 400 * time.Millisecond
	rtMax       = 3
	// raceMargin is RACE_MARGIN_MS in worker/js/entry.mjs.
	raceMargin = 2 * time.Second
)

// TestRealtime runs the edge's stream holder (worker/js/entry.mjs: the entry
// module and the RealtimeTopic Durable Object) against the test stream
// route in real workerd: SSE delivery through the object's wake-up and
// re-poll, resume, paging, heartbeats, poll errors, the per-topic cap, a
// client's forged Pommy-Stream-Poll, long-poll, and the delivery latency
// (logged, not asserted).
func TestRealtime(t *testing.T) {
	root, build := testWorker(t)
	w := start(t, wrangler.Options{Root: root, Name: "realtime", SkipBuild: true, BuildDir: build,
		Vars: []string{"POMMY_TEST_ROUTES:1",
			"POMMY_STREAM_HEARTBEAT_MS:" + strconv.Itoa(int(rtHeartbeat/time.Millisecond)),
			"POMMY_STREAM_MAX:" + strconv.Itoa(rtMax)}})
	c := &http.Client{}
	// Each subtest has its own topics: one object each.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := func(name string) string { return "t/" + run + "/" + name }

	// Each subtest has two minutes: a stream that never delivers fails
	// instead of hanging the suite.
	sub := func(name string, f func(t *testing.T, ctx context.Context)) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			f(t, ctx)
		})
	}

	sub("sse", func(t *testing.T, ctx context.Context) {
		tp := topic("sse")
		s := open(t, ctx, c, w, tp, "")
		defer s.Close()
		for k, v := range s.Resp.Header {
			if strings.HasPrefix(strings.ToLower(k), "pommy-stream-") {
				t.Errorf("the client got the hand-off header %s: %v", k, v)
			}
		}
		if ct := s.Resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		for i := 1; i <= 3; i++ {
			appendEvent(t, ctx, c, w, tp)
			expect(t, s, i)
		}
		// The stream was opened once; everything after came from the
		// object's re-polls (Pommy-Stream-Poll: 1).
		st := stats(t, c, w, tp)
		if st.Gets != 1+st.Polls || st.Polls < 3 {
			t.Errorf("stream stats %+v: want 1 client GET and at least 3 polls", st)
		}
	})

	sub("resume", func(t *testing.T, ctx context.Context) {
		tp := topic("resume")
		for range 5 {
			appendEvent(t, ctx, c, w, tp)
		}
		// The first answer holds what the client missed.
		s := open(t, ctx, c, w, tp, "2")
		expect(t, s, 3, 4, 5)
		appendEvent(t, ctx, c, w, tp)
		expect(t, s, 6)
		s.Close()
		// Away while three events are written: back with the last id, it
		// gets exactly those, then the next one live.
		for range 3 {
			appendEvent(t, ctx, c, w, tp)
		}
		s = open(t, ctx, c, w, tp, "6")
		defer s.Close()
		expect(t, s, 7, 8, 9)
		appendEvent(t, ctx, c, w, tp)
		expect(t, s, 10)
	})

	sub("more", func(t *testing.T, ctx context.Context) {
		// Pages of 2 over 7 waiting events: the first answer says More,
		// and the object polls on at once, with no wake-up needed.
		tp := topic("more")
		appendCount(t, ctx, c, w, tp, 7)
		// Outside the object's RACE_MARGIN_MS (2 s) after that wake-up, so
		// that only More can make it poll (a longer pause never fails).
		time.Sleep(raceMargin + 500*time.Millisecond)
		s := open(t, ctx, c, w, tp+"?page=2", "")
		defer s.Close()
		expect(t, s, 1, 2, 3, 4, 5, 6, 7)
		// And a burst written by one publish arrives whole.
		appendCount(t, ctx, c, w, tp, 5)
		expect(t, s, 8, 9, 10, 11, 12)
	})

	sub("storm", func(t *testing.T, ctx context.Context) {
		// Concurrent appends, each with its own wake-up: the object
		// coalesces; the client gets every event once, in order.
		tp := topic("storm")
		s := open(t, ctx, c, w, tp, "")
		defer s.Close()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { appendEvent(t, ctx, c, w, tp) })
		}
		wg.Wait()
		want := make([]int, 20)
		for i := range want {
			want[i] = i + 1
		}
		expect(t, s, want...)
	})

	sub("heartbeat", func(t *testing.T, ctx context.Context) {
		s := open(t, ctx, c, w, topic("heartbeat"), "")
		defer s.Close()
		for range 2 {
			e, err := s.Next()
			if err != nil {
				t.Fatal(err)
			}
			var ping struct{ T int64 }
			if e.Type != "ping" || json.Unmarshal([]byte(e.Data), &ping) != nil || ping.T <= 0 {
				t.Fatalf("on a quiet stream: %+v, want event ping with data {\"t\":<unix ms>}", e)
			}
		}
	})

	sub("poll-error", func(t *testing.T, ctx context.Context) {
		// The application refuses re-polls from cursor 2 on (a revoked
		// session): the stream gets its error as an event, then ends.
		tp := topic("poll-error")
		s := open(t, ctx, c, w, tp+"?fail_at=2&fail_status=401", "")
		defer s.Close()
		appendEvent(t, ctx, c, w, tp)
		expect(t, s, 1)
		appendEvent(t, ctx, c, w, tp)
		expect(t, s, 2)
		appendEvent(t, ctx, c, w, tp)
		e, err := s.NextData()
		var body struct {
			Error struct{ Code, Message string }
		}
		if err != nil || e.Type != "error" || json.Unmarshal([]byte(e.Data), &body) != nil || body.Error.Code != "unauthorized" {
			t.Fatalf("after a refused poll: %+v, %v; want event error with the application's 401 body", e, err)
		}
		if e, err := s.NextData(); err != io.EOF {
			t.Fatalf("after the error event: %+v, %v; want the end of the stream", e, err)
		}
	})

	sub("cap", func(t *testing.T, ctx context.Context) {
		tp := topic("cap")
		var held []*streamclient.Stream
		for range rtMax {
			held = append(held, open(t, ctx, c, w, tp, ""))
		}
		over := open(t, ctx, c, w, tp, "")
		e, err := over.NextData()
		if err != nil || e.Type != "error" || !strings.Contains(e.Data, `"too_many_streams"`) {
			t.Fatalf("stream %d of a topic capped at %d: %+v, %v; want event error too_many_streams", rtMax+1, rtMax, e, err)
		}
		if _, err := over.NextData(); err != io.EOF {
			t.Fatalf("after too_many_streams: %v, want the end of the stream", err)
		}
		over.Close()
		// A long-poll over the cap gets a 503 in the error shape.
		status, body := longPoll(t, ctx, c, w, tp, 0, 5)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"too_many_streams"`) {
			t.Errorf("long-poll over the cap: %d %s, want 503 too_many_streams", status, body)
		}
		// The held ones still work.
		appendEvent(t, ctx, c, w, tp)
		for _, s := range held {
			expect(t, s, 1)
		}
		// Clients that leave free their places: the object notices (a
		// failed write, or a client that reads nothing) and a new stream
		// is held again.
		for _, s := range held {
			s.Close()
		}
		deadline := time.Now().Add(time.Minute)
		for {
			s := open(t, ctx, c, w, tp, "1")
			appendEvent(t, ctx, c, w, tp)
			e, err := s.NextData()
			s.Close()
			if err == nil && e.Type != "error" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a minute after every held stream closed, a new one still gets %+v, %v", e, err)
			}
			time.Sleep(rtHeartbeat)
		}
	})

	sub("head", func(t *testing.T, ctx context.Context) {
		// A HEAD of a stream route is answered, not held.
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, w.URL+"/__test/stream/"+topic("head"), nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Pommy-Stream-Topic") != "" {
			t.Errorf("HEAD of a stream route: %d %v", resp.StatusCode, resp.Header)
		}
	})

	sub("forged-poll-header", func(t *testing.T, ctx context.Context) {
		// Only the home sets Pommy-Stream-*: what a client sends never
		// reaches the application.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.URL+"/__test/stream-echo", nil)
		req.Header.Set("Pommy-Stream-Poll", "1")
		req.Header.Set("Pommy-Stream-Topic", "t/other")
		req.Header.Set("Pommy-Stream-Cursor", "5")
		status, body := do(t, req, time.Minute)
		var echo struct{ Headers map[string][]string }
		if status != http.StatusOK || json.Unmarshal(body, &echo) != nil {
			t.Fatalf("GET /__test/stream-echo: %d %s", status, body)
		}
		for k := range echo.Headers {
			if strings.HasPrefix(strings.ToLower(k), "pommy-stream-") {
				t.Errorf("the application saw the client's %s: %s", k, body)
			}
		}
		// On a stream route the forged header would have made this a
		// re-poll, which fail_at=0 refuses: it must be a first answer.
		tp := topic("forged")
		s := open(t, ctx, c, w, tp+"?fail_at=0", "", "Pommy-Stream-Poll", "1")
		defer s.Close()
		if p := s.Resp.Header.Get("X-Pommy-Test-Poll"); p != "0" {
			t.Errorf("first answer to a client claiming Pommy-Stream-Poll: X-Pommy-Test-Poll %q, want 0", p)
		}
	})

	sub("longpoll", func(t *testing.T, ctx context.Context) {
		tp := topic("longpoll")
		// Events waiting: answered at once, by the first answer.
		appendEvent(t, ctx, c, w, tp)
		status, body := longPoll(t, ctx, c, w, tp, 0, 20)
		if ev := pageOf(t, status, body); len(ev.Events) != 1 || ev.Cursor != 1 {
			t.Fatalf("long-poll with an event waiting: %d %s", status, body)
		}
		// No event in time: the first, empty answer.
		status, body = longPoll(t, ctx, c, w, tp, 1, 1)
		if ev := pageOf(t, status, body); len(ev.Events) != 0 || ev.Cursor != 1 {
			t.Fatalf("long-poll with nothing for 1 s: %d %s", status, body)
		}
		// A wake-up while held: the answer is the object's re-poll.
		before := stats(t, c, w, tp).Gets
		type answer struct {
			status int
			body   []byte
			poll   string
		}
		done := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/__test/stream/%s?mode=longpoll&after=1&wait=25", w.URL, tp), nil)
			resp, err := c.Do(req)
			if err != nil {
				done <- answer{status: -1, body: []byte(err.Error())}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- answer{resp.StatusCode, b, resp.Header.Get("X-Pommy-Test-Poll")}
		}()
		// Append once the application has given its first (empty) answer.
		for stats(t, c, w, tp).Gets == before && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		appendEvent(t, ctx, c, w, tp)
		a := <-done
		if ev := pageOf(t, a.status, a.body); len(ev.Events) != 1 || ev.Events[0].Seq != 2 || ev.Cursor != 2 || a.poll != "1" {
			t.Fatalf("long-poll woken by an append: %d %s (X-Pommy-Test-Poll %q), want event 2 from a re-poll", a.status, a.body, a.poll)
		}
	})

	// The application's own streams, end to end at the edge: a person's
	// conversation stream and inbox feed get a message sent after they
	// subscribed, and when the person's session ends, the next poll is
	// refused by Go and the stream ends with that error.
	sub("conversation", func(t *testing.T, ctx context.Context) {
		api := &apitest.Client{Base: w.URL, HTTP: &http.Client{Timeout: time.Minute}}
		apitest.ConversationStreams(t, ctx, api, "edge", nil)
	})

	// Delivery latency through the object: logged for the record (make
	// bench reports it), never asserted.
	sub("latency", func(t *testing.T, ctx context.Context) {
		lat, err := streamclient.MeasureLatency(ctx, c, w.URL, topic("latency"), 200)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("workerd delivery latency, append -> SSE event through the Durable Object: %v", lat)
	})
}

func open(t *testing.T, ctx context.Context, c *http.Client, w *wrangler.Dev, path, lastID string, header ...string) *streamclient.Stream {
	t.Helper()
	s, err := streamclient.Open(ctx, c, w.URL+"/__test/stream/"+path, lastID, header...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendEvent(t *testing.T, ctx context.Context, c *http.Client, w *wrangler.Dev, topic string) {
	t.Helper()
	if _, err := streamclient.Append(ctx, c, w.URL, topic); err != nil {
		t.Error(err)
	}
}

func appendCount(t *testing.T, ctx context.Context, c *http.Client, w *wrangler.Dev, topic string, n int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/__test/stream/%s?count=%d", w.URL, topic, n), nil)
	if status, body := do(t, req, time.Minute); status != http.StatusOK || !strings.Contains(string(body), `"published":true`) {
		t.Fatalf("appending %d: %d %s", n, status, body)
	}
}

// expect reads the next data events and wants exactly these ids, in order.
func expect(t *testing.T, s *streamclient.Stream, ids ...int) {
	t.Helper()
	for _, id := range ids {
		e, err := s.NextData()
		if err != nil {
			t.Fatalf("waiting for event %d: %v", id, err)
		}
		if e.Type != "test" || e.ID != strconv.Itoa(id) {
			t.Fatalf("got %+v, want event %d", e, id)
		}
		var ev struct{ Seq int }
		if json.Unmarshal([]byte(e.Data), &ev) != nil || ev.Seq != id {
			t.Fatalf("event %d has data %s", id, e.Data)
		}
	}
}

type streamStats struct{ Seq, Gets, Polls int64 }

func stats(t *testing.T, c *http.Client, w *wrangler.Dev, topic string) streamStats {
	t.Helper()
	status, body := get(t, w, "/__test/stream-stats/"+topic, time.Minute)
	var st streamStats
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("stream stats: %d %s", status, body)
	}
	return st
}

func longPoll(t *testing.T, ctx context.Context, c *http.Client, w *wrangler.Dev, topic string, after, wait int) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/__test/stream/%s?mode=longpoll&after=%d&wait=%d", w.URL, topic, after, wait), nil)
	status, body := do(t, req, time.Minute)
	return status, body
}

type page struct {
	Events []struct{ Seq int64 }
	Cursor int64
}

func pageOf(t *testing.T, status int, body []byte) page {
	t.Helper()
	var p page
	if status != http.StatusOK {
		t.Fatalf("long-poll: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("long-poll: %v: %s", err, body)
	}
	return p
}

// testWorker skips the test where wrangler cannot run, else builds the
// worker's test build (-tags testroutes) into a temporary folder; it
// returns the repository root and that folder.
func testWorker(t *testing.T) (root, build string) {
	t.Helper()
	if err := wrangler.Available(); err != nil {
		t.Skip(err)
	}
	root, err := wrangler.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	build = t.TempDir()
	if err := wrangler.Build(context.Background(), root, build, wrangler.TestTags, t.Logf); err != nil {
		t.Fatal(err)
	}
	return root, build
}
