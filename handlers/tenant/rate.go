package tenant

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// An organization's request rate: every authenticated request counts
// against its rate_limit_per_minute, across all its people and keys, so
// that one organization cannot starve the others. Owners and admins set it
// (settings.write) within [tenantRateUnit, tenantRateMax], in steps of
// tenantRateUnit.
//
// The home's limiter has fixed limits (at the edge each is a rate-limit
// binding whose limit is in wrangler.toml), so a per-tenant limit is built
// from the one "tenant" limit: a tenant allowed N a minute has N/unit
// counters, and each request counts on one of them picked at random. No
// more than N a minute can pass (each counter stops at its unit); under
// steady traffic close to N, a counter that drew more than its share may
// shed a little before N is reached. See docs/decisions.md ("A tenant's
// request rate").
const (
	tenantRateDefault = 6000
	tenantRateMax     = 60000
)

// tenantRateUnit is what one counter of the "tenant" limit allows a
// minute.
func tenantRateUnit() int64 {
	l := storage.Limits[storage.LimitTenant]
	return max(int64(l.Limit)*int64(60e9)/int64(l.Period), 1)
}

func checkTenantRate(v int64) error {
	unit := tenantRateUnit()
	if v < unit || v > tenantRateMax || v%unit != 0 {
		return web.Errorf(http.StatusBadRequest, "invalid_rate_limit_per_minute",
			"rate_limit_per_minute must be a multiple of %d from %d to %d", unit, unit, tenantRateMax)
	}
	return nil
}

// ShedRate counts an authenticated request against its organization's
// rate (the authorization middleware calls it for every one).
func (svc *Service) ShedRate(r *http.Request, s *web.Scope) error {
	rate := s.TenantRate
	if rate <= 0 {
		rate = tenantRateDefault
	}
	counters := max(rate/tenantRateUnit(), 1)
	// crypto/rand, not math/rand: guest instances started from one
	// snapshot share the Go runtime's random state, so with an instance
	// per request every request would draw the same counter and the
	// organization would get one unit, not its rate.
	var b [8]byte
	rand.Read(b[:])
	key := s.Tenant + "/" + strconv.FormatUint(binary.LittleEndian.Uint64(b[:])%uint64(counters), 10)
	return web.Shed(r, svc.p.Limiter, storage.LimitTenant, key,
		fmt.Sprintf("too many requests for this organization (its limit is %d a minute); slow down", rate))
}
