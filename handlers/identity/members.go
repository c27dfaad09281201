package identity

import (
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (svc *Service) ListMembers(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT u.id, u.email, u.name, m.role, m.status, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
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
func (svc *Service) loadMember(r *http.Request, s *web.Scope, id string) (role, status string, err error) {
	if !web.ValidID("u", id) {
		return "", "", web.Errorf(http.StatusNotFound, "not_found", "no such member")
	}
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT role, status FROM memberships WHERE tenant_id = ? AND user_id = ?`, s.Tenant, id)
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

// UpdateMember changes a member's role or status. Any change ends the
// member's sessions (a privilege change gets a new token at the next
// sign-in; a disabled member is out at once).
func (svc *Service) UpdateMember(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req memberUpdate
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	if req.Role == nil && req.Status == nil {
		return web.Errorf(http.StatusBadRequest, "invalid_update", "send role and/or status")
	}
	id := r.PathValue("id")
	oldRole, oldStatus, err := svc.loadMember(r, s, id)
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
	now := svc.now().UnixMilli()
	q := `UPDATE memberships SET role = ?, status = ?, updated_at = ? WHERE tenant_id = ? AND user_id = ? AND role = ? AND status = ?`
	args := []any{role, status, now, s.Tenant, id, oldRole, oldStatus}
	demotesOwner := oldRole == web.RoleOwner && oldStatus == "active" && (role != web.RoleOwner || status != "active")
	if demotesOwner {
		q += ` AND ` + otherActiveOwner
		args = append(args, s.Tenant, id)
	}
	res, err := svc.p.SQL.Batch(r.Context(), []stmt{
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

func (svc *Service) RemoveMember(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	oldRole, oldStatus, err := svc.loadMember(r, s, id)
	if err != nil {
		return err
	}
	if !mayGrant(s, oldRole) {
		return web.Errorf(http.StatusForbidden, "forbidden", "only an owner may remove an owner")
	}
	now := svc.now().UnixMilli()
	q := `DELETE FROM memberships WHERE tenant_id = ? AND user_id = ? AND role = ? AND status = ?`
	args := []any{s.Tenant, id, oldRole, oldStatus}
	if oldRole == web.RoleOwner && oldStatus == "active" {
		q += ` AND ` + otherActiveOwner
		args = append(args, s.Tenant, id)
	}
	res, err := svc.p.SQL.Batch(r.Context(), []stmt{
		{Query: q, Args: args},
		{Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'member_removed' WHERE tenant_id = ? AND user_id = ? AND ended_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM memberships WHERE tenant_id = ? AND user_id = ?)`,
			Args: []any{now, s.Tenant, id, s.Tenant, id}},
	})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		if oldRole == web.RoleOwner {
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
