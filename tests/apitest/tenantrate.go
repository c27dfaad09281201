package apitest

import (
	"strconv"
	"testing"
)

// TenantRate crosses an organization's request rate (rate_limit_per_minute
// in the settings): a tenant lowered to the least rate is refused with 429
// rate_limited and Retry-After once past it, while another tenant is
// served; a tenant raised to twice that gets more than the least rate and
// is still refused past its own. It sends about 2,000 requests, so it is
// not part of Run (the edge's suite would take minutes). It returns the
// low tenant's session, over its rate when TenantRate returns.
func TenantRate(t *testing.T, c *Client) *Session {
	const least = 600 // the smallest setting: one counter of the "tenant" limit
	low := c.Signup(t, "Low Rate Co")
	low.Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": least}).Expect(t, 200)
	if got := low.Do(t, "GET", "/v1/settings", nil).Expect(t, 200).JSON(t)["rate_limit_per_minute"]; got != float64(least) {
		t.Fatalf("rate_limit_per_minute %v after setting %d", got, least)
	}
	quiet := c.Signup(t, "Quiet Rate Co")

	n, r := untilShed(t, low, least+100)
	if r == nil {
		t.Fatalf("%d requests from a tenant allowed %d a minute were never refused", least+100, least)
	}
	// The settings requests above may have counted too (a few).
	if n < least-10 {
		t.Errorf("a tenant allowed %d a minute was refused after %d requests", least, n)
	}
	if code := r.ErrorCode(t); code != "rate_limited" {
		t.Errorf("past the rate: code %s", code)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	quiet.Do(t, "GET", "/v1/me", nil).Expect(t, 200)

	high := c.Signup(t, "High Rate Co")
	high.Do(t, "PATCH", "/v1/settings", map[string]any{"rate_limit_per_minute": 2 * least}).Expect(t, 200)
	n, r = untilShed(t, high, 2*least+100)
	if r == nil {
		t.Fatalf("%d requests from a tenant allowed %d a minute were never refused", 2*least+100, 2*least)
	}
	// Its two counters each take about half: one of them reaching its
	// 600 within the first 700 requests is a one-in-a-billion draw.
	if n < least+100 {
		t.Errorf("a tenant allowed %d a minute was refused after %d requests", 2*least, n)
	}
	return low
}

// untilShed sends GET /v1/me as s up to max times and returns how many
// were served before the first 429, and that 429 (nil if none came).
func untilShed(t *testing.T, s *Session, max int) (int, *Response) {
	t.Helper()
	for i := range max {
		r := s.Do(t, "GET", "/v1/me", nil)
		if r.Status == 429 {
			return i, r
		}
		r.Expect(t, 200)
	}
	return max, nil
}
