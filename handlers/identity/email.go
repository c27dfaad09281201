package identity

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Changing one's address: the person asks with their password (checked
// as a sign-in checks it, throttles and all); a link (24 hours) goes to
// the NEW address; following it changes the address, which is then
// verified, and the OLD address is told. The person's sessions stay (see
// docs/decisions.md, "Email change keeps sessions").

type emailChangeRequest struct {
	NewEmail string `json:"new_email"`
	Password string `json:"password"`
}

// RequestEmailChange mails a confirmation link to the new address.
func (svc *Service) RequestEmailChange(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req emailChangeRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	newEmail, err := normalizeEmail(req.NewEmail)
	if err != nil {
		return web.Errorf(http.StatusBadRequest, "invalid_new_email", "new_email must be a plain address like name@example.com")
	}
	if req.Password == "" || len(req.Password) > 4*maxPasswordLen {
		return web.Errorf(http.StatusBadRequest, "invalid_password", "password is required (at most %d characters)", maxPasswordLen)
	}
	ctx := r.Context()
	a, err := svc.accountByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	if a == nil {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	if newEmail == a.email {
		return web.Errorf(http.StatusBadRequest, "same_email", "this is already your address")
	}
	if err := svc.checkPassword(r, &userRow{id: a.id, email: a.email, name: a.name, hash: a.hash}, a.email, req.Password, s.Tenant,
		web.Errorf(http.StatusForbidden, "invalid_credentials", "your password is wrong")); err != nil {
		return err
	}
	taken, err := svc.userByEmail(ctx, newEmail)
	if err != nil {
		return err
	}
	if taken != nil {
		return web.Errorf(http.StatusConflict, "email_in_use", "another account uses this address")
	}
	origin, err := svc.linkOrigin(r)
	if err != nil {
		return err
	}
	id, ins, err := svc.newLink(ctx, purposeEmailChange, a.id, newEmail, emailChangeTTL)
	if err != nil {
		return err
	}
	event := "email_change:" + id
	m, err := svc.accountMail(origin, event, newEmail, a.locale, mail.TemplateEmailChange, nil, pageEmail, id)
	if err != nil {
		return err
	}
	now := svc.now()
	if err := svc.batch(ctx, append([]stmt{revokeLinksStmt(a.id, purposeEmailChange, id, now.UnixMilli()), ins}, m...)); err != nil {
		return err
	}
	if err := s.Record(r, "user.email.change_requested", "user:"+a.id, map[string]string{"new_email": newEmail}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"new_email": newEmail, "expires_at": now.Add(emailChangeTTL).UTC().Format(time.RFC3339),
		"mail": map[string]any{"id": mail.LogID(event), "status": "queued"}})
	return nil
}

// ConfirmEmailChange follows the link mailed to the new address.
func (svc *Service) ConfirmEmailChange(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	l, a, tenants, err := svc.followLink(ctx, req.Token, purposeEmailChange, false)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	open, openArgs := linkOpen(l, now)
	// The old address is told, with the new one half hidden: whoever reads
	// it learns that the change happened and roughly where to, not the
	// address itself.
	notice, err := svc.accountMail("", "email_changed:"+l.id, a.email, a.locale, mail.TemplateEmailChanged,
		map[string]string{"new_email": maskEmail(l.email)}, "", "")
	if err != nil {
		return err
	}
	stmts := []stmt{
		{
			// The old address pins the row: a change confirmed meanwhile wins, this one then changes nothing.
			// tenant-lookup: a person's address belongs to their account, which spans tenants; the link names it.
			Query: `UPDATE users SET email = ?, email_verified_at = ? WHERE id = ? AND email = ? AND ` + open,
			Args:  append([]any{l.email, now, a.id, a.email}, openArgs...),
		},
		{
			// Links sent to the old address, or for another new one, stop working.
			// tenant-lookup: account links belong to a person's account, which spans tenants.
			Query: `UPDATE account_tokens SET revoked_at = ? WHERE user_id = ? AND id != ? AND purpose IN ('email_change', 'password_reset', 'verify_email')
				AND used_at IS NULL AND revoked_at IS NULL AND ` + open,
			Args: append([]any{now, a.id, l.id}, openArgs...),
		},
	}
	stmts = append(stmts, notice...)
	stmts = append(stmts, stmt{
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		Query: `UPDATE account_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ? AND EXISTS (SELECT 1 FROM users WHERE id = ? AND email = ?)`,
		Args:  []any{now, l.id, now, a.id, l.email},
	})
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "email_in_use", "another account took this address meanwhile; nothing was changed")
		}
		return err
	}
	if res[0].RowsAffected != 1 || res[len(res)-1].RowsAffected != 1 {
		return svc.linkRaceError(ctx, req.Token, purposeEmailChange)
	}
	if err := svc.recordAccountEvent(r, tenants, a.id, "user.email.changed", map[string]string{"from": a.email, "to": l.email}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"email": l.email, "verified": true})
	return nil
}

// maskEmail keeps an address's first letter and its domain:
// "jane@example.com" is "j***@example.com".
func maskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return "***"
	}
	r := []rune(local)
	return string(r[0]) + "***@" + domain
}
