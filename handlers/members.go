package handlers

import (
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/conversations"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (a *app) listMembers(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := a.p.SQL.Query(r.Context(), `SELECT u.id, u.email, u.name, m.role, m.status, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.tenant_id = ? ORDER BY m.created_at LIMIT 1000`, s.Tenant)
	if err != nil {
		return err
	}
	out := make([]map[string]any, rows.Len())
	for i := range out {
		var id, email, name, role, status string
		var created int64
		if err := rows.Scan(i, &id, &email, &name, &role, &status, &created); err != nil {
			return err
		}
		out[i] = map[string]any{"id": id, "email": email, "name": name, "role": role, "status": status, "joined_at": web.Millis(created)}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"members": out})
	return nil
}

// loadMember reads a member's role and status in the scope's tenant.
func (a *app) loadMember(r *http.Request, s *web.Scope, id string) (role, status string, err error) {
	if !web.ValidID("u", id) {
		return "", "", web.Errorf(http.StatusNotFound, "not_found", "no such member")
	}
	rows, err := a.p.SQL.Query(r.Context(), `SELECT role, status FROM memberships WHERE tenant_id = ? AND user_id = ?`, s.Tenant, id)
	if err != nil {
		return "", "", err
	}
	if rows.Len() != 1 {
		return "", "", web.Errorf(http.StatusNotFound, "not_found", "no such member")
	}
	return role, status, rows.Scan(0, &role, &status)
}

// otherActiveOwner is the guard that protects the last owner: a statement
// that would leave the tenant without an active owner changes nothing. It
// is part of the one conditional statement, so two concurrent demotions
// cannot both pass it.
const otherActiveOwner = `(SELECT COUNT(*) FROM memberships o WHERE o.tenant_id = ? AND o.role = 'owner' AND o.status = 'active' AND o.user_id != ?) > 0`

type memberUpdate struct {
	Role   *string `json:"role"`
	Status *string `json:"status"`
}

// updateMember changes a member's role or status. Any change ends the
// member's sessions (a privilege change gets a new token at the next
// sign-in; a disabled member is out at once).
func (a *app) updateMember(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req memberUpdate
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	if req.Role == nil && req.Status == nil {
		return web.Errorf(http.StatusBadRequest, "invalid_update", "send role and/or status")
	}
	id := r.PathValue("id")
	oldRole, oldStatus, err := a.loadMember(r, s, id)
	if err != nil {
		return err
	}
	role, status := oldRole, oldStatus
	if req.Role != nil {
		if !validRole(*req.Role) {
			return web.Errorf(http.StatusBadRequest, "invalid_role", "role must be owner, admin or agent")
		}
		role = *req.Role
	}
	if req.Status != nil {
		if *req.Status != "active" && *req.Status != "disabled" {
			return web.Errorf(http.StatusBadRequest, "invalid_status", "status must be active or disabled")
		}
		status = *req.Status
	}
	if !mayGrant(s, oldRole) || !mayGrant(s, role) {
		return web.Errorf(http.StatusForbidden, "forbidden", "only an owner may grant the owner role or change an owner")
	}
	if role == oldRole && status == oldStatus {
		web.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "role": role, "status": status})
		return nil
	}
	now := a.now().UnixMilli()
	q := `UPDATE memberships SET role = ?, status = ?, updated_at = ? WHERE tenant_id = ? AND user_id = ? AND role = ? AND status = ?`
	args := []any{role, status, now, s.Tenant, id, oldRole, oldStatus}
	demotesOwner := oldRole == roleOwner && oldStatus == "active" && (role != roleOwner || status != "active")
	if demotesOwner {
		q += ` AND ` + otherActiveOwner
		args = append(args, s.Tenant, id)
	}
	res, err := a.p.SQL.Batch(r.Context(), []stmt{
		{Query: q, Args: args},
		// Ends the sessions only if the change above took effect.
		{Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'membership_changed' WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL
			AND EXISTS (SELECT 1 FROM memberships WHERE tenant_id = ? AND user_id = ? AND updated_at = ? AND role = ? AND status = ?)`,
			Args: []any{now, s.Tenant, id, s.Tenant, id, now, role, status}},
	})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		if demotesOwner {
			return web.Errorf(http.StatusConflict, "last_owner", "the last active owner cannot be demoted or disabled; make someone else owner first")
		}
		return web.Errorf(http.StatusConflict, "conflict", "the member changed meanwhile; retry")
	}
	if role != oldRole {
		if err := s.Record(r, "member.role.changed", "user:"+id, map[string]string{"from": oldRole, "to": role}); err != nil {
			return err
		}
	}
	if status != oldStatus {
		if err := s.Record(r, "member."+status, "user:"+id, map[string]string{"sessions_ended": itoa(res[1].RowsAffected)}); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "role": role, "status": status})
	return nil
}

func (a *app) removeMember(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	oldRole, oldStatus, err := a.loadMember(r, s, id)
	if err != nil {
		return err
	}
	if !mayGrant(s, oldRole) {
		return web.Errorf(http.StatusForbidden, "forbidden", "only an owner may remove an owner")
	}
	now := a.now().UnixMilli()
	q := `DELETE FROM memberships WHERE tenant_id = ? AND user_id = ? AND role = ? AND status = ?`
	args := []any{s.Tenant, id, oldRole, oldStatus}
	if oldRole == roleOwner && oldStatus == "active" {
		q += ` AND ` + otherActiveOwner
		args = append(args, s.Tenant, id)
	}
	res, err := a.p.SQL.Batch(r.Context(), []stmt{
		{Query: q, Args: args},
		{Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'member_removed' WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = ? AND user_id = ?)`,
			Args: []any{now, s.Tenant, id, s.Tenant, id}},
	})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		if oldRole == roleOwner {
			return web.Errorf(http.StatusConflict, "last_owner", "the last active owner cannot be removed; make someone else owner first")
		}
		return web.Errorf(http.StatusConflict, "conflict", "the member changed meanwhile; retry")
	}
	if err := s.Record(r, "member.removed", "user:"+id, map[string]string{"role": oldRole}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type transferRequest struct {
	UserID string `json:"user_id"`
}

// transferOwnership makes an active member owner and the caller admin, in
// one batch; the new owner's sessions end (privilege change) and the
// caller's session gets a new token.
func (a *app) transferOwnership(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req transferRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	if req.UserID == s.UserID {
		return web.Errorf(http.StatusBadRequest, "invalid_user_id", "you are already an owner")
	}
	if _, status, err := a.loadMember(r, s, req.UserID); err != nil {
		return err
	} else if status != "active" {
		return web.Errorf(http.StatusConflict, "member_disabled", "ownership can go only to an active member")
	}
	ctx := r.Context()
	now := a.now().UnixMilli()
	rot, setCookie := a.rotateSession(ctx, w, s)
	stmts := append([]stmt{
		{Query: `UPDATE memberships SET role = 'owner', updated_at = ? WHERE tenant_id = ? AND user_id = ? AND status = 'active'`,
			Args: []any{now, s.Tenant, req.UserID}},
		{Query: `UPDATE memberships SET role = 'admin', updated_at = ? WHERE tenant_id = ? AND user_id = ? AND role = 'owner' AND ` + otherActiveOwner,
			Args: []any{now, s.Tenant, s.UserID, s.Tenant, s.UserID}},
		endSessionsStmt(s.Tenant, req.UserID, "privilege_changed", now),
	}, rot...)
	res, err := a.p.SQL.Batch(ctx, stmts)
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 || res[1].RowsAffected != 1 {
		// The batch committed partly only if a concurrent change raced it;
		// report the state honestly.
		return web.Errorf(http.StatusConflict, "conflict", "ownership changed meanwhile; check the members list")
	}
	setCookie()
	if err := s.Record(r, "tenant.ownership.transferred", "user:"+req.UserID, map[string]string{"from": s.UserID}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"owner": req.UserID, "your_role": roleAdmin})
	return nil
}

// --- settings --------------------------------------------------------------

type settings struct {
	Name                   string `json:"name"`
	SessionIdleMinutes     int64  `json:"session_idle_minutes"`
	SessionAbsoluteMinutes int64  `json:"session_absolute_minutes"`
	// AuditRetentionDays lives with the audit log (audit_settings); it can
	// only be raised, never below 90 days.
	AuditRetentionDays int `json:"audit_retention_days"`
	// RateLimitPerMinute is the organization's request rate (tenantrate.go).
	RateLimitPerMinute int64 `json:"rate_limit_per_minute"`
}

func (a *app) loadSettings(r *http.Request, s *web.Scope) (*settings, error) {
	// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
	rows, err := a.p.SQL.Query(r.Context(), `SELECT name, session_idle_minutes, session_absolute_minutes, rate_limit_per_minute FROM tenants WHERE id = ?`, s.Tenant)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, storage.ErrNotFound
	}
	var st settings
	if err := rows.Scan(0, &st.Name, &st.SessionIdleMinutes, &st.SessionAbsoluteMinutes, &st.RateLimitPerMinute); err != nil {
		return nil, err
	}
	st.AuditRetentionDays, err = a.auditLog().Retention(r.Context(), s.Tenant)
	return &st, err
}

func (a *app) getSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	st, err := a.loadSettings(r, s)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, st)
	return nil
}

type settingsUpdate struct {
	Name                   *string `json:"name"`
	SessionIdleMinutes     *int64  `json:"session_idle_minutes"`
	SessionAbsoluteMinutes *int64  `json:"session_absolute_minutes"`
	AuditRetentionDays     *int    `json:"audit_retention_days"`
	RateLimitPerMinute     *int64  `json:"rate_limit_per_minute"`
}

func (a *app) updateSettings(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req settingsUpdate
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	st, err := a.loadSettings(r, s)
	if err != nil {
		return err
	}
	old := *st
	if req.Name != nil {
		if st.Name, err = checkName("name", *req.Name, true, 100); err != nil {
			return err
		}
	}
	if v := req.SessionIdleMinutes; v != nil {
		if *v < minIdleMinutes || *v > maxIdleMinutes {
			return web.Errorf(http.StatusBadRequest, "invalid_session_idle_minutes", "session_idle_minutes must be %d to %d", minIdleMinutes, maxIdleMinutes)
		}
		st.SessionIdleMinutes = *v
	}
	if v := req.SessionAbsoluteMinutes; v != nil {
		if *v < minAbsoluteMinutes || *v > maxAbsoluteMinutes {
			return web.Errorf(http.StatusBadRequest, "invalid_session_absolute_minutes", "session_absolute_minutes must be %d to %d", minAbsoluteMinutes, maxAbsoluteMinutes)
		}
		st.SessionAbsoluteMinutes = *v
	}
	if v := req.RateLimitPerMinute; v != nil {
		if err := checkTenantRate(*v); err != nil {
			return err
		}
		st.RateLimitPerMinute = *v
	}
	if st.SessionIdleMinutes > st.SessionAbsoluteMinutes {
		return web.Errorf(http.StatusBadRequest, "invalid_session_idle_minutes", "the idle timeout cannot exceed the absolute timeout")
	}
	if v := req.AuditRetentionDays; v != nil && *v != st.AuditRetentionDays {
		typ, id := s.Actor()
		by := audit.Event{ActorType: typ, ActorID: id, IP: web.ClientIP(r), UserAgent: web.UserAgent(r), RequestID: web.RequestID(r)}
		switch err := a.auditLog().SetRetention(r.Context(), s.Tenant, *v, by); {
		case errors.Is(err, audit.ErrRetentionTooShort), errors.Is(err, audit.ErrRetentionTooLong), errors.Is(err, audit.ErrRetentionLowered):
			return web.Errorf(http.StatusBadRequest, "invalid_audit_retention_days", "audit_retention_days must be %d to %d and can only be raised (now %d)", audit.MinRetentionDays, audit.MaxRetentionDays, st.AuditRetentionDays)
		case err != nil:
			return err
		}
		st.AuditRetentionDays = *v
		old.AuditRetentionDays = *v // recorded by SetRetention as audit.retention.changed
	}
	// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
	if _, err := a.p.SQL.Exec(r.Context(), `UPDATE tenants SET name = ?, session_idle_minutes = ?, session_absolute_minutes = ?, rate_limit_per_minute = ? WHERE id = ?`,
		st.Name, st.SessionIdleMinutes, st.SessionAbsoluteMinutes, st.RateLimitPerMinute, s.Tenant); err != nil {
		return err
	}
	if from, to := settingsDiff(&old, st); len(from) > 0 {
		typ, id := s.Actor()
		if err := web.RecordEvent(r, a.p, audit.Event{TenantID: s.Tenant, ActorType: typ, ActorID: id, Action: "settings.changed",
			Target: "tenant:" + s.Tenant, Values: map[string]any{"from": from, "to": to}}); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, st)
	return nil
}

// settingsDiff is what changed, as two objects of the changed fields with
// their JSON names and types, for the audit log ("from": {"name": "Acme"},
// "to": {"name": "Acme Inc"}). The retention is not here: SetRetention
// records its own change.
func settingsDiff(old, cur *settings) (from, to map[string]any) {
	from, to = map[string]any{}, map[string]any{}
	// Every field, by its JSON name, so that one added later is audited
	// without anyone remembering to; audit_retention_days is recorded by
	// the audit log itself (SetRetention).
	ov, cv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	for i := range ov.NumField() {
		name, _, _ := strings.Cut(ov.Type().Field(i).Tag.Get("json"), ",")
		if name == "audit_retention_days" {
			continue
		}
		if a, b := ov.Field(i).Interface(), cv.Field(i).Interface(); a != b {
			from[name], to[name] = a, b
		}
	}
	return from, to
}

// deleteTenant removes the tenant's rows and destroys its data key first, so
// that whatever a failure leaves behind (blobs, backups) is unreadable.
func (a *app) deleteTenant(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	if err := s.Record(r, "tenant.deleted", "tenant:"+s.Tenant, nil); err != nil {
		return err
	}
	if err := s.Keys.Shred(ctx, s.Tenant); err != nil {
		return err
	}
	if _, err := a.p.SQL.Batch(ctx, append(append(audit.PurgeTenantStmts(s.Tenant), conversations.PurgeTenantStmts(s.Tenant)...), []storage.Stmt{
		{Query: `DELETE FROM notes WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		{Query: `DELETE FROM api_keys WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		{Query: `DELETE FROM sessions WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		{Query: `DELETE FROM invitations WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		{Query: `DELETE FROM memberships WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		{Query: `DELETE FROM rate_windows WHERE tenant_id = ?`, Args: []any{s.Tenant}},
		// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
		{Query: `DELETE FROM tenants WHERE id = ?`, Args: []any{s.Tenant}},
	}...)); err != nil {
		return err
	}
	clearSessionCookie(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
