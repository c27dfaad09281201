package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func TestContract(t *testing.T) {
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, storagetest.LimiterSuite(l))
}

func newTest(t *testing.T, limit int, period time.Duration, maxKeys int) (*Limiter, *storagetest.Clock) {
	t.Helper()
	// Start exactly on a window boundary.
	clk := storagetest.NewClock(time.Unix(0, 0).Add(1000 * period))
	l, err := New(Options{Limits: map[string]storage.Limit{"x": {Limit: limit, Period: period}}, MaxKeys: maxKeys, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func allow(t *testing.T, l *Limiter, key string) storage.LimitDecision {
	t.Helper()
	d, err := l.Allow(context.Background(), "x", key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestExact: the host's limiter is exact, unlike the edge's.
func TestExact(t *testing.T) {
	l, clk := newTest(t, 5, 10*time.Second, 0)
	for i := range 5 {
		if !allow(t, l, "k").Allowed {
			t.Fatalf("event %d refused", i+1)
		}
	}
	d := allow(t, l, "k")
	if d.Allowed {
		t.Fatal("event 6 allowed")
	}
	// All five in this window: the estimate falls below the limit once
	// enough of this window slides out of the next: 5×(1−e) ≤ 4, e = 0.2.
	if want := 12 * time.Second; d.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, want)
	}
	clk.Advance(d.RetryAfter - time.Millisecond)
	if allow(t, l, "k").Allowed {
		t.Errorf("allowed before RetryAfter")
	}
	clk.Advance(time.Millisecond)
	if !allow(t, l, "k").Allowed {
		t.Errorf("refused at RetryAfter")
	}
	if !allow(t, l, "other").Allowed {
		t.Errorf("another key refused")
	}
}

// TestSlidingWindow: a burst at the end of one window still counts at the
// start of the next (a fixed window would allow twice the limit).
func TestSlidingWindow(t *testing.T) {
	l, clk := newTest(t, 10, time.Minute, 0)
	clk.Advance(59 * time.Second)
	for range 10 {
		if !allow(t, l, "k").Allowed {
			t.Fatal("refused within the limit")
		}
	}
	clk.Advance(2 * time.Second) // 1 s into the next window
	d := allow(t, l, "k")
	if d.Allowed {
		t.Fatal("a burst straddling the window edge got twice the limit")
	}
	// 10×(60−e)/60 ≤ 9 → e ≥ 6 s; we are at 1 s.
	if want := 5 * time.Second; d.RetryAfter != want {
		t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, want)
	}
	clk.Advance(d.RetryAfter)
	if !allow(t, l, "k").Allowed {
		t.Errorf("refused at RetryAfter")
	}
	// Two idle windows forget everything.
	clk.Advance(2 * time.Minute)
	for range 10 {
		if !allow(t, l, "k").Allowed {
			t.Fatal("refused after two idle windows")
		}
	}
}

func TestRetryAfterIsPositiveAndSufficient(t *testing.T) {
	for _, limit := range []int{1, 2, 3, 7, 30} {
		l, clk := newTest(t, limit, 10*time.Second, 0)
		for step := range 200 {
			d := allow(t, l, "k")
			if !d.Allowed {
				if d.RetryAfter <= 0 || d.RetryAfter > 20*time.Second {
					t.Fatalf("limit %d: RetryAfter %v", limit, d.RetryAfter)
				}
				clk.Advance(d.RetryAfter)
				if !allow(t, l, "k").Allowed {
					t.Fatalf("limit %d step %d: refused after waiting RetryAfter %v", limit, step, d.RetryAfter)
				}
			}
			clk.Advance(time.Duration(step%7) * 97 * time.Millisecond)
		}
	}
}

func TestBoundedMemory(t *testing.T) {
	l, clk := newTest(t, 3, time.Minute, 1000)
	for i := range 10_000 {
		allow(t, l, fmt.Sprint("k", i))
		if i%100 == 0 {
			clk.Advance(time.Second)
		}
	}
	if n := l.Len("x"); n > 1000 {
		t.Fatalf("%d keys tracked, MaxKeys 1000", n)
	}
	// Idle keys are swept, once the table is full, before live ones are
	// evicted.
	clk.Advance(3 * time.Minute)
	for range 3 {
		allow(t, l, "fresh")
	}
	for i := range 20 {
		allow(t, l, fmt.Sprint("new", i))
	}
	if allow(t, l, "fresh").Allowed {
		t.Errorf("a live key's count was lost to idle keys")
	}
	if n := l.Len("x"); n > 30 {
		t.Errorf("%d keys after idle keys were swept", n)
	}
}

func TestInvalid(t *testing.T) {
	l, _ := newTest(t, 3, time.Minute, 0)
	for _, c := range []struct{ name, key string }{{"y", "k"}, {"", "k"}, {"x", ""}, {"x", string(make([]byte, storage.MaxLimitKey+1))}} {
		if _, err := l.Allow(context.Background(), c.name, c.key); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Allow(%q, %d-byte key): %v", c.name, len(c.key), err)
		}
	}
	for _, bad := range []storage.Limit{{Limit: 0, Period: time.Second}, {Limit: 1, Period: 0}} {
		if _, err := New(Options{Limits: map[string]storage.Limit{"x": bad}}); err == nil {
			t.Errorf("New accepted %+v", bad)
		}
	}
}

// TestConcurrent: the count is exact under contention (run with -race).
func TestConcurrent(t *testing.T) {
	l, _ := newTest(t, 100, time.Hour, 0)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				d, err := l.Allow(context.Background(), "x", "shared")
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d of 400 events allowed, limit 100", allowed)
	}
}
