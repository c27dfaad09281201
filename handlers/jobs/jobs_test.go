// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func open(t *testing.T) (storage.Platform, *storagetest.Clock) {
	t.Helper()
	clk := storagetest.NewClock(t0)
	return localtest.Open(t, clk), clk
}

func enqueue(t *testing.T, p storage.Platform, s jobs.Spec) {
	t.Helper()
	if _, err := p.SQL.Batch(context.Background(), []storage.Stmt{jobs.Enqueue(s, p.Clock.Now().UnixMilli())}); err != nil {
		t.Fatal(err)
	}
}

type row struct {
	State     string
	Attempts  int
	RunAt     int64
	LastError *string
}

func jobRow(t *testing.T, p storage.Platform, tenant, id string) row {
	t.Helper()
	rows, err := p.SQL.Query(context.Background(), `SELECT state, attempts, run_at, last_error FROM jobs WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil || rows.Len() != 1 {
		t.Fatalf("job %s: %v (%d rows)", id, err, rows.Len())
	}
	var r row
	var le any
	if err := rows.Scan(0, &r.State, &r.Attempts, &r.RunAt, &le); err != nil {
		t.Fatal(err)
	}
	if s, ok := le.(string); ok {
		r.LastError = &s
	}
	return r
}

var quiet = func(string, ...any) {}

func TestBackoffBounds(t *testing.T) {
	p := jobs.Policy{Base: 10 * time.Second, Cap: time.Hour, Timeout: time.Minute}
	r := mrand.New(mrand.NewPCG(1, 2))
	for n := 1; n <= 30; n++ {
		ceil := min(p.Cap, p.Base<<(n-1))
		if n > 20 {
			ceil = p.Cap
		}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := p.Backoff(n, r)
			if d < jobs.MinDelay || d > ceil {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", n, d, jobs.MinDelay, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole range, not around its top.
		if ceil > 10*time.Second && (lo > ceil/10 || hi < ceil*9/10) {
			t.Fatalf("attempt %d: 2000 draws stayed in [%v, %v] of [1s, %v]: not full jitter", n, lo, hi, ceil)
		}
	}
	if d := p.Backoff(1000, r); d > p.Cap {
		t.Fatalf("huge attempt: %v over the cap", d)
	}
}

func TestRunDoneAndRetryThenDead(t *testing.T) {
	p, clk := open(t)
	ctx := context.Background()
	reg := jobs.NewRegistry()
	reg.Log = quiet
	var calls atomic.Int32
	reg.RegisterPolicy("test.fail", func(ctx context.Context, j jobs.Job) error {
		calls.Add(1)
		return errors.New("endpoint answered 500")
	}, jobs.Policy{Base: time.Second, Cap: time.Minute, Timeout: 5 * time.Second}, nil)
	var payloads []string
	reg.Register("test.ok", func(ctx context.Context, j jobs.Job) error {
		payloads = append(payloads, string(j.Payload))
		return nil
	})
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.ok", ID: "job_ok", Payload: json.RawMessage(`{"n":1}`)})
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.fail", ID: "job_fail", Payload: json.RawMessage(`{}`), MaxAttempts: 3})
	// A second enqueue with the same id changes nothing.
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.ok", ID: "job_ok", Payload: json.RawMessage(`{"n":2}`)})

	res, err := reg.Run(ctx, p, jobs.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Taken != 2 || res.Done != 1 || res.Retried != 1 {
		t.Fatalf("first run: %+v", res)
	}
	if len(payloads) != 1 || payloads[0] != `{"n":1}` {
		t.Fatalf("payloads %v", payloads)
	}
	if r := jobRow(t, p, "t1", "job_ok"); r.State != "done" || r.Attempts != 1 {
		t.Fatalf("ok job: %+v", r)
	}
	r := jobRow(t, p, "t1", "job_fail")
	if r.State != "queued" || r.Attempts != 1 || r.LastError == nil || *r.LastError != "endpoint answered 500" {
		t.Fatalf("failed job: %+v", r)
	}
	if r.RunAt < clk.Now().Add(jobs.MinDelay).UnixMilli() {
		t.Fatalf("retry not backed off: run_at %d, now %d", r.RunAt, clk.Now().UnixMilli())
	}
	// Not due yet: nothing runs.
	if res, _ := reg.Run(ctx, p, jobs.RunOptions{}); res.Taken != 0 {
		t.Fatalf("ran a job before its run_at: %+v", res)
	}
	for i := 2; i <= 3; i++ {
		clk.Advance(2 * time.Minute)
		if res, err := reg.Run(ctx, p, jobs.RunOptions{}); err != nil || res.Taken != 1 {
			t.Fatalf("attempt %d: %+v %v", i, res, err)
		}
	}
	if r := jobRow(t, p, "t1", "job_fail"); r.State != "dead" || r.Attempts != 3 {
		t.Fatalf("after the limit: %+v", r)
	}
	clk.Advance(time.Hour)
	if res, _ := reg.Run(ctx, p, jobs.RunOptions{}); res.Taken != 0 || calls.Load() != 3 {
		t.Fatalf("a dead job ran again: %+v, %d calls", res, calls.Load())
	}
}

func TestPermanentIsDeadAtOnce(t *testing.T) {
	p, _ := open(t)
	reg := jobs.NewRegistry()
	reg.Log = quiet
	reg.Register("test.perm", func(ctx context.Context, j jobs.Job) error {
		return jobs.Permanent(errors.New("subscription deleted"))
	})
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.perm", ID: "job_p", Payload: json.RawMessage(`{}`)})
	if res, err := reg.Run(context.Background(), p, jobs.RunOptions{}); err != nil || res.Dead != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if r := jobRow(t, p, "t1", "job_p"); r.State != "dead" || r.Attempts != 1 {
		t.Fatalf("%+v", r)
	}
}

// TestLeaseTakeover: a runner that stalls past its lease loses the job to a
// second runner; the job's side effect happens once per lease, and only the
// second runner's outcome is recorded.
func TestLeaseTakeover(t *testing.T) {
	p, clk := open(t)
	ctx := context.Background()
	reg := jobs.NewRegistry()
	reg.Log = quiet
	var mu sync.Mutex
	var runs []string
	stall := make(chan struct{})
	stalled := make(chan struct{})
	reg.RegisterPolicy("test.slow", func(ctx context.Context, j jobs.Job) error {
		mu.Lock()
		runs = append(runs, j.ID)
		first := len(runs) == 1
		mu.Unlock()
		if first {
			close(stalled)
			<-stall // the first runner hangs until the test lets go
			return errors.New("first runner's late failure")
		}
		return nil
	}, jobs.Policy{Base: time.Second, Cap: time.Minute, Timeout: time.Hour}, nil)
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.slow", ID: "job_s", Payload: json.RawMessage(`{}`)})

	first := make(chan jobs.Result)
	go func() {
		res, _ := reg.Run(ctx, p, jobs.RunOptions{Runner: "A", Lease: time.Minute})
		first <- res
	}()
	<-stalled
	// While A holds a live lease, B gets nothing.
	if res, _ := reg.Run(ctx, p, jobs.RunOptions{Runner: "B", Lease: time.Minute}); res.Taken != 0 {
		t.Fatalf("B took a leased job: %+v", res)
	}
	clk.Advance(2 * time.Minute) // A's lease expires
	if res, err := reg.Run(ctx, p, jobs.RunOptions{Runner: "B", Lease: time.Minute}); err != nil || res.Done != 1 {
		t.Fatalf("B after expiry: %+v %v", res, err)
	}
	close(stall)
	<-first
	if len(runs) != 2 {
		t.Fatalf("runs %v: want one per lease", runs)
	}
	r := jobRow(t, p, "t1", "job_s")
	if r.State != "done" || r.Attempts != 2 || r.LastError != nil {
		t.Fatalf("A's late outcome overwrote B's: %+v", r)
	}
}

// TestConcurrentRunnersTakeOnce: many runners racing over many jobs run
// each job exactly once.
func TestConcurrentRunnersTakeOnce(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	reg := jobs.NewRegistry()
	reg.Log = quiet
	var mu sync.Mutex
	seen := map[string]int{}
	reg.Register("test.count", func(ctx context.Context, j jobs.Job) error {
		mu.Lock()
		seen[j.ID]++
		mu.Unlock()
		return nil
	})
	const n = 60
	var stmts []storage.Stmt
	for range n {
		stmts = append(stmts, jobs.Enqueue(jobs.Spec{Tenant: "t1", Kind: "test.count", Payload: json.RawMessage(`{}`)}, p.Clock.Now().UnixMilli()))
	}
	if _, err := p.SQL.Batch(ctx, stmts); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				res, err := reg.Run(ctx, p, jobs.RunOptions{Limit: 5, Runner: string(rune('A' + w))})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Taken == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d of %d jobs ran", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("job %s ran %d times", id, c)
		}
	}
}

// TestExpiredLastAttemptIsBuried: a job whose last attempt's runner died
// (lease expired, no outcome) is dead, not run beyond its limit.
func TestExpiredLastAttemptIsBuried(t *testing.T) {
	p, clk := open(t)
	ctx := context.Background()
	reg := jobs.NewRegistry()
	reg.Log = quiet
	var calls atomic.Int32
	reg.Register("test.x", func(ctx context.Context, j jobs.Job) error { calls.Add(1); return nil })
	enqueue(t, p, jobs.Spec{Tenant: "t1", Kind: "test.x", ID: "job_x", Payload: json.RawMessage(`{}`), MaxAttempts: 1})
	// Simulate a runner that took it and died.
	if _, err := p.SQL.Exec(ctx, `UPDATE jobs SET state = 'running', attempts = 1, lease_until = ?, leased_by = 'dead-runner' WHERE tenant_id = ? AND id = ?`,
		clk.Now().Add(time.Minute).UnixMilli(), "t1", "job_x"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if res, err := reg.Run(ctx, p, jobs.RunOptions{}); err != nil || res.Dead != 1 || calls.Load() != 0 {
		t.Fatalf("%+v %v calls=%d", res, err, calls.Load())
	}
	if r := jobRow(t, p, "t1", "job_x"); r.State != "dead" || r.LastError == nil {
		t.Fatalf("%+v", r)
	}
}

func TestEnqueueRefusesBadSpecs(t *testing.T) {
	for _, s := range []jobs.Spec{
		{Kind: "x", Payload: json.RawMessage(`{}`)},
		{Tenant: "t", Kind: "Bad Kind", Payload: json.RawMessage(`{}`)},
		{Tenant: "t", Kind: "x", Payload: json.RawMessage(`{`)},
		{Tenant: "t", Kind: "x", Payload: json.RawMessage(`{}`), MaxAttempts: jobs.MaxAttemptsLimit + 1},
		{Tenant: "t", Kind: "x", Payload: json.RawMessage(`"` + string(make([]byte, 20000)) + `"`)},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Enqueue(%+v) did not refuse", s.Kind)
				}
			}()
			jobs.Enqueue(s, 1)
		}()
	}
}
