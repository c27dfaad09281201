package e2e

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestArgon2Cost measures one argon2id hash (19 MiB, t=2, p=1) in the
// guest's own software and through the Passwords port (native in the host),
// and logs both; docs/decisions.md records the numbers. It asserts nothing
// about speed, only that both ran.
//
//	go test ./tests/e2e -run TestArgon2Cost -v
func TestArgon2Cost(t *testing.T) {
	h := startHome(t, homeOptions{})
	var runtime, port []time.Duration
	for range 5 {
		r := h.get(t, "/__test/argon2")
		var got struct{ RuntimeNs, PortNs int64 }
		if r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.RuntimeNs <= 0 || got.PortNs <= 0 {
			t.Fatalf("GET /__test/argon2: %v", r)
		}
		runtime = append(runtime, time.Duration(got.RuntimeNs))
		port = append(port, time.Duration(got.PortNs))
	}
	slices.Sort(runtime)
	slices.Sort(port)
	t.Logf("argon2id m=19456 t=2 p=1, 5 runs: in the guest min %v median %v max %v; through the port (host-native) min %v median %v max %v",
		runtime[0], runtime[2], runtime[4], port[0], port[2], port[4])
}
