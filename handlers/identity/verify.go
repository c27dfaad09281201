package identity

import (
	"context"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
)

// Verified addresses: a new account is mailed a link (48 hours) at
// sign-up; following it marks the address verified. Until then the person
// can use the product but not invite people or create API keys (the
// route table's verified gate). A person who accepted an invitation is
// verified already: the invitation was mailed to that address.

// Resend limits, counted in SQL over the person's verification links
// (the sign-up's link included): one a minute, five a day.
const (
	resendGap    = time.Minute
	resendPerDay = 5
)

// checkLocale accepts the languages mail is written in; "" is English.
func checkLocale(l string) (string, error) {
	switch l {
	case "", "en":
		return "en", nil
	case "tr":
		return "tr", nil
	}
	return "", web.Errorf(http.StatusBadRequest, "invalid_locale", `locale must be "en" or "tr"`)
}

// displayName is how a mail greets the person: their name, else their
// address.
func displayName(name, email string) string {
	if name != "" {
		return name
	}
	return email
}

// verificationStmts revoke the person's open verification links and make
// a new one, mailed to email: for the batch of a sign-up or a resend. It
// returns the new link's id too.
func (svc *Service) verificationStmts(ctx context.Context, origin, user, email, locale string) (string, []stmt, error) {
	id, ins, err := svc.newLink(ctx, purposeVerify, user, email, verifyTTL)
	if err != nil {
		return "", nil, err
	}
	m, err := svc.accountMail(origin, verifyEvent(id), email, locale, mail.TemplateVerifyEmail, nil, pageVerify, id)
	if err != nil {
		return "", nil, err
	}
	return id, append([]stmt{revokeLinksStmt(user, purposeVerify, id, svc.now().UnixMilli()), ins}, m...), nil
}

func verifyEvent(linkID string) string { return "verify:" + linkID }

type tokenRequest struct {
	Token string `json:"token"`
}

// VerifyEmail follows a verification link: the address it was sent to is
// verified, if it is still the person's address.
func (svc *Service) VerifyEmail(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	l, a, tenants, err := svc.followLink(ctx, req.Token, purposeVerify, true)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	open, openArgs := linkOpen(l, now)
	res, err := svc.p.SQL.Batch(ctx, []stmt{
		{
			// tenant-lookup: a person's account is global; the link names it.
			Query: `UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ? AND email = ? AND ` + open,
			Args:  append([]any{now, a.id, l.email}, openArgs...),
		},
		useLinkStmt(l, now),
	})
	if err != nil {
		return err
	}
	if res[1].RowsAffected != 1 {
		return svc.linkRaceError(ctx, req.Token, purposeVerify)
	}
	if err := svc.recordAccountEvent(r, tenants, a.id, "user.email.verified", map[string]string{"email": l.email}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"email": l.email, "verified": true})
	return nil
}

// ResendVerification mails a new verification link (the older ones stop
// working), at most one a minute and five a day.
func (svc *Service) ResendVerification(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	a, err := svc.accountByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	if a == nil {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	if a.verified {
		return web.Errorf(http.StatusConflict, "already_verified", "your email address is already verified")
	}
	now := svc.now()
	if err := svc.checkResend(ctx, a.id, now); err != nil {
		return err
	}
	origin, err := svc.linkOrigin(r)
	if err != nil {
		return err
	}
	linkID, stmts, err := svc.verificationStmts(ctx, origin, a.id, a.email, a.locale)
	if err != nil {
		return err
	}
	if err := svc.batch(ctx, stmts); err != nil {
		return err
	}
	if err := s.Record(r, "user.email.verification_sent", "user:"+a.id, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusAccepted, map[string]any{"mail": map[string]any{"id": mail.LogID(verifyEvent(linkID)), "status": "queued"}})
	return nil
}

// checkResend refuses a resend with 429 and Retry-After when the person
// had a verification link in the last minute, or five in the last day.
func (svc *Service) checkResend(ctx context.Context, user string, now time.Time) error {
	day := now.Add(-24 * time.Hour).UnixMilli()
	// tenant-lookup: account links belong to a person's account, which spans tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT COUNT(*), COALESCE(MIN(created_at), 0), COALESCE(MAX(created_at), 0) FROM account_tokens
		WHERE user_id = ? AND purpose = 'verify_email' AND created_at > ?`, user, day)
	if err != nil {
		return err
	}
	var n, oldest, newest int64
	if err := rows.Scan(0, &n, &oldest, &newest); err != nil {
		return err
	}
	var wait time.Duration
	if n > 0 {
		wait = time.UnixMilli(newest).Add(resendGap).Sub(now)
	}
	if n >= resendPerDay {
		// Only the day's oldest link leaving the window makes room.
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		if rows, err = svc.p.SQL.Query(ctx, `SELECT created_at FROM account_tokens WHERE user_id = ? AND purpose = 'verify_email' AND created_at > ?
			ORDER BY created_at DESC LIMIT 1 OFFSET ?`, user, day, resendPerDay-1); err != nil {
			return err
		}
		if rows.Len() == 1 {
			if err := rows.Scan(0, &oldest); err != nil {
				return err
			}
		}
		wait = max(wait, time.UnixMilli(oldest).Add(24*time.Hour).Sub(now))
	}
	if wait > 0 {
		e := web.Errorf(http.StatusTooManyRequests, "too_many_requests", "we sent you a verification link recently; try again in %d seconds", web.RetrySeconds(wait))
		e.RetryAfter = web.RetrySeconds(wait)
		return e
	}
	return nil
}

type profileRequest struct {
	Name   *string `json:"name"`
	Locale *string `json:"locale"`
}

// UpdateMe changes the person's name or the language of their mail. Both
// belong to the person's account, in every organization.
func (svc *Service) UpdateMe(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req profileRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	if req.Name == nil && req.Locale == nil {
		return web.Errorf(http.StatusBadRequest, "empty_update", "send name, locale or both")
	}
	var name, locale any // nil: unchanged
	changed := map[string]string{}
	if req.Name != nil {
		n, err := web.CheckName("name", *req.Name, false, 100)
		if err != nil {
			return err
		}
		name, changed["name"] = n, "true"
	}
	if req.Locale != nil {
		l, err := checkLocale(*req.Locale)
		if err != nil {
			return err
		}
		locale, changed["locale"] = l, l
	}
	ctx := r.Context()
	// tenant-lookup: a person's name and language belong to their account, which spans tenants; the session names it.
	if _, err := svc.p.SQL.Exec(ctx, `UPDATE users SET name = COALESCE(?, name), locale = COALESCE(?, locale) WHERE id = ?`, name, locale, s.UserID); err != nil {
		return err
	}
	a, err := svc.accountByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	if a == nil {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	if err := s.Record(r, "user.profile.updated", "user:"+a.id, changed); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"user": map[string]any{"id": a.id, "email": a.email, "name": a.name, "role": s.Role,
		"email_verified": a.verified, "locale": a.locale}})
	return nil
}
