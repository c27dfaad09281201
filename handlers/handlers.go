// Package handlers is the Pommy Edge application: the HTTP API and the
// scheduled work, written once against the storage ports and run unchanged by
// every home (the edge worker, the wasip1 guest, and the native benchmark
// baseline).
//
// This package is the top of the application: the one route table
// (routes.go), the authorization middleware that turns a request into a
// *web.Scope and checks it against the table, the permission matrix that
// docs/permissions.md is generated from, and Scheduled. Each capability
// lives in its own package below it (identity, tenant, conversations,
// audit, ...), on the shared kit in handlers/web; none of them imports this
// package or another capability (docs/decisions.md, "handlers layout").
package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/http"
	"runtime/debug"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/conversations"
	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/tenant"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/handlers/widget"
	"pommy.ai/edge/storage"
)

// Config is what a home tells the application about itself.
type Config struct {
	// Version is the build's version string, reported by /healthz.
	Version string
	// TestRoutes mounts /__contract/ and /__test/, which run the storage
	// contract suites and fault triggers against this home. Only a test
	// build has them (one that imports handlers/testroutes: the worker and
	// the guest built with -tags testroutes); New refuses it in any other
	// (Check). Off in every real deployment.
	TestRoutes bool
	// ContractHTTPURL is the loopback URL the outbound-HTTP contract suite
	// calls (test runs only).
	ContractHTTPURL string
	// ContractMailURL is the HTTP API (mailpit's, or the edge mail API
	// server's copy of it) where the mail contract suite reads what the
	// home's mail service delivered (test runs only).
	ContractMailURL string `json:",omitempty"`
	// ClientIPHeader names a header that a trusted reverse proxy in front of
	// the home sets to the client's address (the edge uses CF-Connecting-IP
	// when this is empty). Empty elsewhere: the peer address is used.
	ClientIPHeader string `json:",omitempty"`
	// PublicOrigins are the origins (scheme://host[:port]) people and
	// browsers reach this home at. When set, a request for any other Host
	// is refused (421), and a state-changing request's Origin must be one
	// of them: a DNS-rebinding page that points its own name at a server
	// on a private network gets nowhere. Empty: the request's own Host is
	// trusted (the edge, where the provider routes only its own names).
	PublicOrigins []string `json:",omitempty"`
	// WebhookTestAllow lists ip:port destinations that webhook
	// subscriptions may name although they are not public HTTPS (the
	// tests' receivers on loopback). Honoured only in a test build with
	// TestRoutes set; the home's egress needs the same list
	// (egress.Options.TestPublicAllow).
	WebhookTestAllow []string `json:",omitempty"`
}

// MaxRequestBody is the largest body any route accepts (the attachment
// upload); homes enforce it before the application sees the request.
const MaxRequestBody = conversations.MaxAttachment + 1<<20

type app struct {
	p   storage.Platform
	cfg Config
	// hosts are the Host values of cfg.PublicOrigins; nil trusts any.
	hosts map[string]bool

	// The capabilities whose routes need more than the caller's scope.
	id  *identity.Service
	org *tenant.Service
	wid *widget.Service
}

// newApp binds the capabilities to a home's platform. The route table's
// declarations (the API-key scope resources; what a tenant's deletion
// purges) are handed to them here, so that no capability imports this
// package or another capability.
func newApp(p storage.Platform, cfg Config) *app {
	a := &app{p: p, cfg: cfg, hosts: originHosts(cfg.PublicOrigins),
		id: identity.New(p, scopeResources),
		// The audit log's rows go first, the tenants row last (tenant.Delete).
		org: tenant.New(p, identity.ClearSessionCookie, tenantPurges...),
		wid: widget.New(p, normalizedOrigins(cfg.PublicOrigins)),
	}
	a.wid.AttachmentTypes = conversations.AllowedTypes()
	a.id.Origins = normalizedOrigins(cfg.PublicOrigins)
	return a
}

// tenantPurges are every capability's statements that delete a tenant's
// rows, run in one batch when the tenant is deleted, the audit log's first.
// TestTenantPurgesCoverEveryTable fails when a table holding a tenant_id
// column is not in them.
var tenantPurges = []func(tenant string) []storage.Stmt{
	audit.PurgeTenantStmts, identity.PurgeTenantStmts, conversations.PurgeTenantStmts,
	jobs.PurgeTenantStmts, webhooks.PurgeTenantStmts, widget.PurgeTenantStmts, mail.PurgeTenantStmts,
}

// New returns the application's HTTP handler bound to a home's platform.
// It panics if cfg fails Check: a home reports that error itself first.
func New(p storage.Platform, cfg Config) http.Handler {
	if err := cfg.Check(); err != nil {
		panic(err)
	}
	if p.Clock == nil {
		p.Clock = storage.SystemClock{}
	}
	a := newApp(p, cfg)
	mux := http.NewServeMux()
	a.mount(mux)
	if cfg.TestRoutes {
		mountTestRoutes(mux, TestEnv{
			Platform: p, Config: cfg, Trap: errTrap,
			WriteJSON: web.WriteJSON, WriteError: web.WriteError,
			Errorf: func(status int, code, format string, args ...any) error {
				return web.Errorf(status, code, format, args...)
			},
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, web.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, web.Truncate(r.URL.Path, 200)))
	})
	return a.secure(canonicalPaths(mux))
}

// ErrNoTestRoutes is Check's answer to Config.TestRoutes in a build without
// test routes. Ignoring the setting would leave a test build mistaken for a
// shipped one (or the reverse) unnoticed until a test route answered 404.
var ErrNoTestRoutes = errors.New("handlers: test routes requested (Config.TestRoutes) in a build without them: " +
	"they are linked only into test builds (the worker and guest built with -tags testroutes, programs importing pommy.ai/edge/handlers/testroutes)")

// ErrTestAllowWithoutTestRoutes is Check's answer to a WebhookTestAllow
// list without the test routes: the list is honoured only in a test build
// with TestRoutes on, and a home that quietly ignored it would hide that a
// test setting reached a real deployment.
var ErrTestAllowWithoutTestRoutes = errors.New("handlers: a webhook test allow-list (Config.WebhookTestAllow) is set without the test routes: " +
	"it is honoured only by a test build with TestRoutes on")

// Check reports a configuration this build cannot serve.
func (c Config) Check() error {
	if c.TestRoutes && mountTestRoutes == nil {
		return ErrNoTestRoutes
	}
	if len(c.WebhookTestAllow) > 0 && (!c.TestRoutes || mountTestRoutes == nil) {
		return ErrTestAllowWithoutTestRoutes
	}
	return nil
}

// TestEnv is what the test-only routes get from the application: the home's
// platform and configuration, the application's response writers, and the
// panic value that the application's recovery lets through so that the home
// sees its runtime crash (/__test/trap).
type TestEnv struct {
	Platform   storage.Platform
	Config     Config
	WriteJSON  func(w http.ResponseWriter, status int, v any)
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	Errorf     func(status int, code, format string, args ...any) error
	Trap       any
}

// mountTestRoutes is set by RegisterTestRoutes, in test builds only.
var mountTestRoutes func(*http.ServeMux, TestEnv)

// RegisterTestRoutes installs what New calls to mount the test-only routes
// when Config.TestRoutes is set. Package handlers/testroutes calls it from
// its init, and only test programs import that package (the worker and the
// guest only under the testroutes build tag), so the shipped modules link
// neither the routes nor the storage contract suites they run.
//
// It also makes the application take a request's client address from the
// X-Pommy-Test-Client-IP header (when Config.TestRoutes is set), so that the
// suites can play many clients from one machine: a shipped build, which
// never calls it, has no way to honour that header.
func RegisterTestRoutes(mount func(*http.ServeMux, TestEnv)) {
	mountTestRoutes = mount
	testClientIPHeader = "X-Pommy-Test-Client-IP"
}

// testClientIPHeader is set by RegisterTestRoutes; empty in shipped builds.
var testClientIPHeader string

// errTrap is the panic value of /__test/trap. The secure middleware lets it
// through so that the home sees a real crash of its runtime.
var errTrap = &struct{ string }{"requested trap"}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) error {
	web.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "home": a.p.Home, "version": a.cfg.Version})
	return nil
}

// secure sets the security headers on every response, gives each request an
// id, and turns a panic into a 500 for that request alone.
func (a *app) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		SecurityHeaders(h)
		id := RequestID(r)
		h.Set("X-Request-Id", id)
		r = web.WithClient(r, a.client(r, id))
		// /healthz stays reachable by any name: load balancers and
		// container probes ask by address.
		if !a.knownHost(r) && r.URL.Path != "/healthz" {
			web.WriteError(w, r, web.Errorf(http.StatusMisdirectedRequest, "unknown_host",
				"this server does not answer for the host %q; use one of its public origins", web.Truncate(r.Host, 100)))
			return
		}
		// A body must say its length. The local home refuses any
		// Transfer-Encoding before the application runs (a request
		// smuggling defence); the edge's proxy frames requests itself
		// and hands on a chunked body with no length. One rule here keeps
		// the two homes answering the same request the same way.
		if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
			w.Header().Set("Connection", "close")
			web.WriteError(w, r, web.Errorf(http.StatusLengthRequired, "length_required",
				"a request body must come with Content-Length; Transfer-Encoding (chunked) is not accepted"))
			return
		}
		defer func() {
			if v := recover(); v != nil {
				if v == errTrap {
					panic(v) // a test-requested crash must reach the home
				}
				log.Printf("panic serving %s %s: %v\n%s", r.Method, r.URL.Path, v, debug.Stack())
				web.WriteError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// SecurityHeaders sets the headers every response carries, the
// application's and the homes' own (a host's error before the guest runs, a
// refused malformed request), so that the set cannot differ between them.
// X-Request-Id is set by the caller.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
}

// RequestID returns the request's X-Request-Id when it is well formed,
// else a fresh one, which it writes into the request's header so that the
// application and the home (its logs, its own error responses) report the
// same id.
func RequestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = NewRequestID()
		r.Header.Set("X-Request-Id", id)
	}
	return id
}

// NewRequestID returns a fresh random request id.
func NewRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	if p.Clock == nil {
		p.Clock = storage.SystemClock{}
	}
	// Each job runs even if another failed; the first error is reported.
	errs := []error{
		identity.Sweep(ctx, p),
		audit.New(p.SQL, p.Clock).Sealed(p.Keys).PruneAll(ctx, p.Clock.Now()),
		conversationSweeps(ctx, p),
		jobs.Prune(ctx, p, 1000),
		mail.Prune(ctx, p, 1000),
	}
	// Due background jobs: the edge's cron trigger runs them only here;
	// the host's job workers run them every second besides.
	_, err := RunJobs(ctx, p, cfg, JobOptions{Budget: 50 * time.Second})
	return errors.Join(append(errs, err)...)
}
