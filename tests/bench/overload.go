//go:build !windows

package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"pommy.ai/edge/wasm/host"
)

var (
	orgsN     = flag.Int("orgs", 8, "organizations each load run spreads its requests over")
	overloadD = flag.Duration("overload-d", 15*time.Second, "measured duration of each fixed-rate (open-loop) overload run")
)

// mixNext is the overload runs' traffic: 70 % conversation reads, 20 %
// messages sent and 10 % session checks, over the organizations (and their
// conversations) in turn. Each call
// picks the next route of a fixed pseudo-random sequence; it is safe for
// concurrent use.
func (f *fixture) mixNext() func() request {
	var i atomic.Uint64
	return func() request {
		n := i.Add(1) * 0x9E3779B97F4A7C15 // Fibonacci hashing: the routes interleave
		o, cv := f.turn()
		switch (n >> 32) % 10 {
		case 0, 1, 2, 3, 4, 5, 6:
			return getConversation(f.base, o.key, cv)
		case 7, 8:
			return sendMessage(f.base, o.key, cv)
		}
		return meRequest(f.base, o.token)
	}
}

// openResult is one fixed-rate run. ok counts the requests answered as
// their route expects (latency from the moment each was due to be sent,
// so a generator that falls behind adds to it rather than hiding it) and
// the failures; requests refused with 503 overloaded are counted apart,
// as shed.
type openResult struct {
	rate        float64 // the arrival rate asked for, req/s
	window      time.Duration
	sent        int
	inWindow    int // requests answered as expected before the window closed
	ok          result
	shed        []time.Duration // from sending each shed request to its answer, sorted
	maxInFlight int64           // requests sent and not yet answered, at most
	lag         []time.Duration // how late each request was sent, sorted
}

// goodput is the requests answered as expected within the window, a
// second: a host that answers late is not credited with the rate it was
// sent.
func (o openResult) goodput() float64 { return float64(o.inWindow) / o.window.Seconds() }
func (o openResult) offered() float64 { return float64(o.sent) / o.window.Seconds() }

func pctOf(d []time.Duration, p float64) time.Duration { return result{lat: d}.pct(p) }

// openLoop sends requests at a fixed arrival rate for dur, each on its own
// goroutine and whatever the answers take (open loop: a slow server does
// not slow the arrivals, as it does with a fixed number of clients), then
// waits for the answers.
func openLoop(c *http.Client, next func() request, rate float64, dur time.Duration) openResult {
	res := openResult{rate: rate, window: dur}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		inFlight atomic.Int64
		maxIn    atomic.Int64
	)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= dur {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		res.lag = append(res.lag, time.Since(due))
		req := next()
		res.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n, m := inFlight.Add(1), maxIn.Load(); n > m && !maxIn.CompareAndSwap(m, n); m = maxIn.Load() {
			}
			sent := time.Now()
			status, body, err := req.do(c)
			d := time.Since(due)
			inFlight.Add(-1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && status == req.want:
				res.ok.lat = append(res.ok.lat, d)
				if time.Since(start) <= dur {
					res.inWindow++
				}
			case err == nil && status == http.StatusServiceUnavailable && bytes.Contains(body, []byte(`"overloaded"`)):
				res.shed = append(res.shed, time.Since(sent))
			default:
				if err == nil {
					err = fmt.Errorf("%s %s: status %d: %.200s", req.method, req.url, status, body)
				}
				res.ok.fail(status, err)
			}
		}()
	}
	wg.Wait()
	res.ok.n, res.ok.elapsed = len(res.ok.lat), dur
	res.maxInFlight = maxIn.Load()
	slices.Sort(res.ok.lat)
	slices.Sort(res.shed)
	slices.Sort(res.lag)
	return res
}

// overload drives a pooled host (default options: admission control on)
// at a fixed arrival rate of 1× and 2× its capacity, measured first in the
// same run as the closed-loop throughput of the same traffic.
func (x *b) overload() error {
	ctx := context.Background()
	progress("overload: a pooled host with %d organizations, the mix first closed-loop (%d clients, %s) for its capacity...", *orgsN, *conc, *duration)
	h, err := x.startHost("overload", host.Options{})
	if err != nil {
		return err
	}
	defer h.close()
	f, err := newFixture(ctx, x.client, h.url, *orgsN)
	if err != nil {
		return fmt.Errorf("overload: %w", err)
	}
	next := f.mixNext()
	closed := loadEach(x.client, next, *conc, *warmup, *duration)
	clean := x.rep.measured("overload, the mix closed-loop (capacity)", closed)
	capacity := closed.rps()
	if !clean || capacity <= 0 {
		x.rep.section("Overload: a fixed arrival rate past capacity", "Not measured: the closed-loop run that gives the capacity failed.")
		return nil
	}
	progress("  capacity %s req/s (p50 %s, p99 %s)", rate(capacity), ms(closed.pct(50)), ms(closed.pct(99)))

	// Many connections: an open-loop client opens one per request in
	// flight, as a crowd of browsers would.
	oc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, DisableCompression: true, IdleConnTimeout: time.Minute}}
	defer oc.CloseIdleConnections()
	progress("  warm-up: %s req/s for 2s...", rate(capacity))
	openLoop(oc, next, capacity, 2*time.Second)
	type run struct {
		label string
		r     openResult
		stats host.Stats // the host's counters during the run
	}
	measure := func(hh *home, next func() request, m float64, label string) run {
		progress("  %s: %s req/s for %s...", label, rate(m*capacity), *overloadD)
		before := hh.host.Stats()
		r := openLoop(oc, next, m*capacity, *overloadD)
		after := hh.host.Stats()
		progress("    offered %s req/s, goodput %s req/s, p50 %s p99 %s; shed %d (p99 %s); failed %d (%s); at most %d in flight; send lag p99 %s",
			rate(r.offered()), rate(r.goodput()), ms(r.ok.pct(50)), ms(r.ok.pct(99)), len(r.shed), ms(pctOf(r.shed, 99)),
			r.ok.errors, r.ok.failures(), r.maxInFlight, ms(pctOf(r.lag, 99)))
		return run{label, r, host.Stats{Shed: after.Shed - before.Shed, ShedWaited: after.ShedWaited - before.ShedWaited}}
	}
	var runs []run
	for _, m := range []float64{1, 2} {
		r := measure(h, next, m, fmt.Sprintf("%.0f× capacity", m))
		x.rep.measured("overload at "+r.label+" (answers other than the route's status or 503 overloaded)", r.r.ok)
		runs = append(runs, r)
	}
	// For contrast, the host as it was before admission control: requests
	// wait for an instance until their deadline. Not a measurement of
	// the platform as shipped, so its failures do not fail the run.
	off, err := x.startHost("overload-off", host.Options{MaxQueue: 1 << 30, QueueWait: time.Hour})
	if err != nil {
		return err
	}
	defer off.close()
	offF, err := newFixture(ctx, x.client, off.url, *orgsN)
	if err != nil {
		return fmt.Errorf("overload, admission control off: %w", err)
	}
	offNext := offF.mixNext()
	openLoop(oc, offNext, capacity, 2*time.Second)
	runs = append(runs, measure(off, offNext, 2, "2× capacity, admission control off (for contrast)"))

	rows := [][]string{{fmt.Sprintf("closed loop, %d clients (capacity)", *conc), "–", rate(capacity), ms(closed.pct(50)), ms(closed.pct(99)),
		"–", "–", strconv.Itoa(closed.errors), strconv.Itoa(*conc), "–"}}
	for _, r := range runs {
		o := r.r
		shedLat := "–"
		if len(o.shed) > 0 {
			shedLat = ms(pctOf(o.shed, 50)) + " / " + ms(pctOf(o.shed, 99))
		}
		failed := strconv.Itoa(o.ok.errors)
		if o.ok.errors > 0 {
			failed += " (" + o.ok.failures() + ")"
		}
		rows = append(rows, []string{r.label, rate(o.rate) + " (sent " + rate(o.offered()) + ")", rate(o.goodput()), ms(o.ok.pct(50)), ms(o.ok.pct(99)),
			fmt.Sprintf("%s (%s of them after waiting)", thousands(int64(len(o.shed))), thousands(r.stats.ShedWaited)), shedLat,
			failed, strconv.FormatInt(o.maxInFlight, 10), ms(pctOf(o.lag, 99))})
	}
	pool := max(runtime.GOMAXPROCS(0), 2) // the host's default
	x.rep.section("Overload: a fixed arrival rate past capacity",
		fmt.Sprintf("A pooled host with its default options (pool %d; admission control: at most %d requests queued for an instance, "+
			"each for at most 1 s, the rest refused with `503 overloaded` and `Retry-After`), on a fresh data directory, with %d organizations set up as in the "+
			"load runs above. The traffic: 70 %% `GET /v1/conversations/{id}`, 20 %% `POST /v1/conversations/{id}/messages` (API keys), 10 %% `GET /v1/me` (session cookies), "+
			"the organizations in turn. Its capacity is the closed-loop throughput of that same traffic on the same host, measured first (%d clients, %s after a %s warm-up). "+
			"Then an open-loop generator sends requests at a fixed arrival rate, each on its own connection when none is idle, whatever the answers take: "+
			"2 s at 1× capacity unmeasured, then %s at 1× and %s at 2×; then, for contrast, %s at 2× on a second host set up alike but with "+
			"admission control off (queue and queue wait unbounded: requests wait for an instance until their deadline, as before it existed). "+
			"Goodput counts the requests answered with their route's status before the run's time was up, a second; their latency is from when each was due to be sent, so a generator "+
			"that falls behind adds to it instead of hiding it (send lag: how late the generator sent); a shed request's is from its sending to its answer. "+
			"Most in flight: requests sent and not yet answered, each holding a connection. "+
			"A shed request is not a failure: it is what admission control is for; any other answer fails the run (but not in the contrast run). "+
			"The generator shares the machine's %d cores with the host, so at 2× it takes CPU the host would otherwise have.",
			pool, 4*pool, *orgsN, *conc, *duration, *warmup, *overloadD, *overloadD, *overloadD, runtime.NumCPU()))
	x.rep.table([]string{"arrivals", "req/s asked (sent)", "goodput req/s", "p50", "p99", "shed (503 overloaded)", "shed p50 / p99", "failed", "most in flight", "send lag p99"}, rows)
	two := runs[1].r
	good := two.goodput() / capacity
	p99 := float64(two.ok.pct(99)) / float64(max(closed.pct(99), 1))
	x.rep.check("host at 2× capacity (open loop): goodput vs closed-loop capacity", pct(good)+fmt.Sprintf(" (%s of %s req/s)", rate(two.goodput()), rate(capacity)),
		"≥ 80 %", metIf(good >= 0.8, two.ok, closed))
	x.rep.check("host at 2× capacity: p99 of served requests vs closed-loop p99", times(p99)+fmt.Sprintf(" (%s vs %s)", ms(two.ok.pct(99)), ms(closed.pct(99))),
		"≤ 2×", metIf(p99 <= 2, two.ok, closed))
	x.rep.check("host at 2× capacity: requests shed (503 overloaded), p99 of their answer", fmt.Sprintf("%s of %s (%s)", thousands(int64(len(two.shed))),
		thousands(int64(two.sent)), ms(pctOf(two.shed, 99))), "–", "–")
	return nil
}
