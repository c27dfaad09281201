package e2e

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// startAdmission is a home with one instance and the given queue bounds.
func startAdmission(t *testing.T, maxQueue int, queueWait time.Duration) *home {
	t.Helper()
	return startHome(t, homeOptions{pool: 1, maxQueue: maxQueue, queueWait: queueWait})
}

// sleeper holds the home's one instance with /__test/sleep for ms and
// returns when the guest is in it; the channel gets its response.
func sleeper(t *testing.T, h *home, ms int) <-chan response {
	t.Helper()
	done := make(chan response, 1)
	go func() { done <- h.fetch("/__test/sleep?ms=" + strconv.Itoa(ms)) }()
	for deadline := time.Now().Add(time.Minute); h.host.Stats().Busy != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sleeper never took the instance")
		}
	}
	return done
}

// fetch is get without a testing.TB, for goroutines.
func (h *home) fetch(path string) response {
	resp, err := (&http.Client{Timeout: time.Minute}).Get(h.url + path)
	if err != nil {
		return response{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func overloaded(r response) bool {
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	return r.status == 503 && r.errorCode() == "overloaded" && err == nil && ra >= 1 &&
		r.header.Get("X-Content-Type-Options") == "nosniff"
}

func waitQueued(t *testing.T, h *home, n int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); h.host.Stats().Queued != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", h.host.Stats().Queued, n)
		}
	}
}

// TestOverloadIsShed: past capacity the excess is refused at once with 503
// overloaded and Retry-After, and the admitted requests are served. With
// the one instance held by a sleeping request and the queue full, each
// further request is refused while the sleeper still sleeps (ordering: its
// response has not come); then the queued ones get 200.
func TestOverloadIsShed(t *testing.T) {
	const queue, extra = 3, 5
	h := startAdmission(t, queue, 2*time.Minute)
	slept := sleeper(t, h, 5000)
	queued := make(chan response, queue)
	for range queue {
		go func() { queued <- h.fetch("/healthz") }()
	}
	waitQueued(t, h, queue)
	for i := range extra {
		if r := h.get(t, "/healthz"); !overloaded(r) {
			t.Fatalf("request %d past the full queue: %v %v, want 503 overloaded with Retry-After", i+1, r, r.header)
		}
	}
	select {
	case r := <-slept:
		t.Fatalf("the sleeper finished before the excess was refused (%v): the refusals were not fast", r)
	case r := <-queued:
		t.Fatalf("a queued request finished while the instance was held: %v", r)
	default:
	}
	if s := h.host.Stats(); s.Shed != extra || s.Queued != queue {
		t.Errorf("stats: shed %d, queued %d; want %d, %d", s.Shed, s.Queued, extra, queue)
	}
	if r := <-slept; r.status != 200 {
		t.Errorf("sleeper: %v", r)
	}
	for range queue {
		if r := <-queued; r.status != 200 {
			t.Errorf("queued request: %v, want 200", r)
		}
	}
}

// TestQueueWaitIsShed: a request that has waited the longest queue wait is
// refused with 503 overloaded while the instance is still held, long
// before its own deadline.
func TestQueueWaitIsShed(t *testing.T) {
	h := startAdmission(t, 8, 200*time.Millisecond)
	slept := sleeper(t, h, 5000)
	if r := h.get(t, "/healthz"); !overloaded(r) {
		t.Fatalf("request that waited past the queue wait: %v %v, want 503 overloaded", r, r.header)
	}
	select {
	case r := <-slept:
		t.Fatalf("the sleeper finished before the waiting request was refused (%v)", r)
	default:
	}
	if s := h.host.Stats(); s.Shed != 1 || s.ShedWaited != 1 || s.Timeouts != 0 {
		t.Errorf("stats: %+v", s)
	}
	<-slept
	if r := h.get(t, "/healthz"); r.status != 200 {
		t.Errorf("after the instance came free: %v", r)
	}
}

// TestTenantRate crosses an organization's own request rate through the
// shipped guest, in both modes: instances started from one snapshot share
// the Go runtime's random state, which must not decide the counting.
func TestTenantRate(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			apitest.TenantRate(t, &apitest.Client{Base: h.url})
		})
	}
}
