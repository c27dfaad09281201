package workerd

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/tests/workerd/wrangler"
)

// TestWranglerRateLimits checks that wrangler.toml declares one rate-limit
// binding per named limit in storage.Limits, RL_<NAME>, with the same limit
// and period, and distinct namespace ids: the edge's limits are only as
// right as this file. It needs no Node.js.
func TestWranglerRateLimits(t *testing.T) {
	root, err := wrangler.FindRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "wrangler.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The file's own style: one [[ratelimits]] table of name, namespace_id
	// and an inline simple = { limit, period }.
	re := regexp.MustCompile(`(?m)^\[\[ratelimits\]\]\s*\nname\s*=\s*"([A-Z_]+)"\s*\nnamespace_id\s*=\s*"(\d+)"\s*\nsimple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(\d+)\s*\}`)
	got := map[string]storage.Limit{}
	var ids []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		limit, _ := strconv.Atoi(m[3])
		period, _ := strconv.Atoi(m[4])
		got[m[1]] = storage.Limit{Limit: limit, Period: time.Duration(period) * time.Second}
		ids = append(ids, m[2])
	}
	if n := strings.Count(string(src), "[[ratelimits]]"); n != len(got) {
		t.Fatalf("%d [[ratelimits]] tables, %d in the expected form (name, namespace_id, simple = { limit, period })", n, len(got))
	}
	for name, want := range storage.Limits {
		binding := "RL_" + strings.ToUpper(name)
		if g, ok := got[binding]; !ok {
			t.Errorf("wrangler.toml has no [[ratelimits]] binding %s for limit %q", binding, name)
		} else if g != want {
			t.Errorf("%s is %d per %v in wrangler.toml, %d per %v in storage.Limits", binding, g.Limit, g.Period, want.Limit, want.Period)
		}
		if want.Period != 10*time.Second && want.Period != time.Minute {
			t.Errorf("limit %q has period %v; the edge allows 10 s or 60 s", name, want.Period)
		}
	}
	if len(got) != len(storage.Limits) {
		t.Errorf("wrangler.toml binds %d rate limits, storage.Limits has %d", len(got), len(storage.Limits))
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != len(got) {
		t.Errorf("namespace ids are not distinct: %v", ids)
	}
}

// TestWorkerdArgon2Cost measures one argon2id hash (19 MiB, t=2, p=1) in
// the worker's js/wasm runtime in workerd, through GET /__test/argon2, and
// logs it (docs/edge.md). It asserts nothing about speed. It starts its own
// wrangler dev, so it runs only when POMMY_MEASURE=1:
//
//	POMMY_MEASURE=1 go test ./tests/workerd -run TestWorkerdArgon2Cost -v
func TestWorkerdArgon2Cost(t *testing.T) {
	if os.Getenv("POMMY_MEASURE") != "1" {
		t.Skip("set POMMY_MEASURE=1 to measure argon2id in workerd")
	}
	if err := wrangler.Available(); err != nil {
		t.Skip(err)
	}
	w := start(t, wrangler.Options{Name: "argon2", Tags: wrangler.TestTags, Vars: []string{"POMMY_TEST_ROUTES:1"}})
	var runtime, port []time.Duration
	for range 5 {
		status, body := get(t, w, "/__test/argon2", time.Minute)
		var got struct{ RuntimeNs, PortNs int64 }
		if status != http.StatusOK || json.Unmarshal(body, &got) != nil || got.RuntimeNs <= 0 || got.PortNs <= 0 {
			t.Fatalf("GET /__test/argon2: %d %s", status, body)
		}
		runtime = append(runtime, time.Duration(got.RuntimeNs))
		port = append(port, time.Duration(got.PortNs))
	}
	slices.Sort(runtime)
	slices.Sort(port)
	t.Logf("argon2id m=19456 t=2 p=1 in workerd (js/wasm), 5 runs: min %v median %v max %v (through the Passwords port: min %v median %v max %v)",
		runtime[0], runtime[2], runtime[4], port[0], port[2], port[4])
}
