// Package widget is the embedded chat widget's side of the platform: the
// tenant's widget settings and allowed origins, the short-lived widget
// tokens bound to an embedding origin, visitor tokens (anonymous, or
// verified with the tenant's identity JWT), the notices of refused
// origins, and the loader, frame page and assets, served under a strict
// CSP. What a visitor may read and write in a conversation is the
// conversations capability's (its visitor routes); this package only says
// who the visitor is.
package widget

import (
	"net/http"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Service is the widget capability bound to a home's platform.
type Service struct {
	p storage.Platform
}

// New returns the widget capability.
func New(p storage.Platform) *Service { return &Service{p: p} }

func notYet() error {
	return web.Errorf(http.StatusNotImplemented, "not_implemented", "the widget is not built yet")
}

// Authenticate resolves a visitor route's credential (the Pommy-Widget and
// Pommy-Visitor headers) into a visitor scope.
func (svc *Service) Authenticate(r *http.Request) (*web.Scope, error) { return nil, notYet() }

// Loader serves /widget.js.
func (svc *Service) Loader(w http.ResponseWriter, r *http.Request) error { return notYet() }

// Frame serves the iframe page of a tenant.
func (svc *Service) Frame(w http.ResponseWriter, r *http.Request) error { return notYet() }

// Asset serves the chat app's files.
func (svc *Service) Asset(w http.ResponseWriter, r *http.Request) error { return notYet() }

// Token mints a widget token for an allowed embedding origin.
func (svc *Service) Token(w http.ResponseWriter, r *http.Request) error { return notYet() }

// Config is what the chat shows before the visitor writes.
func (svc *Service) Config(w http.ResponseWriter, r *http.Request) error { return notYet() }

// NewVisitor mints an anonymous visitor token.
func (svc *Service) NewVisitor(w http.ResponseWriter, r *http.Request) error { return notYet() }

// Identify exchanges the tenant's identity JWT for a verified visitor token.
func (svc *Service) Identify(w http.ResponseWriter, r *http.Request) error { return notYet() }

// GetSettings, UpdateSettings and RotateIdentitySecret are the tenant's
// people's routes.
func (svc *Service) GetSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return notYet()
}
func (svc *Service) UpdateSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return notYet()
}
func (svc *Service) RotateIdentitySecret(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return notYet()
}

// PurgeTenantStmts deletes a tenant's widget rows.
func PurgeTenantStmts(tenant string) []storage.Stmt { return nil }

// ShedVisitor counts a visitor's request against LimitWidget, per visitor.
func (svc *Service) ShedVisitor(r *http.Request, s *web.Scope) error { return nil }
