package identity

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/mail"
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
	id := web.NewID("inv")
	// The token is derived from the invitation's id, so the mail job can
	// put it in the link without any table or payload holding it.
	token, err := mail.Token(ctx, svc.p.Keys, mail.PurposeInvitation, id)
	if err != nil {
		return err
	}
	event := invitationEvent(id, 1)
	m, err := svc.invitationMail(r, s, id, email, req.Role, event)
	if err != nil {
		return err
	}
	_, actor := s.Actor()
	stmts := append([]stmt{{
		Query: `INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, created_at, expires_at, mail_id, mail_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
		Args:  []any{s.Tenant, id, email, req.Role, tokenHash(token), actor, now.UnixMilli(), now.Add(invitationTTL).UnixMilli(), mail.LogID(event)},
	}}, m...)
	if err := svc.batch(ctx, stmts); err != nil {
		return err
	}
	if err := s.Record(r, "member.invited", "invitation:"+id, map[string]string{"email": email, "role": req.Role}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"id": id, "email": email, "role": req.Role, "expires_at": now.Add(invitationTTL).UTC().Format(time.RFC3339),
		"token": token, // shown once, for the inviter to hand over if the mail does not arrive
		"mail":  map[string]any{"id": mail.LogID(event), "status": "queued"},
	})
	return nil
}

// maxInvitationMails bounds the mails one invitation sends (the first and
// its resends): past it, revoke the invitation and invite again.
const maxInvitationMails = 5

// invitationEvent names the nth mail of an invitation (from 1).
func invitationEvent(id string, n int64) string {
	if n <= 1 {
		return "invite:" + id
	}
	return fmt.Sprintf("invite:%s:%d", id, n)
}

// invitationMail queues the mail that carries an invitation's link, in
// the invitee's language when they have an account, else the inviter's.
func (svc *Service) invitationMail(r *http.Request, s *web.Scope, id, email, role, event string) ([]stmt, error) {
	ctx := r.Context()
	origin, err := svc.linkOrigin(r)
	if err != nil {
		return nil, err
	}
	// tenant-lookup: the organization is the caller's (t.id); the inviter's and the invitee's accounts are global.
	rows, err := svc.p.SQL.Query(ctx, `SELECT t.name, COALESCE(u.name, ''), COALESCE(u.email, ''), COALESCE(u.locale, 'en'),
		COALESCE((SELECT locale FROM users WHERE email = ?), '') FROM tenants t LEFT JOIN users u ON u.id = ? WHERE t.id = ?`, email, s.UserID, s.Tenant)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, web.Errorf(http.StatusNotFound, "not_found", "no such organization")
	}
	var org, inviterName, inviterEmail, inviterLocale, inviteeLocale string
	if err := rows.Scan(0, &org, &inviterName, &inviterEmail, &inviterLocale, &inviteeLocale); err != nil {
		return nil, err
	}
	return mail.Enqueue(mail.Message{Tenant: s.Tenant, Event: event, To: email, Locale: mailLocale(cmp.Or(inviteeLocale, inviterLocale)),
		Template: mail.TemplateInvitation,
		Vars:     map[string]string{"organization": org, "inviter": displayName(inviterName, inviterEmail), "role": role, "tenant": s.Tenant},
		Link:     &mail.Link{Origin: origin, Path: pageInvitation, Purpose: mail.PurposeInvitation, ID: id},
	}, svc.now())
}

// ResendInvitation mails a pending invitation again, with the same link
// (one new mail per call, at most maxInvitationMails in all). An
// invitation made before invitations were mailed had a random token the
// mail cannot carry: resending replaces it with the derived one, and the
// token handed over by hand stops working.
func (svc *Service) ResendInvitation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("inv", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such invitation")
	}
	ctx := r.Context()
	now := svc.now().UnixMilli()
	rows, err := svc.p.SQL.Query(ctx, `SELECT email, role, mail_count FROM invitations
		WHERE tenant_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, s.Tenant, id, now)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such pending invitation")
	}
	var email, role string
	var sent int64
	if err := rows.Scan(0, &email, &role, &sent); err != nil {
		return err
	}
	if sent >= maxInvitationMails {
		return web.Errorf(http.StatusConflict, "resend_limit", "this invitation was mailed %d times; revoke it and invite again", maxInvitationMails)
	}
	token, err := mail.Token(ctx, svc.p.Keys, mail.PurposeInvitation, id)
	if err != nil {
		return err
	}
	event := invitationEvent(id, sent+1)
	m, err := svc.invitationMail(r, s, id, email, role, event)
	if err != nil {
		return err
	}
	res, err := svc.p.SQL.Batch(ctx, append([]stmt{{
		Query: `UPDATE invitations SET mail_count = ?, mail_id = ?, token_hash = ? WHERE tenant_id = ? AND id = ? AND mail_count = ?
			AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		Args: []any{sent + 1, mail.LogID(event), tokenHash(token), s.Tenant, id, sent, now},
	}}, m...))
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "conflict", "the invitation changed meanwhile; try again")
	}
	if err := s.Record(r, "member.invitation.resent", "invitation:"+id, map[string]string{"mail": strconv.FormatInt(sent+1, 10)}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"id": id, "mail": map[string]any{"id": mail.LogID(event), "status": "queued"}})
	return nil
}

func (svc *Service) ListInvitations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT i.id, i.email, i.role, i.created_at, i.expires_at, COALESCE(i.mail_id, ''), COALESCE(ml.status, '')
		FROM invitations i LEFT JOIN mail_log ml ON ml.tenant_id = i.tenant_id AND ml.id = i.mail_id
		WHERE i.tenant_id = ? AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > ? ORDER BY i.created_at DESC LIMIT 200`,
		s.Tenant, svc.now().UnixMilli())
	if err != nil {
		return err
	}
	out := make([]map[string]any, rows.Len())
	for i := range out {
		var id, email, role, mailID, status string
		var created, expires int64
		if err := rows.Scan(i, &id, &email, &role, &created, &expires, &mailID, &status); err != nil {
			return err
		}
		out[i] = map[string]any{"id": id, "email": email, "role": role, "created_at": web.Millis(created), "expires_at": web.Millis(expires), "mail": nil}
		if mailID != "" {
			// The latest mail's state: "queued" until the mail service accepted it, "sent", or "failed".
			out[i]["mail"] = map[string]any{"id": mailID, "status": cmp.Or(status, "queued")}
		}
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
	body := map[string]any{
		"tenant": map[string]any{"id": tenant},
		"user":   map[string]any{"id": userID, "email": email, "role": role},
	}
	if err := svc.startSessionOrChallenge(w, r, tenant, userID, u != nil, body); err != nil {
		return err
	}
	if err := web.RecordEvent(r, svc.p, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: userID, Action: "member.joined",
		Target: "user:" + userID, Details: map[string]string{"role": role, "invitation": invID}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, body)
	return nil
}
