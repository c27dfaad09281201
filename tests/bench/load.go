//go:build !windows

package main

import (
	"bytes"
	"context"
	"crypto/rand"
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
	"pommy.ai/edge/tests/workerd/wrangler"
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
// session, an API key and a contact with convsPerOrg conversations. key and
// conv are the first organization's first.
type fixture struct {
	base, key, conv string
	orgs            []org
	next            atomic.Uint64
}

type org struct {
	key, token string
	convs      []string
}

// convsPerOrg is how many conversations each organization has: the sends
// of a load run spread over them in turn, as a tenant's visitors write in
// many conversations at once, so that concurrent sends rarely race for one
// conversation's next sequence number.
const convsPerOrg = 16

// newFixture signs up orgs organizations and sets each up as an operator
// would for heavy traffic: its owner raises the organization's request
// rate to the most the API allows (PATCH /v1/settings) and makes an API
// key for the conversation routes at the highest per-minute limit a key
// can have, so that the load runs measure the routes rather than the
// limits meant for abuse; the key makes a contact and its conversations.
// Signing up goes through the acceptance suite's helpers (tests/apitest),
// which follow the API as it changes. The load runs spread their requests
// over the organizations in turn.
func newFixture(ctx context.Context, c *http.Client, base string, orgs int) (*fixture, error) {
	return newFixtureN(ctx, c, base, orgs, convsPerOrg)
}

// newFixtureN is newFixture with convs conversations per organization.
func newFixtureN(ctx context.Context, c *http.Client, base string, orgs, convs int) (*fixture, error) {
	ac := &apitest.Client{Base: base, HTTP: c, Verify: verifiers[base]}
	f := &fixture{base: base}
	for i := range max(orgs, 1) {
		var o org
		err := catch(func(t testing.TB) {
			s := ac.Signup(t, fmt.Sprintf("Bench Co %d", i+1))
			o.token = s.Token
			s.Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": maxTenantRate}).Expect(t, 200)
			r := s.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "bench",
				"scopes": []string{"contacts:write", "conversations:read", "conversations:write"}, "rate_limit_per_minute": maxKeyRate}).Expect(t, 201)
			o.key, _ = r.JSON(t)["key"].(string)
			if o.key == "" {
				t.Fatalf("no key in %s", r.Body)
			}
			auth := bearer(o.key)
			ct := ac.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Bench visitor"}, auth...).Expect(t, 201).JSON(t)["id"].(string)
			for range convs {
				cv := ac.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": ct, "subject": "Order 1234"}, auth...).Expect(t, 201)
				o.convs = append(o.convs, cv.JSON(t)["id"].(string))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("signing up organization %d with its rate raised, an API key and %d conversations: %w", i+1, convs, err)
		}
		f.orgs = append(f.orgs, o)
	}
	f.key, f.conv = f.orgs[0].key, f.orgs[0].convs[0]
	return f, nil
}

// verifiers mark a new owner's address verified on a home without test
// routes (the shipped worker in wrangler dev), by its base URL; the other
// homes use the test build's shortcut.
var verifiers = map[string]func(t testing.TB, email string){}

// d1Verifier verifies owners' addresses in a wrangler dev's local D1.
func d1Verifier(dev *wrangler.Dev) func(t testing.TB, email string) {
	return func(t testing.TB, email string) {
		if strings.ContainsAny(email, "'\\") {
			t.Fatalf("unexpected address %q", email)
		}
		sql := fmt.Sprintf("UPDATE users SET email_verified_at = %d WHERE email = '%s'", time.Now().UnixMilli(), strings.ToLower(email))
		if err := dev.D1Exec(context.Background(), sql); err != nil {
			t.Fatalf("verifying %s in the local D1: %v", email, err)
		}
	}
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

// messageText is a typical chat message (about 200 characters).
const messageText = "Hello! My order 1234 was supposed to arrive on Tuesday but the tracking page still says it is at the depot. " +
	"Could you check what is going on and when I can expect it? Thanks."

var messageBody = []byte(`{"text":"` + messageText + `"}`)

// sendMessage is a visitor's message (the API key writes as the
// conversation's contact) with a fresh Idempotency-Key, as a client sends
// each new message.
func sendMessage(base, key, conv string) request {
	return request{method: "POST", url: base + "/v1/conversations/" + conv + "/messages", body: messageBody,
		header: append(bearer(key), "Content-Type", "application/json", "Idempotency-Key", rand.Text()), want: 201}
}

func getConversation(base, key, conv string) request {
	return request{method: "GET", url: base + "/v1/conversations/" + conv, header: bearer(key), want: 200}
}

// turn picks the organization and conversation of the next request: the
// organizations in turn, and each one's conversations in turn.
func (f *fixture) turn() (org, string) {
	n := f.next.Add(1) - 1
	o := f.orgs[n%uint64(len(f.orgs))]
	return o, o.convs[(n/uint64(len(f.orgs)))%uint64(len(o.convs))]
}

// sendMessage and getConversation are on the first organization's first
// conversation; sendMessages and getConversations take the organizations
// and their conversations in turn.
func (f *fixture) sendMessage() request     { return sendMessage(f.base, f.key, f.conv) }
func (f *fixture) getConversation() request { return getConversation(f.base, f.key, f.conv) }
func (f *fixture) sendMessages() func() request {
	return func() request { o, cv := f.turn(); return sendMessage(f.base, o.key, cv) }
}
func (f *fixture) getConversations() func() request {
	return func() request { o, cv := f.turn(); return getConversation(f.base, o.key, cv) }
}
func (f *fixture) sessionChecks() func() request {
	return func() request { o, _ := f.turn(); return meRequest(f.base, o.token) }
}

func healthz(base string) request {
	return request{method: "GET", url: base + "/healthz", want: 200}
}
