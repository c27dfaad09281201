// Package e2e drives the local home end to end: the real wasip1 guest,
// built from ./wasm/guest as it ships, run by the wazero host in-process
// over real stores in a temp dir, reached over HTTP. Every suite runs with a
// pool of reused instances and with a fresh instance per request (as at the
// edge).
package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
)

func TestHealthz(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			r := h.get(t, "/healthz")
			var got struct{ Status, Home, Version string }
			if r.status != 200 || json.Unmarshal(r.body, &got) != nil {
				t.Fatalf("healthz: %v", r)
			}
			if got.Status != "ok" || got.Home != "local" || got.Version != "e2e" {
				t.Errorf("healthz = %+v, want ok/local/e2e", got)
			}
			for _, name := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Request-Id"} {
				if r.header.Get(name) == "" {
					t.Errorf("response has no %s", name)
				}
			}
			// The host and the application agree on the request id.
			r = h.do(t, "GET", "/healthz", nil, "X-Request-Id", "client-chosen-id-1")
			if id := r.header.Get("X-Request-Id"); id != "client-chosen-id-1" {
				t.Errorf("X-Request-Id = %q", id)
			}
		})
	}
}

// TestContractSuites runs every storage contract suite inside the guest,
// against the ABI-backed adapters, and reports each case as a subtest.
func TestContractSuites(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			for _, suite := range []string{"sql", "kv", "blobs", "keys", "http", "passwords", "limiter"} {
				t.Run(suite, func(t *testing.T) {
					r := h.get(t, "/__contract/"+suite)
					if r.status != 200 {
						t.Fatalf("GET /__contract/%s: %v", suite, r)
					}
					var results []storagetest.Result
					if err := json.Unmarshal(r.body, &results); err != nil {
						t.Fatalf("decoding results: %v: %s", err, r.body)
					}
					if len(results) == 0 {
						t.Fatal("the suite ran no case")
					}
					for _, res := range results {
						t.Run(res.Name, func(t *testing.T) {
							for _, l := range res.Logs {
								t.Log(l)
							}
							for _, f := range res.Failures {
								t.Error(f)
							}
							if !res.Passed && len(res.Failures) == 0 {
								t.Error("failed without a message")
							}
						})
					}
				})
			}
		})
	}
}

// TestAcceptance runs the application's HTTP acceptance suite, shared by
// every home, against this one, and holds every request and response of it
// to the API's description, docs/openapi.yaml (tests/openapi).
func TestAcceptance(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			c := &apitest.Client{Base: h.url}
			v := openapi.Attach(t, c)
			apitest.Run(t, c, "local")
			v.RequireCoverage(t)
		})
	}
}

// TestApplication walks one tenant through every port: SQL, KV, sealed
// blobs (streamed both ways), keys and the clock.
func TestApplication(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			ch := newChat(t, h, "Acme")
			auth := []string{"Authorization", "Bearer " + ch.key}
			mid := ch.send(t, h, "Where is my parcel?")
			// KV: the conversation was cached when it was made.
			if r := h.do(t, "GET", "/v1/conversations/"+ch.conv+"/events", nil, auth...); r.status != 200 || r.header.Get("Pommy-Cache") != "hit" {
				t.Fatalf("events: %v (Pommy-Cache %q)", r, r.header.Get("Pommy-Cache"))
			}
			attachment := strings.Repeat("0123456789abcdef", 200_000) // 3.2 MB, several chunks each way
			if r := h.do(t, "PUT", attachmentPath(ch.conv, mid), strings.NewReader(attachment), auth...); r.status != 201 {
				t.Fatalf("put attachment: %v", r)
			}
			if r := h.do(t, "GET", attachmentPath(ch.conv, mid), nil, auth...); r.status != 200 || string(r.body) != attachment {
				t.Fatalf("get attachment: %d, %d bytes", r.status, len(r.body))
			}
			if r := h.do(t, "GET", "/v1/conversations/"+ch.conv+"/messages", nil, auth...); r.status != 200 ||
				!strings.Contains(string(r.body), "Where is my parcel?") || !strings.Contains(string(r.body), `"attachment_size":3200000`) {
				t.Fatalf("get messages: %v", r)
			}
		})
	}
}

// chat is a tenant with a contact and a conversation with it, and an API
// key with every scope, which sends the messages (as the visitor) and so
// may attach files to them.
type chat struct{ tenant, key, conv string }

func newChat(t testing.TB, h *home, name string) *chat {
	t.Helper()
	c := &apitest.Client{Base: h.url}
	tenant, key := c.Tenant(t, name)
	auth := []string{"Authorization", "Bearer " + key}
	ct := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Visitor of " + name}, auth...).Expect(t, 201).JSON(t)["id"].(string)
	cv := c.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": ct}, auth...).Expect(t, 201).JSON(t)["id"].(string)
	return &chat{tenant: tenant, key: key, conv: cv}
}

// send sends a message and returns its id.
func (ch *chat) send(t testing.TB, h *home, text string) string {
	t.Helper()
	return (&apitest.Client{Base: h.url}).Do(t, "POST", "/v1/conversations/"+ch.conv+"/messages", map[string]any{"text": text},
		"Authorization", "Bearer "+ch.key, "Idempotency-Key", "k-"+rand.Text()).Expect(t, 201).JSON(t)["id"].(string)
}

// lastSeq is the conversation's last sequence number.
func (ch *chat) lastSeq(t testing.TB, h *home) float64 {
	t.Helper()
	return (&apitest.Client{Base: h.url}).Do(t, "GET", "/v1/conversations/"+ch.conv, nil, "Authorization", "Bearer "+ch.key).Expect(t, 200).JSON(t)["last_seq"].(float64)
}

func attachmentPath(conv, msg string) string {
	return "/v1/conversations/" + conv + "/messages/" + msg + "/attachment"
}

// createTenant signs up a tenant and returns an API key with every scope
// (sign-up returns no key; the owner creates one through the key routes).
func createTenant(t *testing.T, h *home, name string) string {
	t.Helper()
	_, key := (&apitest.Client{Base: h.url}).Tenant(t, name)
	return key
}

// TestGuestRandomnessIsReal: fresh instances draw different API keys. With
// wazero's default random source (a fixed seed) every fresh instance would
// mint the same key, and the second tenant would collide with the first.
func TestGuestRandomnessIsReal(t *testing.T) {
	h := startHome(t, homeOptions{perRequest: true})
	a, b := createTenant(t, h, "One"), createTenant(t, h, "Two")
	if a == b {
		t.Fatalf("two fresh instances minted the same API key %s", a)
	}
}

func TestFaults(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest, timeout: 2 * time.Second, pool: 2})

			t.Run("trap gives 500 and the next request succeeds", func(t *testing.T) {
				before := h.host.Stats()
				r := h.do(t, "POST", "/__test/trap", nil)
				if r.status != 500 || r.errorCode() != "internal" {
					t.Fatalf("trap: %v", r)
				}
				if s := h.host.Stats(); s.Traps != before.Traps+1 {
					t.Errorf("traps %d -> %d", before.Traps, s.Traps)
				}
				for range 3 { // more than the pool: every instance must be sound
					if r := h.get(t, "/healthz"); r.status != 200 {
						t.Fatalf("after a trap: %v", r)
					}
				}
			})

			t.Run("deadline reaches the handler's context", func(t *testing.T) {
				r := h.get(t, "/__test/sleep?ms=60000")
				var got struct{ Ended, Error string }
				json.Unmarshal(r.body, &got)
				if r.status != 503 || got.Ended != "context" || got.Error != "context deadline exceeded" {
					t.Fatalf("sleep past the deadline: %v", r)
				}
				if r := h.get(t, "/__test/sleep?ms=10"); r.status != 200 {
					t.Fatalf("after a timeout: %v", r)
				}
			})

			t.Run("a runaway handler is killed at the deadline", func(t *testing.T) {
				before := h.host.Stats()
				// /__test/spin ignores its context: only the host can stop it.
				r := h.get(t, "/__test/spin?ms=60000")
				if r.status != 504 || r.errorCode() != "timeout" {
					t.Fatalf("spin past the deadline: %v", r)
				}
				if s := h.host.Stats(); s.Timeouts <= before.Timeouts {
					t.Errorf("no timeout counted: %+v", s)
				}
				for range 3 {
					if r := h.get(t, "/healthz"); r.status != 200 {
						t.Fatalf("after a runaway: %v", r)
					}
				}
			})

			t.Run("oversize body is 413 before the guest", func(t *testing.T) {
				before := h.host.Stats().Requests
				const size = handlers.MaxRequestBody + 1
				req, _ := http.NewRequest("PUT", h.url+attachmentPath("c_x", "m_x"), io.LimitReader(zeros{}, size))
				req.ContentLength = size
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					// The server may close before taking the whole
					// body; the answer is what counts, and it came
					// first.
					t.Fatalf("oversize: %v", err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if r := (response{resp.StatusCode, resp.Header, b}); r.status != 413 || r.errorCode() != "too_large" {
					t.Fatalf("oversize: %v", r)
				}
				if h.host.Stats().Requests != before {
					t.Error("the guest ran for a body declared too large")
				}
			})

			t.Run("malformed requests are 400", func(t *testing.T) {
				r := h.do(t, "POST", "/v1/signup", strings.NewReader(`{"organization":`), "Content-Type", "application/json")
				if r.status != 400 || r.errorCode() == "" {
					t.Fatalf("malformed JSON: %v", r)
				}
				// Not HTTP at all: the host's server refuses it.
				conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				fmt.Fprintf(conn, "GARBAGE /\x00 HTTP/9.9\r\n\r\n")
				line, _ := bufio.NewReader(conn).ReadString('\n')
				if !strings.Contains(line, " 400 ") {
					t.Fatalf("garbage request: %q", line)
				}
			})

			t.Run("concurrent requests", func(t *testing.T) {
				var wg sync.WaitGroup
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if r := h.get(t, "/healthz"); r.status != 200 {
							t.Errorf("%v", r)
						}
					}()
				}
				wg.Wait()
			})
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
