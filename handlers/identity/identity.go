// Package identity is who may act for a tenant: accounts and their
// passwords, sign-up and sign-in (throttled), second factors (TOTP,
// recovery codes, passkeys) and the sign-in challenges between a password
// and a second factor, step-up, sessions (and how each was authenticated)
// and the devices a person has used, members and their roles, invitations,
// ownership, API keys, and the authentication of a request to a *web.Scope
// from its one credential (a session cookie or an API key).
//
// The route table and the authorization middleware (package handlers)
// decide who may call each route; this package decides who the caller is,
// and owns the SQL of the identity tables (users, memberships, sessions,
// trusted_devices, login_throttle, invitations, api_keys, rate_windows,
// auth_challenges, mfa_totp, mfa_recovery_codes, webauthn_credentials).
package identity

import (
	"context"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Service is the identity capability bound to a home's platform.
type Service struct {
	p storage.Platform
	// scopeResources are the resources an API key can be given scopes on,
	// as the route table declares them.
	scopeResources []string
	// Origins are the home's public origins (normalized; empty: a
	// request's own Host), for mailed links and the WebAuthn relying
	// party (web.SelfOrigin).
	Origins []string
}

// New returns the identity capability. scopeResources are the API-key
// scope resources of the route table (a key may be given resource:read and
// resource:write on each).
func New(p storage.Platform, scopeResources []string) *Service {
	return &Service{p: p, scopeResources: scopeResources}
}

func (svc *Service) now() time.Time { return svc.p.Clock.Now() }

type stmt = storage.Stmt

func (svc *Service) batch(ctx context.Context, stmts []stmt) error {
	_, err := svc.p.SQL.Batch(ctx, stmts)
	return err
}

const identityBodyLimit = 8 << 10

func normalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return "", web.Errorf(http.StatusBadRequest, "invalid_email", "email must be a valid address of at most 254 characters")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return "", web.Errorf(http.StatusBadRequest, "invalid_email", "email must be a plain address like name@example.com")
	}
	return e, nil
}

type userRow struct {
	id, email, name, hash string
}

func (svc *Service) userByEmail(ctx context.Context, email string) (*userRow, error) {
	// tenant-lookup: a person's account is global (one email, many tenants); this resolves who is signing in.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, email, name, password_hash FROM users WHERE email = ?`, email)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	u := &userRow{}
	return u, rows.Scan(0, &u.id, &u.email, &u.name, &u.hash)
}
