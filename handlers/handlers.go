// Package handlers is the Pommy Edge application: the HTTP API and the
// scheduled work, written once against the storage ports and run unchanged by
// every home (the edge worker, the wasip1 guest, and the native benchmark
// baseline).
package handlers

import (
	"context"
	"net/http"

	"pommy.ai/edge/storage"
)

// Config is what a home tells the application about itself.
type Config struct {
	// Version is the build's version string, reported by /healthz.
	Version string
	// TestRoutes mounts /__contract/, which runs the storage contract suites
	// against this home's adapters. Off in every real deployment.
	TestRoutes bool
	// ContractHTTPURL is the loopback URL the outbound-HTTP contract suite
	// calls (test runs only).
	ContractHTTPURL string
}

// New returns the application's HTTP handler bound to a home's platform.
func New(p storage.Platform, cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","home":"` + p.Home + `","version":"` + cfg.Version + `"}`))
	})
	return mux
}

// Scheduled runs the periodic work (the edge's cron trigger, the host's
// ticker). It must finish within one invocation: nothing may rely on a
// goroutine outliving it.
func Scheduled(ctx context.Context, p storage.Platform, cfg Config) error {
	return nil
}
