package identity

import (
	"net/http"

	"pommy.ai/edge/handlers/web"
)

type transferRequest struct {
	UserID string `json:"user_id"`
}

// TransferOwnership makes an active member owner and the caller admin, in
// one batch; the new owner's sessions end (privilege change) and the
// caller's session gets a new token.
func (svc *Service) TransferOwnership(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req transferRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	if req.UserID == s.UserID {
		return web.Errorf(http.StatusBadRequest, "invalid_user_id", "you are already an owner")
	}
	if _, status, err := svc.loadMember(r, s, req.UserID); err != nil {
		return err
	} else if status != "active" {
		return web.Errorf(http.StatusConflict, "member_disabled", "ownership can go only to an active member")
	}
	ctx := r.Context()
	now := svc.now().UnixMilli()
	rot, setCookie := svc.rotateSession(ctx, w, s)
	stmts := append([]stmt{
		{Query: `UPDATE memberships SET role = 'owner', updated_at = ? WHERE tenant_id = ? AND user_id = ? AND status = 'active'`,
			Args: []any{now, s.Tenant, req.UserID}},
		{Query: `UPDATE memberships SET role = 'admin', updated_at = ? WHERE tenant_id = ? AND user_id = ? AND role = 'owner' AND ` + otherActiveOwner,
			Args: []any{now, s.Tenant, s.UserID, s.Tenant, s.UserID}},
		endSessionsStmt(s.Tenant, req.UserID, "privilege_changed", now),
	}, rot...)
	res, err := svc.p.SQL.Batch(ctx, stmts)
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
	web.WriteJSON(w, http.StatusOK, map[string]any{"owner": req.UserID, "your_role": web.RoleAdmin})
	return nil
}
