// Package handlers is the Pommy Edge application: the HTTP API and the
// scheduled work, written once against the storage ports and run unchanged by
// every home (the edge worker, the wasip1 guest, and the native benchmark
// baseline).
package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"runtime/debug"

	"pommy.ai/edge/storage"
)

// Config is what a home tells the application about itself.
type Config struct {
	// Version is the build's version string, reported by /healthz.
	Version string
	// TestRoutes mounts /__contract/ and /__test/, which run the storage
	// contract suites and fault triggers against this home. Off in every real
	// deployment; the homes enable it only from an explicit test setting.
	TestRoutes bool
	// ContractHTTPURL is the loopback URL the outbound-HTTP contract suite
	// calls (test runs only).
	ContractHTTPURL string
}

// MaxRequestBody is the largest body any route accepts (the attachment
// upload); homes enforce it before the application sees the request.
const MaxRequestBody = maxAttachment + 1<<20

type app struct {
	p   storage.Platform
	cfg Config
}

// New returns the application's HTTP handler bound to a home's platform.
func New(p storage.Platform, cfg Config) http.Handler {
	if p.Clock == nil {
		p.Clock = storage.SystemClock{}
	}
	a := &app{p: p, cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("POST /v1/tenants", a.public(a.createTenant))
	mux.Handle("DELETE /v1/tenant", a.tenant(a.deleteTenant))
	mux.Handle("POST /v1/notes", a.tenant(a.createNote))
	mux.Handle("GET /v1/notes", a.tenant(a.listNotes))
	mux.Handle("GET /v1/notes/{id}", a.tenant(a.getNote))
	mux.Handle("DELETE /v1/notes/{id}", a.tenant(a.deleteNote))
	mux.Handle("PUT /v1/notes/{id}/attachment", a.tenant(a.putAttachment))
	mux.Handle("GET /v1/notes/{id}/attachment", a.tenant(a.getAttachment))
	if cfg.TestRoutes {
		a.mountTestRoutes(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
	return a.secure(mux)
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "home": a.p.Home, "version": a.cfg.Version})
}

func (a *app) logf(format string, args ...any) { log.Printf(format, args...) }

// public adapts a route that needs no credential.
func (a *app) public(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, err)
		}
	})
}

// tenant adapts a route that works inside one tenant: it authenticates the
// request and hands the route a scope it could not have built itself.
func (a *app) tenant(h func(http.ResponseWriter, *http.Request, *tenantScope) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := a.authenticate(r)
		if err == nil {
			err = h(w, r, s)
		}
		if err != nil {
			writeError(w, r, err)
		}
	})
}

// secure sets the security headers on every response, gives each request an
// id, and turns a panic into a 500 for that request alone.
func (a *app) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		h.Set("Cache-Control", "no-store")
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [12]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		h.Set("X-Request-Id", id)
		defer func() {
			if v := recover(); v != nil {
				if v == errTrap {
					panic(v) // a test-requested crash must reach the home
				}
				log.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
				writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func validRequestID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Scheduled runs the periodic work (the edge's cron trigger, the host's
// ticker). It must finish within one invocation: nothing may rely on a
// goroutine outliving it.
func Scheduled(ctx context.Context, p storage.Platform, cfg Config) error {
	return nil
}
