package widget

import (
	"errors"
	"net/http"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Authenticate resolves a visitor route's credential (the Pommy-Widget and
// Pommy-Visitor headers) into a visitor scope: both tokens valid, of the
// same tenant, the widget token's origin still allowed (read now, so a
// removed origin takes effect at once), and, where the tenant enforces
// identity, a verified visitor. People's sessions and API keys carry
// neither header and are refused here (401).
func (svc *Service) Authenticate(r *http.Request) (*web.Scope, error) {
	wc, rec, err := svc.widget(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	vc, err := parseVisitor(r.Header.Get(HeaderVisitor), svc.mac(ctx, macPurposeVisitor), svc.now())
	if errors.Is(err, errToken) || (err == nil && vc.T != wc.T) {
		return nil, errVisitorToken()
	}
	if err != nil {
		return nil, err
	}
	if rec.Identity == IdentityEnforce && !vc.V {
		return nil, errIdentityRequired()
	}
	return &web.Scope{
		P: svc.p, Tenant: wc.T, Keys: svc.keys(), TenantRate: rec.TenantRate,
		VisitorID: vc.C, VisitorVerified: vc.V, WidgetOrigin: wc.O,
		VisitorName: vc.N, VisitorEmail: vc.M,
		Visitor: rec.policy(),
	}, nil
}

// ShedVisitor counts a visitor's request against LimitWidget, per visitor
// ("v:tenant:contact"), so that one visitor cannot flood a tenant and a
// shared network's visitors do not share one budget.
func (svc *Service) ShedVisitor(r *http.Request, s *web.Scope) error {
	return web.Shed(r, svc.p.Limiter, storage.LimitWidget, web.Truncate("v:"+s.Tenant+":"+s.VisitorID, storage.MaxLimitKey),
		"too many requests from this chat; wait a moment")
}

// eventFrom is a security event's template: where the request came from.
func eventFrom(r *http.Request) audit.Event {
	return audit.Event{IP: web.ClientIP(r), UserAgent: web.UserAgent(r), RequestID: web.RequestID(r)}
}
