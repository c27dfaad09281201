package identity

import (
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage/envelope"
)

const sessionCookie = "__Host-pommy_session"

// Authenticate resolves the request's credential to a tenant scope.
func (svc *Service) Authenticate(r *http.Request) (*web.Scope, error) {
	c, err := requestCredential(r.Header)
	if err != nil {
		return nil, err
	}
	switch {
	case c.apiKey != "":
		return svc.authenticateKey(r, c.apiKey)
	case c.session != "":
		return svc.authenticateSession(r, c.session)
	}
	return nil, web.Errorf(http.StatusUnauthorized, "unauthenticated", "sign in, or send Authorization: Bearer <API key>")
}

// credential is what a request presents: an API key or a session token
// (at most one of them).
type credential struct {
	apiKey  string
	session string
}

// requestCredential reads the request's one credential. A request must not
// carry two: two Authorization headers, two session cookies (in one Cookie
// header or several), or an Authorization header and a session cookie are
// refused with 400 ambiguous_credentials rather than resolved by a
// precedence rule, since anything in front of the server (a proxy, a WAF,
// a log) may pick another one than the application and so see another
// principal. Empty values count: they are still a second credential to
// someone.
func requestCredential(h http.Header) (credential, error) {
	var auths []string
	for _, v := range h.Values("Authorization") {
		// Repeated headers may arrive joined with commas (the edge runtime
		// does so); no credential holds one, so each part is one.
		auths = append(auths, strings.Split(v, ",")...)
	}
	cookies := cookieValues(h, sessionCookie)
	if len(auths)+len(cookies) > 1 {
		return credential{}, web.Errorf(http.StatusBadRequest, "ambiguous_credentials",
			"send exactly one credential: one Authorization header or one %s cookie, not %s", sessionCookie, ambiguity(len(auths), len(cookies)))
	}
	if len(auths) == 1 {
		key, err := parseAuthorization(auths[0])
		return credential{apiKey: key}, err
	}
	if len(cookies) == 1 && cookies[0] != "" {
		return credential{session: cookies[0]}, nil
	}
	return credential{}, nil
}

func ambiguity(auths, cookies int) string {
	switch {
	case auths > 1:
		return "several Authorization headers"
	case cookies > 1:
		return "several session cookies"
	}
	return "both"
}

// parseAuthorization reads "Bearer <API key>". The scheme is
// case-insensitive (RFC 9110 §11.1); the key is one run of visible
// characters.
func parseAuthorization(v string) (string, error) {
	scheme, key, _ := strings.Cut(v, " ")
	key = strings.TrimLeft(key, " ")
	if !strings.EqualFold(scheme, "Bearer") || key == "" || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return "", web.Errorf(http.StatusUnauthorized, "unauthenticated", "send Authorization: Bearer <API key>, or sign in")
	}
	return key, nil
}

// cookieValues returns every value of the named cookie in all of the
// request's Cookie headers, in order. Pairs are split on ';' and also
// on ',' (how some intermediaries join repeated headers): a token never
// holds either, and reading more pairs than a browser sends can only find
// more cookies, never fewer, so a second session cookie cannot hide from it.
func cookieValues(h http.Header, cookie string) []string {
	var out []string
	for _, line := range h.Values("Cookie") {
		for _, pair := range strings.FieldsFunc(line, func(r rune) bool { return r == ';' || r == ',' }) {
			// A name without "=" counts too: net/http reads it as the
			// cookie with an empty value.
			name, value, _ := strings.Cut(pair, "=")
			if strings.TrimSpace(name) == cookie {
				out = append(out, strings.TrimSpace(value))
			}
		}
	}
	return out
}

func (svc *Service) authenticateKey(r *http.Request, key string) (*web.Scope, error) {
	if err := checkAPIKey(key); err != nil {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "%v", err)
	}
	ctx := r.Context()
	hash, err := svc.p.Keys.MAC(ctx, "api-key", []byte(key))
	if err != nil {
		return nil, err
	}
	// tenant-lookup: this query resolves the principal, so it cannot be scoped yet.
	rows, err := svc.p.SQL.Query(ctx, `SELECT k.id, k.tenant_id, k.scopes, k.expires_at, k.revoked_at, k.rate_limit_per_minute, k.first_used_at, t.rate_limit_per_minute
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = ?`, hash)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "API key is unknown or revoked")
	}
	s := &web.Scope{P: svc.p, Keys: envelope.New(svc.p)}
	var scopes string
	var expires, revoked, firstUsed *int64
	if err := rows.Scan(0, &s.KeyID, &s.Tenant, &scopes, &expires, &revoked, &s.KeyLimit, &firstUsed, &s.TenantRate); err != nil {
		return nil, err
	}
	if revoked != nil {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "API key is unknown or revoked")
	}
	if expires != nil && svc.now().UnixMilli() >= *expires {
		return nil, web.Errorf(http.StatusUnauthorized, "api_key_expired", "API key expired at %s", web.Millis(*expires))
	}
	s.Scopes = strings.Fields(scopes)
	s.KeyFirstUsed = firstUsed != nil
	return s, nil
}

// lastSeenEvery throttles last_seen_at writes: at most one per session per
// interval. Idle timeouts are therefore exact to within this interval.
const lastSeenEvery = time.Minute

func (svc *Service) authenticateSession(r *http.Request, token string) (*web.Scope, error) {
	if !validToken(token) {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_session", "the session is unknown or has ended; sign in again")
	}
	ctx := r.Context()
	th := tokenHash(token)
	// tenant-lookup: this query resolves the principal from the cookie; the tenant comes from the session row.
	rows, err := svc.p.SQL.Query(ctx, `SELECT s.id, s.tenant_id, s.user_id, s.created_at, s.last_seen_at, m.role, m.status, t.session_idle_minutes, t.session_absolute_minutes, t.rate_limit_per_minute,
		s.auth_methods, COALESCE(s.reauth_at, s.created_at), u.email_verified_at IS NOT NULL, t.mfa_required
		FROM sessions s JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id JOIN tenants t ON t.id = s.tenant_id JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND s.ended_at IS NULL`, th)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_session", "the session is unknown or has ended; sign in again")
	}
	s := &web.Scope{P: svc.p, Keys: envelope.New(svc.p), TokenHash: th}
	var created, lastSeen, idleMin, absMin, reauth int64
	var status, methods, mfaPolicy string
	if err := rows.Scan(0, &s.SessionID, &s.Tenant, &s.UserID, &created, &lastSeen, &s.Role, &status, &idleMin, &absMin, &s.TenantRate,
		&methods, &reauth, &s.EmailVerified, &mfaPolicy); err != nil {
		return nil, err
	}
	s.AuthMethods = strings.Fields(methods)
	s.ReauthAt = time.UnixMilli(reauth).UTC()
	s.MFAMissing = MFARequired(mfaPolicy, s.Role) && !HasSecondFactor(s.AuthMethods)
	now := svc.now().UnixMilli()
	reason := ""
	switch {
	case status != "active":
		reason = "member_disabled"
	case now-created >= absMin*60_000:
		reason = "absolute_timeout"
	case now-lastSeen >= idleMin*60_000:
		reason = "idle_timeout"
	}
	if reason != "" {
		if _, err := svc.p.SQL.Exec(ctx, `UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE tenant_id = ? AND id = ? AND ended_at IS NULL`,
			now, reason, s.Tenant, s.SessionID); err != nil {
			return nil, err
		}
		return nil, web.Errorf(http.StatusUnauthorized, "session_expired", "the session has ended (%s); sign in again", strings.ReplaceAll(reason, "_", " "))
	}
	if now-lastSeen >= lastSeenEvery.Milliseconds() {
		// Conditional: of concurrent requests, one writes.
		if _, err := svc.p.SQL.Exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE tenant_id = ? AND id = ? AND last_seen_at = ?`,
			now, s.Tenant, s.SessionID, lastSeen); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// StepUpWindow is how recent a session's last proof of a password or a
// second factor must be for a dangerous action (Scope.ReauthAt).
const StepUpWindow = 5 * time.Minute

// MFARequired reports whether a tenant's MFA policy ('off', 'admins',
// 'everyone') wants a second factor from a member with role.
func MFARequired(policy, role string) bool {
	switch policy {
	case "everyone":
		return true
	case "admins":
		return role == web.RoleOwner || role == web.RoleAdmin
	}
	return false
}

// HasSecondFactor reports whether a session's methods include more than a
// password: a TOTP code, a recovery code, a WebAuthn assertion after the
// password, or a passkey (which proves possession and the person's
// verification at once).
func HasSecondFactor(methods []string) bool {
	for _, m := range methods {
		switch m {
		case "totp", "recovery_code", "webauthn", "passkey":
			return true
		}
	}
	return false
}
