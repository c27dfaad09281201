package egress

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"pommy.ai/edge/storage"
)

func publicReq(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(storage.EgressPolicyHeader, storage.EgressPublicHTTPS)
	return req
}

// TestPublicPolicy: the webhook policy reaches no private address even
// when the allow-list and --egress-private would, never follows a
// redirect, and lets through only the test allow-list's exact addresses.
func TestPublicPolicy(t *testing.T) {
	var got http.Header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(204)
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirect.Close()
	addr := target.Listener.Addr().String()
	raddr := redirect.Listener.Addr().String()

	open, err := New(Options{Allow: []string{"127.0.0.1:*"}, AllowPrivateNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"https://" + addr + "/", target.URL, "https://localhost:1/"} {
		if _, err := open.Do(publicReq(t, u)); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s under the public policy: %v, want refused", u, err)
		}
	}

	c, err := New(Options{TestPublicAllow: []string{addr, raddr}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(publicReq(t, target.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || got.Get(storage.EgressPolicyHeader) != "" {
		t.Fatalf("status %d, policy header leaked: %q", resp.StatusCode, got.Get(storage.EgressPolicyHeader))
	}
	got = nil
	resp, err = c.Do(publicReq(t, redirect.URL))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || got != nil {
		t.Fatalf("redirect: status %d, followed: %v", resp.StatusCode, got != nil)
	}
	req := publicReq(t, target.URL)
	req.Header.Set(storage.EgressPolicyHeader, "anything")
	if _, err := c.Do(req); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("unknown policy: %v", err)
	}
}
