package identity

import (
	"errors"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

const invitationTTL = 7 * 24 * time.Hour

type invitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func validRole(r string) bool { return r == web.RoleOwner || r == web.RoleAdmin || r == web.RoleAgent }

// mayGrant: only an owner may grant or touch the owner role.
func mayGrant(s *web.Scope, role string) bool {
	return role != web.RoleOwner || (s.KeyID == "" && s.Role == web.RoleOwner)
}

func (svc *Service) CreateInvitation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req invitationRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	if !validRole(req.Role) {
		return web.Errorf(http.StatusBadRequest, "invalid_role", "role must be owner, admin or agent")
	}
	if !mayGrant(s, req.Role) {
		return web.Errorf(http.StatusForbidden, "forbidden", "only an owner may invite an owner")
	}
	ctx := r.Context()
	rows, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ? AND u.email = ?`, s.Tenant, email)
	if err != nil {
		return err
	}
	if rows.Len() > 0 {
		return web.Errorf(http.StatusConflict, "already_member", "this person is already a member")
	}
	now := svc.now()
	id, token := web.NewID("inv"), newToken()
	_, actor := s.Actor()
	if _, err := svc.p.SQL.Exec(ctx, `INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Tenant, id, email, req.Role, tokenHash(token), actor, now.UnixMilli(), now.Add(invitationTTL).UnixMilli()); err != nil {
		return err
	}
	if err := s.Record(r, "member.invited", "invitation:"+id, map[string]string{"email": email, "role": req.Role}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"id": id, "email": email, "role": req.Role, "expires_at": now.Add(invitationTTL).UTC().Format(time.RFC3339),
		"token": token, // shown once; deliver it to the invitee (email delivery is not built yet)
	})
	return nil
}

func (svc *Service) ListInvitations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT id, email, role, created_at, expires_at FROM invitations
		WHERE tenant_id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 200`,
		s.Tenant, svc.now().UnixMilli())
	if err != nil {
		return err
	}
	out := make([]map[string]any, rows.Len())
	for i := range out {
		var id, email, role string
		var created, expires int64
		if err := rows.Scan(i, &id, &email, &role, &created, &expires); err != nil {
			return err
		}
		out[i] = map[string]any{"id": id, "email": email, "role": role, "created_at": web.Millis(created), "expires_at": web.Millis(expires)}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"invitations": out})
	return nil
}

func (svc *Service) RevokeInvitation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("inv", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such invitation")
	}
	res, err := svc.p.SQL.Exec(r.Context(), `UPDATE invitations SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
		svc.now().UnixMilli(), s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such pending invitation")
	}
	if err := s.Record(r, "member.invitation.revoked", "invitation:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type acceptRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// AcceptInvitation joins the invitee to the tenant (creating their account
// if the email has none; otherwise their current password is required) and
// signs them in. One batch, every statement conditional on the invitation
// still being open, so a token is used at most once.
func (svc *Service) AcceptInvitation(w http.ResponseWriter, r *http.Request) error {
	var req acceptRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	invalid := web.Errorf(http.StatusBadRequest, "invalid_invitation", "the invitation is unknown, used, revoked or expired")
	if !validToken(req.Token) {
		return invalid
	}
	name, err := web.CheckName("name", req.Name, false, 100)
	if err != nil {
		return err
	}
	ctx := r.Context()
	th := tokenHash(req.Token)
	now := svc.now().UnixMilli()
	// tenant-lookup: the invitation token is the credential that names the tenant.
	rows, err := svc.p.SQL.Query(ctx, `SELECT tenant_id, id, email, role FROM invitations WHERE token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, th, now)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return invalid
	}
	var tenant, invID, email, role string
	if err := rows.Scan(0, &tenant, &invID, &email, &role); err != nil {
		return err
	}
	u, err := svc.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	open := `SELECT 1 FROM invitations WHERE tenant_id = ? AND token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`
	openArgs := []any{tenant, th, now}
	var stmts []stmt
	userID, hash, err := svc.account(r, u, email, req.Password,
		web.Errorf(http.StatusUnauthorized, "invalid_credentials", "an account with this email exists; give its password to accept"))
	if err != nil {
		return err
	}
	if hash != "" {
		stmts = append(stmts, stmt{
			// The invitation was mailed to this address, so holding its token proves the address.
			// tenant-lookup: a person's account is global; it is created only while the tenant's invitation is open.
			Query: `INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at, email_verified_at) SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (` + open + `)`,
			Args:  append([]any{userID, email, name, hash, now, now, now}, openArgs...)})
	}
	stmts = append(stmts,
		stmt{Query: `INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) SELECT ?, ?, ?, 'active', ?, ? WHERE EXISTS (` + open + `) ON CONFLICT (tenant_id, user_id) DO NOTHING`,
			Args: append([]any{tenant, userID, role, now, now}, openArgs...)},
		stmt{Query: `UPDATE invitations SET accepted_at = ? WHERE tenant_id = ? AND token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
			Args: []any{now, tenant, th, now}},
	)
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "email_in_use", "an account with this email was just created; accept again with its password")
		}
		return err
	}
	if res[len(res)-1].RowsAffected != 1 {
		return invalid
	}
	if res[len(res)-2].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "already_member", "you are already a member of this organization")
	}
	if _, err := svc.startSession(w, r, tenant, userID, []string{methodPassword}); err != nil {
		return err
	}
	if err := web.RecordEvent(r, svc.p, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: userID, Action: "member.joined",
		Target: "user:" + userID, Details: map[string]string{"role": role, "invitation": invID}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"tenant": map[string]any{"id": tenant},
		"user":   map[string]any{"id": userID, "email": email, "role": role},
	})
	return nil
}
