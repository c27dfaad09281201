//go:build !windows

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// client is the load generator's HTTP client: keep-alive connections for
// every worker, no compression, a generous timeout (a failed request is
// counted, never retried).
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// request describes one request of a load run; body is sent anew each time.
type request struct {
	method, url string
	body        []byte
	header      []string // pairs
	want        int      // expected status
}

func (r request) do(c *http.Client) (int, []byte, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, r.url, body)
	if err != nil {
		return 0, nil, err
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		req.Header.Set(r.header[i], r.header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// result is one measured run. Throughput and latency count only the
// requests answered with the status expected for their route; every other
// answer is a failure, counted by status (0: no answer at all), and a run
// with failures has not measured what it was meant to (report.measured).
type result struct {
	n, errors int
	failed    map[int]int // failures by status; 0 for a transport error
	elapsed   time.Duration
	lat       []time.Duration // sorted
	firstErr  string
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// pct returns the p-th percentile (nearest rank) of the latencies.
func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(r.lat)))) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

// fail counts one failed request.
func (r *result) fail(status int, err error) {
	r.errors++
	if r.failed == nil {
		r.failed = map[int]int{}
	}
	r.failed[status]++
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// failures describes the failures by status: "429 ×1,234, 503 ×5".
func (r result) failures() string {
	codes := slices.Sorted(maps.Keys(r.failed))
	var parts []string
	for _, c := range codes {
		what := strconv.Itoa(c)
		if c == 0 {
			what = "no response"
		}
		parts = append(parts, fmt.Sprintf("%s ×%s", what, thousands(int64(r.failed[c]))))
	}
	return strings.Join(parts, ", ")
}

// add adds the requests of r2 to r, unsorted.
func (r *result) add(r2 result) {
	r.lat = append(r.lat, r2.lat...)
	r.errors += r2.errors
	if r.firstErr == "" {
		r.firstErr = r2.firstErr
	}
	for c, n := range r2.failed {
		if r.failed == nil {
			r.failed = map[int]int{}
		}
		r.failed[c] += n
	}
}

// merge adds two runs of the same load together.
func merge(a, b result) result {
	out := result{n: a.n + b.n, elapsed: a.elapsed + b.elapsed, lat: make([]time.Duration, 0, len(a.lat)+len(b.lat))}
	out.add(a)
	out.add(b)
	slices.Sort(out.lat)
	return out
}

// load runs conc workers sending req back to back: warm first (not
// counted), then for dur. Throughput counts the requests that finished
// inside the measured window; latency is each request's wall time.
func load(c *http.Client, req request, conc int, warm, dur time.Duration) result {
	if warm > 0 {
		run(c, req, conc, warm)
	}
	return run(c, req, conc, dur)
}

// loadEach is load with the request of each send made by next.
func loadEach(c *http.Client, next func() request, conc int, warm, dur time.Duration) result {
	if warm > 0 {
		runEach(c, next, conc, warm)
	}
	return runEach(c, next, conc, dur)
}

func run(c *http.Client, req request, conc int, dur time.Duration) result {
	return runEach(c, func() request { return req }, conc, dur)
}

// runEach is run with the request of each send made by next, which the
// workers call concurrently.
func runEach(c *http.Client, next func() request, conc int, dur time.Duration) result {
	var (
		mu  sync.Mutex
		res result
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(dur)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine result
			mine.lat = make([]time.Duration, 0, 4096)
			for time.Now().Before(end) {
				req := next()
				t := time.Now()
				status, body, err := req.do(c)
				d := time.Since(t)
				if err == nil && status != req.want {
					err = fmt.Errorf("status %d: %.200s", status, body)
				}
				if err != nil {
					mine.fail(status, err)
					continue
				}
				mine.lat = append(mine.lat, d)
			}
			mu.Lock()
			res.add(mine)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// sequential sends req n times one after another (after warm unmeasured
// ones) and returns the latencies.
func sequential(c *http.Client, req request, warm, n int) result {
	return sequentialEach(c, func() request { return req }, warm, n)
}

// sequentialEach is sequential with each request made by next.
func sequentialEach(c *http.Client, next func() request, warm, n int) result {
	for range warm {
		next().do(c)
	}
	var res result
	start := time.Now()
	for range n {
		req := next()
		t := time.Now()
		status, body, err := req.do(c)
		d := time.Since(t)
		if err == nil && status != req.want {
			err = fmt.Errorf("status %d: %.200s", status, body)
		}
		if err != nil {
			res.fail(status, err)
			continue
		}
		res.lat = append(res.lat, d)
	}
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// fixture is organizations on a running home, each with its owner's
// session, an API key and one note. key and note are the first one's.
type fixture struct {
	base, key, note string
	orgs            []org
	next            atomic.Uint64
}

type org struct{ key, note, token string }

// newFixture signs up orgs organizations and sets each up as an operator
// would for heavy traffic: its owner raises the organization's request
// rate to the most the API allows (PATCH /v1/settings) and makes an API
// key for the notes routes at the highest per-minute limit a key can have,
// so that the load runs measure the routes rather than the limits meant
// for abuse. Signing up goes through the acceptance suite's helpers
// (tests/apitest), which follow the API as it changes. The load runs
// spread their requests over the organizations in turn.
func newFixture(ctx context.Context, c *http.Client, base string, orgs int) (*fixture, error) {
	ac := &apitest.Client{Base: base, HTTP: c}
	f := &fixture{base: base}
	for i := range max(orgs, 1) {
		var o org
		err := catch(func(t testing.TB) {
			s := ac.Signup(t, fmt.Sprintf("Bench Co %d", i+1))
			o.token = s.Token
			s.Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": maxTenantRate}).Expect(t, 200)
			r := s.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "bench",
				"scopes": []string{"notes:read", "notes:write"}, "rate_limit_per_minute": maxKeyRate}).Expect(t, 201)
			o.key, _ = r.JSON(t)["key"].(string)
			if o.key == "" {
				t.Fatalf("no key in %s", r.Body)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("signing up organization %d with its rate raised and an API key: %w", i+1, err)
		}
		status, body, err := createNote(base, o.key).do(c)
		if err != nil {
			return nil, err
		}
		var n struct{ ID string }
		if status != 201 || json.Unmarshal(body, &n) != nil || n.ID == "" {
			return nil, fmt.Errorf("creating a note: %d %.300s", status, body)
		}
		o.note = n.ID
		f.orgs = append(f.orgs, o)
	}
	f.key, f.note = f.orgs[0].key, f.orgs[0].note
	return f, nil
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// maxTenantRate is the highest request rate an organization can have (a
// minute; docs/api.md, settings).
const maxTenantRate = 60_000

// maxKeyRate is the API's highest per-key limit (requests a minute).
const maxKeyRate = 100_000

// benchTB lets the bench call apitest's helpers, which are written for
// tests: a failure panics, and catch turns the panic into an error.
type benchTB struct{ testing.TB }

type tbFailure struct{ msg string }

func (benchTB) Helper()                        {}
func (benchTB) Name() string                   { return "bench" }
func (benchTB) Log(...any)                     {}
func (benchTB) Logf(string, ...any)            {}
func (benchTB) Cleanup(func())                 {}
func (benchTB) Failed() bool                   { return false }
func (benchTB) Fatal(a ...any)                 { panic(tbFailure{fmt.Sprint(a...)}) }
func (benchTB) Fatalf(format string, a ...any) { panic(tbFailure{fmt.Sprintf(format, a...)}) }
func (benchTB) Error(a ...any)                 { panic(tbFailure{fmt.Sprint(a...)}) }
func (benchTB) Errorf(format string, a ...any) { panic(tbFailure{fmt.Sprintf(format, a...)}) }

func catch(f func(testing.TB)) (err error) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case tbFailure:
			err = errors.New(r.msg)
		default:
			err = fmt.Errorf("%v", r)
		}
	}()
	f(benchTB{})
	return nil
}

// noteBody is a small, typical note: a title and a 1 KiB body.
var noteBody = []byte(`{"title":"Order 1234: where is my parcel?","body":"` + string(bytes.Repeat([]byte("x"), 1024)) + `"}`)

func createNote(base, key string) request {
	return request{method: "POST", url: base + "/v1/notes", body: noteBody,
		header: append(bearer(key), "Content-Type", "application/json"), want: 201}
}

func getNote(base, key, note string) request {
	return request{method: "GET", url: base + "/v1/notes/" + note, header: bearer(key), want: 200}
}

// turn picks the organization of the next request: each in turn.
func (f *fixture) turn() org { return f.orgs[(f.next.Add(1)-1)%uint64(len(f.orgs))] }

// createNote and getNote are on the first organization; createNotes and
// getNotes take the organizations in turn.
func (f *fixture) createNote() request { return createNote(f.base, f.key) }
func (f *fixture) getNote() request    { return getNote(f.base, f.key, f.note) }
func (f *fixture) createNotes() func() request {
	return func() request { return createNote(f.base, f.turn().key) }
}
func (f *fixture) getNotes() func() request {
	return func() request { o := f.turn(); return getNote(f.base, o.key, o.note) }
}
func (f *fixture) sessionChecks() func() request {
	return func() request { return meRequest(f.base, f.turn().token) }
}

func healthz(base string) request {
	return request{method: "GET", url: base + "/healthz", want: 200}
}
