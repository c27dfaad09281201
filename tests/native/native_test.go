// Package native runs the acceptance suite against the handlers compiled
// natively (no Wasm) on the local platform's adapters: the baseline the
// Wasm homes are compared with, and the quickest place to debug a scenario.
// The scenarios that need to move time (session timeouts, key expiry) run
// here, with a clock the test controls.
package native

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	_ "pommy.ai/edge/handlers/testroutes" // Config.TestRoutes below
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
	"pommy.ai/edge/wasm/host/local"
)

func TestNativeHandlers(t *testing.T) {
	c, _ := start(t)
	v := openapi.Attach(t, c)
	apitest.Run(t, c, "native")
	v.RequireCoverage(t)
}

// testLimits sets the approximate per-IP login limit (TestLoginShedding).
func testLimits(login int) map[string]storage.Limit {
	l := maps.Clone(storage.Limits)
	l[storage.LimitLogin] = storage.Limit{Limit: login, Period: time.Minute}
	return l
}

func start(t *testing.T) (*apitest.Client, *storagetest.Clock) { return startWith(t, nil) }

func startWith(t *testing.T, limits map[string]storage.Limit) (*apitest.Client, *storagetest.Clock) {
	clock := storagetest.NewClock(time.Now().UTC())
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir(), Clock: clock, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Home = "native"
	// TestRoutes lets the suite choose a client IP (X-Pommy-Test-Client-IP).
	srv := httptest.NewServer(handlers.New(p.Platform, handlers.Config{Version: "test", TestRoutes: true}))
	t.Cleanup(srv.Close)
	return &apitest.Client{Base: srv.URL}, clock
}

func TestIdleTimeout(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Idle Co")
	clock.Advance(29 * time.Minute)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200) // activity moves last_seen
	clock.Advance(29 * time.Minute)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	clock.Advance(31 * time.Minute)
	if code := o.Do(t, "GET", "/v1/me", nil).Expect(t, 401).ErrorCode(t); code != "session_expired" {
		t.Errorf("code %s", code)
	}
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401) // and it stays ended
}

func TestIdleTimeoutTenantSetting(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Strict Co")
	o.Do(t, "PATCH", "/v1/settings", map[string]any{"session_idle_minutes": 5}).Expect(t, 200)
	clock.Advance(6 * time.Minute)
	o.Do(t, "GET", "/v1/me", nil).Expect(t, 401)
}

func TestAbsoluteTimeout(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Absolute Co")
	for range 12*3 - 1 { // active every 20 minutes for 11 h 40 min
		clock.Advance(20 * time.Minute)
		o.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
	}
	clock.Advance(20 * time.Minute) // 12 h since login, though active
	if code := o.Do(t, "GET", "/v1/me", nil).Expect(t, 401).ErrorCode(t); code != "session_expired" {
		t.Errorf("code %s", code)
	}
	// Signing in again works.
	c.LoginSession(t, o.Email).Do(t, "GET", "/v1/me", nil).Expect(t, 200)
}

func TestAPIKeyExpiry(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Expiry Co")
	m := o.Do(t, "POST", "/v1/api-keys", map[string]any{"name": "short", "scopes": []string{"conversations:read"},
		"expires_at": clock.Now().Add(time.Hour).Format(time.RFC3339)}).Expect(t, 201).JSON(t)
	key := m["key"].(string)
	auth := []string{"Authorization", "Bearer " + key}
	c.Do(t, "GET", "/v1/canned-responses", nil, auth...).Expect(t, 200)
	clock.Advance(time.Hour + time.Second)
	if code := c.Do(t, "GET", "/v1/canned-responses", nil, auth...).Expect(t, 401).ErrorCode(t); code != "api_key_expired" {
		t.Errorf("code %s", code)
	}
}

func TestThrottleDelayPasses(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Delay Co")
	ip := []string{"X-Pommy-Test-Client-IP", "203.0.113.9"}
	for range 5 {
		c.Login(t, o.Email, "wrong password here", ip...).Expect(t, 401)
	}
	r := c.Login(t, o.Email, apitest.Password, ip...).Expect(t, 429)
	if r.Header.Get("Retry-After") != "30" {
		t.Errorf("Retry-After %q, want 30 after the 5th failure", r.Header.Get("Retry-After"))
	}
	clock.Advance(31 * time.Second)
	c.Login(t, o.Email, "wrong again, sixth", ip...).Expect(t, 401)
	if ra := c.Login(t, o.Email, apitest.Password, ip...).Expect(t, 429).Header.Get("Retry-After"); ra != "60" {
		t.Errorf("Retry-After %q, want 60 (the delay doubles)", ra)
	}
	clock.Advance(61 * time.Second)
	c.Login(t, o.Email, apitest.Password, ip...).Expect(t, 200)
	// The success reset the account+IP counter.
	c.Login(t, o.Email, "wrong once more", ip...).Expect(t, 401)
	c.Login(t, o.Email, apitest.Password, ip...).Expect(t, 200)
}

func TestAccountThrottleSparesKnownIP(t *testing.T) {
	c, clock := start(t)
	o := c.Signup(t, "Distributed Co")
	home := []string{apitest.TestClientIP, "198.51.100.1"}
	c.LoginSession(t, o.Email, home...) // the person's usual address
	for i := range 25 {                 // a botnet: one failure from each of many IPs
		ip := []string{"X-Pommy-Test-Client-IP", "192.0.2." + itoa(i+1)}
		if r := c.Login(t, o.Email, "botnet guess", ip...); r.Status != 401 && r.Status != 429 {
			t.Fatalf("status %d", r.Status)
		}
	}
	// From a new IP, the mild per-account brake applies (capped at a minute).
	r := c.Login(t, o.Email, apitest.Password, "X-Pommy-Test-Client-IP", "192.0.2.200").Expect(t, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// From the address the person has used, no brake.
	c.Login(t, o.Email, apitest.Password, home...).Expect(t, 200)
	clock.Advance(time.Minute + time.Second)
	c.Login(t, o.Email, apitest.Password, "X-Pommy-Test-Client-IP", "192.0.2.200").Expect(t, 200)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLoginShedding(t *testing.T) {
	c, clock := startWith(t, testLimits(3))
	body := map[string]string{"email": "nobody@example.com", "password": "whatever it is"}
	ip := []string{apitest.TestClientIP, "203.0.113.50"}
	for range 3 {
		c.Do(t, "POST", "/v1/login", body, ip...).Expect(t, 401)
	}
	r := c.Do(t, "POST", "/v1/login", body, ip...).Expect(t, 429)
	if r.ErrorCode(t) != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("shed: %s %v", r.Body, r.Header)
	}
	c.Do(t, "POST", "/v1/login", body, apitest.TestClientIP, "203.0.113.51").Expect(t, 401) // per address ...
	// ... and per account: another account from the same address is not shed.
	c.Do(t, "POST", "/v1/login", map[string]string{"email": "somebody@example.com", "password": "whatever it is"}, ip...).Expect(t, 401)
	// The host limiter slides its window: a minute later part of the last
	// minute still counts, two minutes later none of it does.
	clock.Advance(2*time.Minute + time.Second)
	c.Do(t, "POST", "/v1/login", body, ip...).Expect(t, 401)
}

// TestAddressSpray: one address that fails sign-ins to many accounts is
// slowed down as a whole, except for browsers that have signed in to their
// account before.
func TestAddressSpray(t *testing.T) {
	c, _ := start(t)
	nat := []string{apitest.TestClientIP, "100.64.0.9"}
	person := c.Signup(t, "Carrier Co")
	seen := c.Login(t, person.Email, apitest.Password, append(nat, person.Device...)...).Expect(t, 200)
	device := apitest.DeviceCookieHeader(t, seen)
	var last *apitest.Response
	for i := 0; i < 60 && (last == nil || last.Status != 429); i++ {
		last = c.Login(t, "sprayed"+strconv.Itoa(i)+"@example.com", "password guess", nat...)
	}
	if last.Status != 429 || last.ErrorCode(t) != "too_many_attempts" {
		t.Fatalf("spraying from one address was never slowed: %d %s", last.Status, last.Body)
	}
	// Without a device cookie, the address's brake holds everyone there ...
	c.Login(t, person.Email, apitest.Password, nat...).Expect(t, 429)
	// ... but the person's own browser is counted on its own.
	c.Login(t, person.Email, apitest.Password, append(nat, device...)...).Expect(t, 200)
}

// TestDeviceThrottle: a device cookie is no way round the throttles: its
// own failures are counted, and a made-up or foreign one is ignored.
func TestDeviceThrottle(t *testing.T) {
	c, _ := start(t)
	o := c.Signup(t, "Device Co")
	ip := []string{apitest.TestClientIP, "198.51.100.200"}
	var last *apitest.Response
	for i := 0; i < 15 && (last == nil || last.Status != 429); i++ {
		last = c.Login(t, o.Email, "guess "+strconv.Itoa(i), append(ip, o.Device...)...)
	}
	if last.Status != 429 {
		t.Fatalf("guessing with a device cookie was never throttled: %d", last.Status)
	}
	c.Login(t, o.Email, apitest.Password, append(ip, o.Device...)...).Expect(t, 429)
	// Two device cookies: neither is trusted, so the attempt is counted
	// like any from a new address (and not refused by the device's count).
	two := []string{"Cookie", o.Device[1] + "; " + apitest.DeviceCookie + "=" + strings.Repeat("A", 43)}
	if code := c.Login(t, o.Email, "guess", append([]string{apitest.TestClientIP, "198.51.100.201"}, two...)...).Expect(t, 401).ErrorCode(t); code != "invalid_credentials" {
		t.Errorf("code %s", code)
	}
}

// TestFailedAuthIsShedPerIP: failed credentials count against the address's
// limit, so guessing API keys from one place ends in 429; another address
// is unaffected.
func TestFailedAuthIsShedPerIP(t *testing.T) {
	l := maps.Clone(storage.Limits)
	l[storage.LimitIP] = storage.Limit{Limit: 3, Period: time.Minute}
	c, _ := startWith(t, l)
	_, key := c.Tenant(t, "Shed Co")
	guess := []string{"Authorization", "Bearer pk_live_0000000000000000000000000000", apitest.TestClientIP, "198.51.100.7"}
	for range 3 {
		c.Do(t, "GET", "/v1/canned-responses", nil, guess...).Expect(t, 401)
	}
	r := c.Do(t, "GET", "/v1/canned-responses", nil, guess...).Expect(t, 429)
	if r.ErrorCode(t) != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("shed: %s %v", r.Body, r.Header)
	}
	c.Do(t, "GET", "/v1/canned-responses", nil, "Authorization", "Bearer pk_live_0000000000000000000000000000", apitest.TestClientIP, "198.51.100.8").Expect(t, 401)
	// A valid key is limited per key and tenant, not by others' failures.
	c.Do(t, "GET", "/v1/canned-responses", nil, "Authorization", "Bearer "+key, apitest.TestClientIP, "198.51.100.7").Expect(t, 200)
}

// TestTenantIsShed: one organization's traffic, across all its people and
// keys, is limited to its own rate_limit_per_minute so that it cannot
// starve the others; a minute later it is served again.
func TestTenantIsShed(t *testing.T) {
	c, clock := start(t)
	low := apitest.TenantRate(t, c)
	clock.Advance(2*time.Minute + time.Second)
	low.Do(t, "GET", "/v1/me", nil).Expect(t, 200)
}

// TestAuditRetentionIsRaisedOnly: owners see and raise the audit log's
// retention through the settings; it never goes below 90 days or down.
func TestAuditRetentionIsRaisedOnly(t *testing.T) {
	c, _ := start(t)
	owner := c.Signup(t, "Retention Co")
	if got := owner.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["audit_retention_days"]; got != float64(365) {
		t.Fatalf("default retention %v, want 365", got)
	}
	owner.Do(t, "PATCH", "/v1/settings", map[string]int{"audit_retention_days": 400}).Expect(t, 200)
	for _, days := range []int{399, 89, 30, 5000} {
		r := owner.Do(t, "PATCH", "/v1/settings", map[string]int{"audit_retention_days": days}).Expect(t, 400)
		if code := r.ErrorCode(t); code != "invalid_audit_retention_days" {
			t.Errorf("%d days: code %s", days, code)
		}
	}
	if got := owner.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["audit_retention_days"]; got != float64(400) {
		t.Fatalf("retention %v after the refusals, want 400", got)
	}
	agent := owner.Invite(t, "agent")
	agent.Do(t, "PATCH", "/v1/settings", map[string]int{"audit_retention_days": 500}).Expect(t, 403)
	r := owner.Do(t, "GET", "/v1/audit/events?action=audit.retention", nil).Expect(t, 200)
	if !strings.Contains(string(r.Body), "audit.retention.changed") {
		t.Errorf("the raise was not audited: %s", r.Body)
	}
	if v := owner.Do(t, "GET", "/v1/audit/verify", nil).Expect(t, 200).JSON(t); v["ok"] != true {
		t.Errorf("chain does not verify after the change: %v", v)
	}
}

// TestPublicOrigins: a home told its public origins answers no other Host
// (a DNS-rebinding page names its own host) and takes no other Origin.
func TestPublicOrigins(t *testing.T) {
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	const site = "http://support.example:8787"
	srv := httptest.NewServer(handlers.New(p.Platform, handlers.Config{PublicOrigins: []string{site + "/"}}))
	t.Cleanup(srv.Close)
	send := func(method, path, host string, hdr ...string) *apitest.Response {
		t.Helper()
		body := `{"organization":"Rebind Co","email":"` + strings.ToLower(t.Name()) + strconv.Itoa(len(hdr)) + `@example.com","password":"a long passphrase"}`
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return &apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}
	// The rebinding page: its own name, its own origin, same-origin to the
	// browser.
	r := send("POST", "/v1/signup", "rebind.evil:8787", "Origin", "http://rebind.evil:8787", "Sec-Fetch-Site", "same-origin")
	if r.Status != http.StatusMisdirectedRequest || r.ErrorCode(t) != "unknown_host" || r.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("foreign Host: %d %s", r.Status, r.Body)
	}
	send("GET", "/v1/me", "127.0.0.1", "Origin", site).Expect(t, http.StatusMisdirectedRequest)
	// Probes ask for /healthz by address.
	send("GET", "/healthz", "10.0.0.5:8787").Expect(t, 200)
	// The public name, in any case, with or without an Origin of its own.
	send("GET", "/healthz", "SUPPORT.example:8787").Expect(t, 200)
	send("POST", "/v1/signup", "support.example:8787", "Origin", "http://support.example:9999").Expect(t, 403)
	send("POST", "/v1/signup", "support.example:8787", "Origin", site).Expect(t, 201)
	send("POST", "/v1/signup", "support.example:8787").Expect(t, 201)
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://LocalHost:8787":    "http://localhost:8787",
		"https://a.example:443/":   "https://a.example",
		"http://a.example:80":      "http://a.example",
		"http://[::1]:8787":        "http://[::1]:8787",
		"ftp://a.example":          "",
		"https://a.example/path":   "",
		"https://user@a.example":   "",
		"a.example:8787":           "",
		"https://":                 "",
		"https://a.example?x=1":    "",
		"https://a.example#x":      "",
		" https://b.example:8443 ": "https://b.example:8443",
	} {
		got, err := handlers.ParseOrigin(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestStepUpWindow: dangerous routes need a proof of identity from the
// last five minutes (apitest.StepUpWindow).
func TestStepUpWindow(t *testing.T) {
	c, clock := start(t)
	openapi.Attach(t, c)
	apitest.StepUpWindow(t, c, clock.Advance)
}

// TestMFAChallengeExpiry: the second step of a sign-in expires after five
// minutes (apitest.ChallengeExpiry).
func TestMFAChallengeExpiry(t *testing.T) {
	c, clock := start(t)
	openapi.Attach(t, c)
	apitest.ChallengeExpiry(t, c, clock.Advance)
}
