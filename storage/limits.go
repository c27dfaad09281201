package storage

import "time"

// Limit is one named limit of a Limiter: at most Limit events per key in
// any Period.
type Limit struct {
	Limit  int
	Period time.Duration
}

// The named limits the application uses. Every home configures exactly
// these: the local host from Limits (wasm/host/local), the edge from one
// [[ratelimits]] binding per name in wrangler.toml, whose `simple` block must
// say the same (tests/workerd checks it). The edge allows only 10 s and 60 s
// periods.
const (
	// LimitIP sheds abuse per client IP across the whole API.
	LimitIP = "ip"
	// LimitAPI sheds abuse per API key (the exact, billed quota is counted
	// in SQL).
	LimitAPI = "api"
	// LimitTenant sheds abuse per tenant, across all its people and keys,
	// so that one organization cannot starve the others. Its Limit is one
	// unit of an organization's rate: the handlers count a tenant allowed N
	// a minute on N/unit keys of this limit (handlers/tenant/rate.go), so
	// each organization's rate is its own setting while the home's limit
	// stays fixed, as the edge's rate-limit bindings require.
	LimitTenant = "tenant"
	// LimitWidget sheds abuse per widget token (public, embedded in
	// customers' sites, so easy to replay).
	LimitWidget = "widget"
	// LimitLogin sheds password guessing per client IP on the login and
	// password-reset routes. The per-account lockout that must hold
	// globally is counted in SQL.
	LimitLogin = "login"
)

// MaxLimitKey bounds a Limiter key in bytes (an IP address, a token's
// hash). An empty or longer key is an error wrapping ErrInvalid.
const MaxLimitKey = 256

// Limits are the default limits. They are generous for people and tight
// for scripts: a person's browser makes a few requests a second at most.
var Limits = map[string]Limit{
	LimitIP:     {Limit: 300, Period: time.Minute},
	LimitAPI:    {Limit: 600, Period: time.Minute},
	LimitTenant: {Limit: 600, Period: time.Minute},
	LimitWidget: {Limit: 120, Period: time.Minute},
	LimitLogin:  {Limit: 30, Period: time.Minute},
}
