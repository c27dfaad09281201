//go:build !windows

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
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

// result is one measured run.
type result struct {
	n, errors int
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

// merge adds two runs of the same load together.
func merge(a, b result) result {
	out := result{n: a.n + b.n, errors: a.errors + b.errors, elapsed: a.elapsed + b.elapsed, firstErr: a.firstErr}
	if out.firstErr == "" {
		out.firstErr = b.firstErr
	}
	out.lat = append(append(make([]time.Duration, 0, len(a.lat)+len(b.lat)), a.lat...), b.lat...)
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
			lat := make([]time.Duration, 0, 4096)
			errs, first := 0, ""
			for time.Now().Before(end) {
				req := next()
				t := time.Now()
				status, body, err := req.do(c)
				d := time.Since(t)
				if err == nil && status != req.want {
					err = fmt.Errorf("status %d: %.200s", status, body)
				}
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errors += errs
			if res.firstErr == "" {
				res.firstErr = first
			}
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
			res.errors++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			continue
		}
		res.lat = append(res.lat, d)
	}
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// fixture is a tenant, an API key and one note on a running home.
type fixture struct {
	base, key, note string
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// newFixture signs up a tenant, makes an API key for the notes routes and
// creates one note. Signing up goes through the acceptance suite's helpers
// (tests/apitest), which follow the API as it changes. The key asks for the
// highest per-minute limit the API allows, so that the load runs measure
// the routes rather than the key's rate limit; a key that cannot have one
// falls back to apitest's default key.
func newFixture(ctx context.Context, c *http.Client, base string) (*fixture, error) {
	ac := &apitest.Client{Base: base, HTTP: c}
	f := &fixture{base: base}
	err := catch(func(t testing.TB) {
		s := ac.Signup(t, "Bench Co")
		r := s.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "bench",
			"scopes": []string{"notes:read", "notes:write"}, "rate_limit_per_minute": maxKeyRate})
		if key, _ := r.JSON(t)["key"].(string); r.Status == 201 && key != "" {
			f.key = key
			return
		}
		f.key = s.NewKey(t, apitest.AllScopes...)
	})
	if err != nil {
		return nil, fmt.Errorf("signing up a tenant with an API key: %w", err)
	}
	status, body, err := f.createNote().do(c)
	if err != nil {
		return nil, err
	}
	var n struct{ ID string }
	if status != 201 || json.Unmarshal(body, &n) != nil || n.ID == "" {
		return nil, fmt.Errorf("creating a note: %d %.300s", status, body)
	}
	f.note = n.ID
	return f, nil
}

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

func (f *fixture) createNote() request {
	return request{method: "POST", url: f.base + "/v1/notes", body: noteBody,
		header: append(bearer(f.key), "Content-Type", "application/json"), want: 201}
}

func (f *fixture) getNote() request {
	return request{method: "GET", url: f.base + "/v1/notes/" + f.note, header: bearer(f.key), want: 200}
}

func healthz(base string) request {
	return request{method: "GET", url: base + "/healthz", want: 200}
}
