package handlers

import (
	"context"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// The person's own sessions in this tenant: list, end one, end all others.

func (a *app) listSessions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := a.p.SQL.Query(r.Context(), `SELECT id, created_at, last_seen_at, ip, user_agent FROM sessions
		WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL ORDER BY last_seen_at DESC LIMIT 100`, s.Tenant, s.UserID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, rows.Len())
	for i := range rows.Len() {
		var id, ip, ua string
		var created, seen int64
		if err := rows.Scan(i, &id, &created, &seen, &ip, &ua); err != nil {
			return err
		}
		out = append(out, map[string]any{"id": id, "current": id == s.SessionID, "created_at": web.Millis(created),
			"last_seen_at": web.Millis(seen), "ip": ip, "user_agent": ua})
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

func (a *app) endSession(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("s", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such session")
	}
	res, err := a.p.SQL.Exec(r.Context(), `UPDATE sessions SET ended_at = ?, ended_reason = 'ended_by_user' WHERE tenant_id = ? AND user_id = ? AND id = ? AND ended_at IS NULL`,
		a.now().UnixMilli(), s.Tenant, s.UserID, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such active session")
	}
	if id == s.SessionID {
		clearSessionCookie(w)
	}
	if err := s.Record(r, "session.ended", "session:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *app) endOtherSessions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	res, err := a.p.SQL.Exec(r.Context(), `UPDATE sessions SET ended_at = ?, ended_reason = 'ended_by_user' WHERE tenant_id = ? AND user_id = ? AND id != ? AND ended_at IS NULL`,
		a.now().UnixMilli(), s.Tenant, s.UserID, s.SessionID)
	if err != nil {
		return err
	}
	if err := s.Record(r, "session.ended_others", "user:"+s.UserID, map[string]string{"count": itoa(res.RowsAffected)}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"ended": res.RowsAffected})
	return nil
}

// sweepIdentity deletes what no longer serves: sessions ended or idle for
// over 30 days, stale throttle counters and rate windows, and invitations
// long expired.
func sweepIdentity(ctx context.Context, p storage.Platform) error {
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
	})
	return err
}
