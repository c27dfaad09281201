package host

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/storage"
)

// gateKV holds every guest that reaches the test guest's /sleep "enter"
// put until the test opens the gate: an instance held for exactly as long
// as the test wants, with no timing involved.
type gateKV struct {
	probeKV
	entered chan struct{} // one value per guest held
	open    chan struct{}
}

func (k *gateKV) Put(ctx context.Context, key string, v []byte, o storage.KVPutOptions) error {
	if err := k.probeKV.Put(ctx, key, v, o); err != nil || key != "enter" {
		return err
	}
	k.entered <- struct{}{}
	select {
	case <-k.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type gated struct {
	h    *Host
	url  string
	kv   *gateKV
	once sync.Once
}

func (g *gated) release() { g.once.Do(func() { close(g.kv.open) }) }

func startGated(t *testing.T, opts Options) *gated {
	t.Helper()
	g := &gated{kv: &gateKV{entered: make(chan struct{}, 16), open: make(chan struct{})}}
	log := &logBuffer{}
	opts.Module, opts.CacheDir, opts.Platform.KV = testGuest, cacheDir, g.kv
	opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Timeout = 2 * time.Minute // only a failure guard: nothing here waits for a deadline
	h, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	g.h, g.url = h, srv.URL
	t.Cleanup(func() {
		g.release()
		srv.Close()
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", log)
		}
	})
	return g
}

// client gives up after 30 s: a failure guard for a request that should
// have been refused at once.
var client = &http.Client{Timeout: 30 * time.Second}

type reply struct {
	status     int
	code       string
	retryAfter string
	err        error
}

func (g *gated) get(path string) reply {
	resp, err := client.Get(g.url + path)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), err: err}
	if resp.StatusCode != 200 {
		r.code = errorCodeOf(b)
	}
	return r
}

// hold starts a request that holds the one instance until release, and
// waits until the guest is in it.
func (g *gated) hold(t *testing.T) <-chan reply {
	t.Helper()
	done := make(chan reply, 1)
	go func() { done <- g.get("/sleep?ms=0") }()
	select {
	case <-g.kv.entered:
	case r := <-done:
		t.Fatalf("the holding request ended before it held the instance: %+v", r)
	case <-time.After(time.Minute): // failure guard
		t.Fatal("the holding request never reached the guest")
	}
	return done
}

// waitQueued waits until n requests wait for an instance.
func (g *gated) waitQueued(t *testing.T, n int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); g.h.Stats().Queued != n; { // failure guard
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", g.h.Stats().Queued, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shedOK(r reply) bool {
	ra, err := strconv.Atoi(r.retryAfter)
	return r.err == nil && r.status == 503 && r.code == "overloaded" && err == nil && ra >= 1
}

// TestQueueFullIsShed: with the one instance held and the queue full,
// every further request is refused at once with 503 overloaded and
// Retry-After, while the instance is still held; the queued requests are
// then all served.
func TestQueueFullIsShed(t *testing.T) {
	const queue, extra = 3, 4
	g := startGated(t, Options{Pool: 1, MaxQueue: queue, QueueWait: 2 * time.Minute})
	holder := g.hold(t)

	queued := make(chan reply, queue)
	for range queue {
		go func() { queued <- g.get("/rand") }()
	}
	g.waitQueued(t, queue)
	served := g.h.Stats().Requests
	for i := range extra {
		if r := g.get("/rand"); !shedOK(r) {
			t.Fatalf("request %d past a full queue: %+v, want 503 overloaded with Retry-After", i+1, r)
		}
	}
	// Ordering, not timing: all of that happened while the instance was
	// held, so none of the queued requests can have been served yet.
	select {
	case r := <-queued:
		t.Fatalf("a queued request finished while the instance was held: %+v", r)
	case r := <-holder:
		t.Fatalf("the holding request finished early: %+v", r)
	default:
	}
	if s := g.h.Stats(); s.Shed != extra || s.ShedWaited != 0 || s.Queued != queue {
		t.Errorf("stats: shed %d (waited %d), queued %d; want %d, 0, %d", s.Shed, s.ShedWaited, s.Queued, extra, queue)
	}
	if s := g.h.Stats(); s.Requests != served {
		t.Errorf("the guest ran for %d refused requests: they must be refused before it runs", s.Requests-served)
	}

	g.release()
	if r := <-holder; r.err != nil || r.status != 200 {
		t.Errorf("holding request: %+v", r)
	}
	for range queue {
		if r := <-queued; r.err != nil || r.status != 200 {
			t.Errorf("queued request: %+v, want 200", r)
		}
	}
	if s := g.h.Stats(); s.Queued != 0 || s.Shed != extra {
		t.Errorf("after: queued %d, shed %d", s.Queued, s.Shed)
	}
}

// TestDefaultQueue: by default four requests per instance may wait.
func TestDefaultQueue(t *testing.T) {
	g := startGated(t, Options{Pool: 1, QueueWait: 2 * time.Minute})
	holder := g.hold(t)
	queued := make(chan reply, 4)
	for range 4 {
		go func() { queued <- g.get("/rand") }()
	}
	g.waitQueued(t, 4)
	if r := g.get("/rand"); !shedOK(r) {
		t.Fatalf("a fifth waiting request: %+v, want 503 overloaded", r)
	}
	g.release()
	<-holder
	for range 4 {
		if r := <-queued; r.status != 200 {
			t.Errorf("queued: %+v", r)
		}
	}
}

// TestDefaultQueueWait: by default a request waits for an instance for a
// bounded time (1 s), not until its deadline (2 min here).
func TestDefaultQueueWait(t *testing.T) {
	g := startGated(t, Options{Pool: 1})
	holder := g.hold(t)
	if r := g.get("/rand"); !shedOK(r) {
		t.Fatalf("waiting request: %+v, want 503 overloaded", r)
	}
	if s := g.h.Stats(); s.ShedWaited != 1 {
		t.Errorf("stats: %+v", s)
	}
	g.release()
	<-holder
}

// TestQueueWaitIsBounded: a request that waits QueueWait for an instance
// is refused with 503 overloaded while the instance is still held, well
// before its own deadline; the next one, once the instance is free, is
// served.
func TestQueueWaitIsBounded(t *testing.T) {
	g := startGated(t, Options{Pool: 1, MaxQueue: 8, QueueWait: 100 * time.Millisecond})
	holder := g.hold(t)
	if r := g.get("/rand"); !shedOK(r) {
		t.Fatalf("request that waited past QueueWait: %+v, want 503 overloaded with Retry-After", r)
	}
	select {
	case r := <-holder:
		t.Fatalf("the holding request finished early: %+v", r)
	default:
	}
	if s := g.h.Stats(); s.Shed != 1 || s.ShedWaited != 1 || s.Queued != 0 || s.Timeouts != 0 {
		t.Errorf("stats: %+v", s)
	}
	g.release()
	<-holder
	if r := g.get("/rand"); r.err != nil || r.status != 200 {
		t.Errorf("after the instance came free: %+v", r)
	}
}

// TestScheduledIsNotShed: without job workers, the host's own scheduled
// work queues behind a held instance however full the request queue is,
// and runs once the instance is free.
func TestScheduledIsNotShed(t *testing.T) {
	g := startGated(t, Options{Pool: 1, MaxQueue: 1, QueueWait: 2 * time.Minute, JobWorkers: -1})
	holder := g.hold(t)
	queued := make(chan reply, 1)
	go func() { queued <- g.get("/rand") }()
	g.waitQueued(t, 1)
	sched := make(chan error, 1)
	go func() { sched <- g.h.RunScheduled(context.Background()) }()
	g.waitQueued(t, 2)
	if r := g.get("/rand"); !shedOK(r) {
		t.Fatalf("request past the full queue: %+v", r)
	}
	g.release()
	<-holder
	if r := <-queued; r.status != 200 {
		t.Errorf("queued request: %+v", r)
	}
	if err := <-sched; err != nil {
		t.Fatalf("scheduled run: %v", err)
	}
	if s := g.h.Stats(); s.Shed != 1 || s.ScheduledRuns != 1 {
		t.Errorf("stats: %+v", s)
	}
}

// TestScheduledTakesNoRequestInstance: with job workers (the default),
// scheduled work and jobs run on their own instances: a scheduled run
// finishes while every request instance is held, and takes no place in
// the requests' queue.
func TestScheduledTakesNoRequestInstance(t *testing.T) {
	g := startGated(t, Options{Pool: 1, MaxQueue: 1, QueueWait: 2 * time.Minute})
	holder := g.hold(t)
	queued := make(chan reply, 1)
	go func() { queued <- g.get("/rand") }()
	g.waitQueued(t, 1)
	if err := g.h.RunScheduled(context.Background()); err != nil {
		t.Fatalf("scheduled run while the request instance is held: %v", err)
	}
	if s := g.h.Stats(); s.Queued != 1 || s.ScheduledRuns != 1 {
		t.Errorf("stats: %+v", s)
	}
	g.release()
	<-holder
	if r := <-queued; r.status != 200 {
		t.Errorf("queued request: %+v", r)
	}
}

func errorCodeOf(b []byte) string {
	var e struct {
		Error struct{ Code string }
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Error.Code
}
