package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

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

// startSession creates a session for a member and sets its cookie. Every
// Login gets a new token; every session cookie the request already carried
// is ended (no fixation, no orphan). The browser is remembered as one of the
// person's devices (devices.go). methods are how the person proved who they
// are ("password", "password totp", "passkey", ...): they are recorded in
// sessions.auth_methods, and the sign-in counts as the session's latest
// proof (reauth_at) for step-up.
func (svc *Service) startSession(w http.ResponseWriter, r *http.Request, tenant, user string, methods []string) (string, error) {
	ctx := r.Context()
	now := svc.now().UnixMilli()
	token, id := newToken(), web.NewID("s")
	if len(methods) == 0 {
		methods = []string{methodPassword}
	}
	stmts := []storage.Stmt{{
		Query: `INSERT INTO sessions (id, token_hash, tenant_id, user_id, created_at, last_seen_at, ip, user_agent, auth_methods, reauth_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{id, tokenHash(token), tenant, user, now, now, web.ClientIP(r), web.UserAgent(r), strings.Join(methods, " "), now},
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
	device, setDevice, fresh, err := svc.trustDevice(r, user)
	if err != nil {
		return "", err
	}
	var newDevice *audit.Event
	if fresh != nil {
		var notice []storage.Stmt
		if notice, newDevice, err = svc.newDeviceNotice(r, tenant, user, fresh); err != nil {
			return "", err
		}
		stmts = append(stmts, notice...)
	}
	stmts = append(stmts, device)
	if newDevice != nil {
		// The session, its device, the mail and the audit event: one batch.
		_, err = web.AuditLog(svc.p).RecordBatch(ctx, *newDevice, stmts)
	} else {
		_, err = svc.p.SQL.Batch(ctx, stmts)
	}
	if err != nil {
		return "", err
	}
	setSessionCookie(w, token)
	setDevice(w)
	return id, nil
}

// rotateSession gives the current session a new token (after a privilege
// change of the person holding it) and sets the new cookie.
func (svc *Service) rotateSession(ctx context.Context, w http.ResponseWriter, s *web.Scope) ([]storage.Stmt, func()) {
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

func ClearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// endSessionsStmt ends every open session of a person in a tenant.
func endSessionsStmt(tenant, user, reason string, now int64) storage.Stmt {
	return storage.Stmt{
		Query: `UPDATE sessions SET ended_at = ?, ended_reason = ? WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL`,
		Args:  []any{now, reason, tenant, user},
	}
}

func (svc *Service) ListSessions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT id, created_at, last_seen_at, ip, user_agent, auth_methods, COALESCE(reauth_at, created_at) FROM sessions
		WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL ORDER BY last_seen_at DESC LIMIT 100`, s.Tenant, s.UserID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, rows.Len())
	for i := range rows.Len() {
		var id, ip, ua, methods string
		var created, seen, reauth int64
		if err := rows.Scan(i, &id, &created, &seen, &ip, &ua, &methods, &reauth); err != nil {
			return err
		}
		out = append(out, map[string]any{"id": id, "current": id == s.SessionID, "created_at": web.Millis(created),
			"last_seen_at": web.Millis(seen), "ip": ip, "user_agent": ua,
			"auth_methods": nonNil(strings.Fields(methods)), "reauth_at": web.Millis(reauth)})
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

func (svc *Service) EndSession(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("s", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such session")
	}
	res, err := svc.p.SQL.Exec(r.Context(), `UPDATE sessions SET ended_at = ?, ended_reason = 'ended_by_user' WHERE tenant_id = ? AND user_id = ? AND id = ? AND ended_at IS NULL`,
		svc.now().UnixMilli(), s.Tenant, s.UserID, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such active session")
	}
	if id == s.SessionID {
		ClearSessionCookie(w)
	}
	if err := s.Record(r, "session.ended", "session:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (svc *Service) EndOtherSessions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	res, err := svc.p.SQL.Exec(r.Context(), `UPDATE sessions SET ended_at = ?, ended_reason = 'ended_by_user' WHERE tenant_id = ? AND user_id = ? AND id != ? AND ended_at IS NULL`,
		svc.now().UnixMilli(), s.Tenant, s.UserID, s.SessionID)
	if err != nil {
		return err
	}
	if err := s.Record(r, "session.ended_others", "user:"+s.UserID, map[string]string{"count": itoa(res.RowsAffected)}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"ended": res.RowsAffected})
	return nil
}

// Sweep deletes what no longer serves: sessions ended or idle for
// over 30 days, stale throttle counters and rate windows, invitations
// and account links long expired, and sign-in challenges a day after they
// expired.
func Sweep(ctx context.Context, p storage.Platform) error {
	now := p.Clock.Now()
	month := now.Add(-knownIPWindow).UnixMilli()
	_, err := p.SQL.Batch(ctx, []storage.Stmt{
		// tenant-lookup: the sweep runs for every tenant at once.
		{Query: `DELETE FROM sessions WHERE (ended_at IS NOT NULL AND ended_at < ?) OR last_seen_at < ?`, Args: []any{month, month}},
		// tenant-lookup: devices belong to people's accounts, which span tenants.
		{Query: `DELETE FROM trusted_devices WHERE last_used_at < ?`, Args: []any{now.Add(-deviceLifetime).UnixMilli()}},
		// tenant-lookup: throttle counters belong to no tenant.
		{Query: `DELETE FROM login_throttle WHERE last_failure_at < ?`, Args: []any{now.Add(-throttleForget).UnixMilli()}},
		// tenant-lookup: the sweep runs for every tenant at once.
		{Query: `DELETE FROM rate_windows WHERE window_start < ?`, Args: []any{now.Add(-time.Hour).UnixMilli()}},
		// tenant-lookup: the sweep runs for every tenant at once.
		{Query: `DELETE FROM invitations WHERE expires_at < ?`, Args: []any{month}},
		// tenant-lookup: account links belong to people's accounts, which span tenants; a month after they expire they serve no answer.
		{Query: `DELETE FROM account_tokens WHERE expires_at < ?`, Args: []any{month}},
		// tenant-lookup: sign-in challenges belong to people's accounts; the sweep runs for all at once.
		{Query: `DELETE FROM auth_challenges WHERE expires_at < ?`, Args: []any{now.Add(-challengeKeep).UnixMilli()}},
	})
	return err
}

// PurgeTenantStmts delete a tenant's identity rows (its keys and their rate
// windows, sessions, invitations, memberships), for the tenant's deletion.
// People's accounts, which may belong to other tenants, stay.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{
		{Query: `DELETE FROM api_keys WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM sessions WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM invitations WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM memberships WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM rate_windows WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM auth_challenges WHERE tenant_id = ?`, Args: []any{tenant}},
	}
}
