package host

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
)

// Instances start from a snapshot by default, so every other test in the
// package runs on restored instances; these check what a snapshot could
// get wrong: randomness, clocks, and what it refuses.

// modes are the two ways of creating instances.
var snapshotModes = []struct {
	name       string
	noSnapshot bool
}{{"snapshot", false}, {"initialize", true}}

func TestSnapshotRandomness(t *testing.T) {
	for _, m := range snapshotModes {
		t.Run(m.name, func(t *testing.T) {
			f := start(t, Options{InstancePerRequest: true, NoSnapshot: m.noSnapshot})
			var crypto [2]string
			var math [2]uint64
			for i := range 2 {
				// Two requests, so two fresh instances for each.
				_, body := f.get(t, "/rand")
				var r randReply
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err, body)
				}
				crypto[i] = r.Random
				_, body = f.get(t, "/mathrand")
				var mr struct{ Uint64 uint64 }
				if err := json.Unmarshal([]byte(body), &mr); err != nil {
					t.Fatal(err, body)
				}
				math[i] = mr.Uint64
			}
			// crypto/rand reads random_get on every call, snapshot or
			// not: fresh instances must draw different bytes.
			if crypto[0] == crypto[1] {
				t.Fatalf("two fresh instances drew the same crypto/rand bytes %s", crypto[0])
			}
			// The runtime's generator is seeded once, at init, so
			// instances copied from one snapshot share its sequence
			// (docs/decisions.md, "Instances start from a snapshot").
			// If this starts failing for the snapshot, something now
			// reseeds it: update the decision record.
			if same := math[0] == math[1]; same != !m.noSnapshot {
				t.Errorf("math/rand/v2 in two fresh instances: %d and %d; with a snapshot they should be equal, without one different", math[0], math[1])
			}
		})
	}
}

func TestSnapshotClocks(t *testing.T) {
	for _, m := range snapshotModes {
		t.Run(m.name, func(t *testing.T) {
			f := start(t, Options{InstancePerRequest: true, NoSnapshot: m.noSnapshot})
			const idle = 300 * time.Millisecond
			time.Sleep(idle) // the snapshot, if any, is this old
			before := time.Now()
			status, body := f.get(t, "/clock")
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var c struct {
				Now, Init, SinceInit, Slept int64
				TimerFired                  bool
			}
			if err := json.Unmarshal([]byte(body), &c); err != nil {
				t.Fatal(err, body)
			}
			now, init := time.Unix(0, c.Now), time.Unix(0, c.Init)
			if now.Before(before.Add(-time.Minute)) || now.After(time.Now().Add(time.Minute)) {
				t.Errorf("guest wall clock says %v, host %v", now, before)
			}
			// time.Since(init) is monotonic; Now-Init is wall time. A
			// monotonic base that did not carry over from the template
			// would set them apart by about the host's uptime.
			since, wall := time.Duration(c.SinceInit), now.Sub(init)
			t.Logf("init ran %v ago (monotonic), %v (wall); a 20ms sleep took %v", since, wall, time.Duration(c.Slept))
			if d := since - wall; d < -time.Second || d > time.Second {
				t.Errorf("since init: monotonic %v, wall %v", since, wall)
			}
			if since < 0 {
				t.Errorf("monotonic time since init is negative: %v", since)
			}
			if !m.noSnapshot && since < idle {
				t.Errorf("init ran %v ago by the guest's clock; the snapshot is at least %v old", since, idle)
			}
			if slept := time.Duration(c.Slept); slept < 20*time.Millisecond || slept > 10*time.Second {
				t.Errorf("a 20ms sleep took %v", slept)
			}
			if !c.TimerFired {
				t.Error("a 10ms timer did not fire before the request's deadline")
			}
		})
	}
}

func TestSnapshotRefusesRandomnessDrawnAtInit(t *testing.T) {
	opts := Options{Module: testGuest, CacheDir: cacheDir, Config: handlers.Config{Version: "init-rand"}}
	_, err := New(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "randomness") {
		t.Fatalf("a guest drawing crypto/rand at init was snapshotted: err = %v", err)
	}
	opts.NoSnapshot = true
	h, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Close(context.Background())
}

func TestSnapshotStats(t *testing.T) {
	for _, m := range snapshotModes {
		t.Run(m.name, func(t *testing.T) {
			f := start(t, Options{NoSnapshot: m.noSnapshot})
			s := f.h.Stats()
			if (s.Snapshot > 0) == m.noSnapshot {
				t.Errorf("Stats().Snapshot = %v", s.Snapshot)
			}
			if s.LastInstantiate <= 0 {
				t.Errorf("Stats().LastInstantiate = %v", s.LastInstantiate)
			}
		})
	}
}

// BenchmarkInstantiate measures creating an instance (what
// Stats().LastInstantiate reports) from the snapshot and by running
// _initialize, and reports the median and the 99th percentile.
// POMMY_BENCH_GUEST names another module to measure, such as
// build/guest.wasm (the real guest; the test guest is much smaller).
func BenchmarkInstantiate(b *testing.B) {
	module := testGuest
	if p := os.Getenv("POMMY_BENCH_GUEST"); p != "" {
		var err error
		if module, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
	for _, m := range snapshotModes {
		b.Run(m.name, func(b *testing.B) {
			h, err := New(context.Background(), Options{Module: module, CacheDir: cacheDir, NoSnapshot: m.noSnapshot})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close(context.Background())
			var d []time.Duration
			for b.Loop() {
				inst, err := h.instantiate(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				d = append(d, h.Stats().LastInstantiate)
				inst.close(h)
			}
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, "ms-median")
			b.ReportMetric(float64(d[(len(d)*99)/100].Microseconds())/1000, "ms-p99")
		})
	}
}

// With an instance per request, one spare instance waits ready: a request
// takes it and the host makes the next in the background.
func TestSpareInstance(t *testing.T) {
	settle := func(f *fixture, alive int64) Stats {
		t.Helper()
		for range 500 {
			if s := f.h.Stats(); s.InstancesRunning == alive {
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("instances alive: %d, want %d", f.h.Stats().InstancesRunning, alive)
		return Stats{}
	}
	f := start(t, Options{InstancePerRequest: true})
	before := settle(f, 1)
	for range 3 {
		if status, body := f.get(t, "/rand"); status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	if s := settle(f, 1); s.Instantiated != before.Instantiated+3 {
		t.Errorf("3 requests made %d instances, want 3 (each took the spare, which was replaced)", s.Instantiated-before.Instantiated)
	}
	if err := f.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := f.h.Stats(); s.InstancesRunning != 0 {
		t.Errorf("%d instances alive after Close", s.InstancesRunning)
	}

	g := start(t, Options{InstancePerRequest: true, NoSpare: true})
	g.get(t, "/rand")
	if s := g.h.Stats(); s.InstancesRunning != 0 {
		t.Errorf("with NoSpare, %d instances alive between requests", s.InstancesRunning)
	}
}
