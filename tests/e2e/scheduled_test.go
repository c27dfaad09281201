package e2e

import (
	"context"
	"testing"
)

// TestScheduledRunsInTheGuest runs the application's scheduled work (session
// sweep, audit pruning) in the real guest, on a store with tenants in it, in
// both modes.
func TestScheduledRunsInTheGuest(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			createTenant(t, h, "Scheduled Co")
			for range 2 {
				if err := h.host.RunScheduled(context.Background()); err != nil {
					t.Fatalf("scheduled run: %v\nhost log:\n%s", err, h.log)
				}
			}
			if got := h.host.Stats().ScheduledRuns; got < 2 {
				t.Errorf("ScheduledRuns = %d, want at least 2", got)
			}
		})
	}
}
