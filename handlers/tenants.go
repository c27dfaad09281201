package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

const sessionCookie = "__Host-pommy_session"

// authenticate resolves the request's credential to a tenant scope.
func (a *app) authenticate(r *http.Request) (*web.Scope, error) {
	c, err := requestCredential(r.Header)
	if err != nil {
		return nil, err
	}
	switch {
	case c.apiKey != "":
		return a.authenticateKey(r, c.apiKey)
	case c.session != "":
		return a.authenticateSession(r, c.session)
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

func (a *app) authenticateKey(r *http.Request, key string) (*web.Scope, error) {
	if err := checkAPIKey(key); err != nil {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "%v", err)
	}
	ctx := r.Context()
	hash, err := a.p.Keys.MAC(ctx, "api-key", []byte(key))
	if err != nil {
		return nil, err
	}
	// tenant-lookup: this query resolves the principal, so it cannot be scoped yet.
	rows, err := a.p.SQL.Query(ctx, `SELECT k.id, k.tenant_id, k.scopes, k.expires_at, k.revoked_at, k.rate_limit_per_minute, k.first_used_at, t.rate_limit_per_minute
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = ?`, hash)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "API key is unknown or revoked")
	}
	s := &web.Scope{P: a.p, Keys: envelope.New(a.p)}
	var scopes string
	var expires, revoked, firstUsed *int64
	if err := rows.Scan(0, &s.KeyID, &s.Tenant, &scopes, &expires, &revoked, &s.KeyLimit, &firstUsed, &s.TenantRate); err != nil {
		return nil, err
	}
	if revoked != nil {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_api_key", "API key is unknown or revoked")
	}
	if expires != nil && a.now().UnixMilli() >= *expires {
		return nil, web.Errorf(http.StatusUnauthorized, "api_key_expired", "API key expired at %s", web.Millis(*expires))
	}
	s.Scopes = strings.Fields(scopes)
	s.KeyFirstUsed = firstUsed != nil
	return s, nil
}

// Session tokens: 256 random bits, base64url without padding (43 chars).
const sessionTokenLen = 43

func newToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validToken(t string) bool {
	if len(t) != sessionTokenLen {
		return false
	}
	// One spelling only: the decoder skips newlines and ignores the spare
	// bits of the last character, so the string must re-encode to itself.
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == 32 && base64.RawURLEncoding.EncodeToString(b) == t
}

func tokenHash(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// lastSeenEvery throttles last_seen_at writes: at most one per session per
// interval. Idle timeouts are therefore exact to within this interval.
const lastSeenEvery = time.Minute

func (a *app) authenticateSession(r *http.Request, token string) (*web.Scope, error) {
	if !validToken(token) {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_session", "the session is unknown or has ended; sign in again")
	}
	ctx := r.Context()
	th := tokenHash(token)
	// tenant-lookup: this query resolves the principal from the cookie; the tenant comes from the session row.
	rows, err := a.p.SQL.Query(ctx, `SELECT s.id, s.tenant_id, s.user_id, s.created_at, s.last_seen_at, m.role, m.status, t.session_idle_minutes, t.session_absolute_minutes, t.rate_limit_per_minute
		FROM sessions s JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id JOIN tenants t ON t.id = s.tenant_id
		WHERE s.token_hash = ? AND s.ended_at IS NULL`, th)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, web.Errorf(http.StatusUnauthorized, "invalid_session", "the session is unknown or has ended; sign in again")
	}
	s := &web.Scope{P: a.p, Keys: envelope.New(a.p), TokenHash: th}
	var created, lastSeen, idleMin, absMin int64
	var status string
	if err := rows.Scan(0, &s.SessionID, &s.Tenant, &s.UserID, &created, &lastSeen, &s.Role, &status, &idleMin, &absMin, &s.TenantRate); err != nil {
		return nil, err
	}
	now := a.now().UnixMilli()
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
		if _, err := a.p.SQL.Exec(ctx, `UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE tenant_id = ? AND id = ? AND ended_at IS NULL`,
			now, reason, s.Tenant, s.SessionID); err != nil {
			return nil, err
		}
		return nil, web.Errorf(http.StatusUnauthorized, "session_expired", "the session has ended (%s); sign in again", strings.ReplaceAll(reason, "_", " "))
	}
	if now-lastSeen >= lastSeenEvery.Milliseconds() {
		// Conditional: of concurrent requests, one writes.
		if _, err := a.p.SQL.Exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE tenant_id = ? AND id = ? AND last_seen_at = ?`,
			now, s.Tenant, s.SessionID, lastSeen); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Session timeout bounds a tenant may choose within.
const (
	defaultIdleMinutes     = 30
	defaultAbsoluteMinutes = 12 * 60
	minIdleMinutes         = 5
	maxIdleMinutes         = 120
	minAbsoluteMinutes     = 60
	maxAbsoluteMinutes     = 24 * 60
)

// startSession creates a session for a member and sets its cookie. Every
// login gets a new token; every session cookie the request already carried
// is ended (no fixation, no orphan). The browser is remembered as one of the
// person's devices (devices.go).
func (a *app) startSession(w http.ResponseWriter, r *http.Request, tenant, user string) (string, error) {
	ctx := r.Context()
	now := a.now().UnixMilli()
	token, id := newToken(), web.NewID("s")
	stmts := []storage.Stmt{{
		Query: `INSERT INTO sessions (id, token_hash, tenant_id, user_id, created_at, last_seen_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{id, tokenHash(token), tenant, user, now, now, web.ClientIP(r), web.UserAgent(r)},
	}}
	for _, old := range cookieValues(r.Header, sessionCookie) {
		if !validToken(old) {
			continue
		}
		stmts = append(stmts, storage.Stmt{
			// tenant-lookup: the old cookie may belong to any tenant; it is ended by its own secret hash.
			Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'replaced' WHERE token_hash = ? AND ended_at IS NULL`,
			Args:  []any{now, tokenHash(old)},
		})
	}
	device, setDevice, err := a.trustDevice(r, user)
	if err != nil {
		return "", err
	}
	stmts = append(stmts, device)
	if _, err := a.p.SQL.Batch(ctx, stmts); err != nil {
		return "", err
	}
	setSessionCookie(w, token)
	setDevice(w)
	return id, nil
}

// rotateSession gives the current session a new token (after a privilege
// change of the person holding it) and sets the new cookie.
func (a *app) rotateSession(ctx context.Context, w http.ResponseWriter, s *web.Scope) ([]storage.Stmt, func()) {
	token := newToken()
	return []storage.Stmt{{
			Query: `UPDATE sessions SET token_hash = ? WHERE tenant_id = ? AND id = ? AND token_hash = ? AND ended_at IS NULL`,
			Args:  []any{tokenHash(token), s.Tenant, s.SessionID, s.TokenHash},
		}}, func() {
			setSessionCookie(w, token)
		}
}

// setSessionCookie: __Host- prefix (Secure, Path=/, no Domain), HttpOnly,
// SameSite=Strict, no Max-Age (the browser forgets it when it closes; the
// server enforces the idle and absolute timeouts).
func setSessionCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// endSessionsStmt ends every open session of a person in a tenant.
func endSessionsStmt(tenant, user, reason string, now int64) storage.Stmt {
	return storage.Stmt{
		Query: `UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL`,
		Args:  []any{now, reason, tenant, user},
	}
}

// client works out where the request came from, once, for web.ClientIP
// and its kin: at the edge the CF-Connecting-IP header that Cloudflare sets
// (and overwrites); in a home behind a trusted proxy, Config.ClientIPHeader;
// otherwise the peer. The country is the edge's CF-IPCountry, trusted only
// where such a proxy sets it.
func (a *app) client(r *http.Request, requestID string) web.Client {
	c := web.Client{RequestID: requestID}
	testHeader := a.cfg.TestRoutes && testClientIPHeader != ""
	if testHeader {
		c.IP = r.Header.Get(testClientIPHeader)
	}
	h := a.cfg.ClientIPHeader
	if h == "" && a.p.Home == "edge" {
		h = "CF-Connecting-IP"
	}
	if h != "" && c.IP == "" {
		if v := strings.TrimSpace(r.Header.Get(h)); v != "" && net.ParseIP(v) != nil {
			c.IP = v
		}
	}
	if c.IP == "" {
		c.IP = r.RemoteAddr
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			c.IP = host
		}
	}
	if a.p.Home == "edge" || a.cfg.ClientIPHeader != "" || testHeader {
		c.Country = web.Truncate(r.Header.Get("CF-IPCountry"), 8)
	}
	return c
}

func (a *app) now() time.Time { return a.p.Clock.Now() }

// recordLogin records a login success or failure and runs the audit
// package's anomaly detection on it (bursts of failures; a new IP or
// country for the person).
func (a *app) recordLogin(r *http.Request, e audit.Event) error {
	e.IP, e.UserAgent = web.ClientIP(r), web.UserAgent(r)
	e.RequestID = web.RequestID(r)
	if c := web.ClientCountry(r); c != "" {
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details["country"] = c
	}
	_, err := a.auditLog().RecordLogin(r.Context(), e)
	return err
}

// auditRoute adapts an audit package handler: the caller's own tenant and
// identity, from the authenticated scope, are its template.
func (a *app) auditRoute(h audit.HandlerFunc) web.Handler {
	return func(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
		return h(w, r, s.Event(r))
	}
}

// auditLog is the tenant audit log over the platform's SQL (nil-safe for
// the docs generator, which builds the table from a nil app).
func (a *app) auditLog() *audit.Log {
	if a == nil {
		return nil
	}
	return web.AuditLog(a.p)
}
