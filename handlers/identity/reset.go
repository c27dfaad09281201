package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Password reset. POST /v1/password/forgot answers the same, in body and
// in the work it does, whether or not an account uses the address: it
// counts the caller's address and writes one job ("account.forgot"), and
// nothing else. The job, later and out of the caller's sight, looks the
// address up and, for an active account, makes a reset link (30 minutes,
// single use) and queues its mail. docs/decisions.md, "Password reset
// without enumeration", has the reasoning for the limits.
const (
	forgotKind       = "account.forgot"
	forgotWindow     = time.Hour
	forgotPerIP      = 10 // requests an hour from one client address: 429 beyond
	forgotPerAddress = 3  // mails an hour to one address: silently none beyond
	liveResetLinks   = 3  // open reset links per person; older ones are revoked
)

type forgotRequest struct {
	Email string `json:"email"`
}

// forgotJob is the job's payload: the address asked about and where the
// link should point. Never a token: the job makes the link itself.
type forgotJob struct {
	Email  string `json:"email"`
	Origin string `json:"origin"`
}

// forgotAnswer is the one body of every accepted request.
var forgotAnswer = map[string]any{"status": "accepted",
	"message": "If an account uses this address, we have mailed it a link to choose a new password. The link works for 30 minutes."}

// ForgotPassword queues a reset for an address.
func (svc *Service) ForgotPassword(w http.ResponseWriter, r *http.Request) error {
	var req forgotRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	ctx := r.Context()
	n, retry, err := svc.countWindow(ctx, "forgot-ip:"+hashHex(web.ClientIP(r)), forgotWindow)
	if err != nil {
		return err
	}
	if n > forgotPerIP {
		e := web.Errorf(http.StatusTooManyRequests, "too_many_requests", "too many password reset requests from this address; try again in %d seconds", web.RetrySeconds(retry))
		e.RetryAfter = web.RetrySeconds(retry)
		return e
	}
	origin, err := svc.linkOrigin(r)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(forgotJob{Email: email, Origin: origin})
	if err != nil {
		return err
	}
	if err := svc.batch(ctx, []stmt{jobs.Enqueue(jobs.Spec{Tenant: mail.AccountTenant, Kind: forgotKind, Payload: payload}, svc.now().UnixMilli())}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusAccepted, forgotAnswer)
	return nil
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// countWindow counts one event in bucket's fixed window (rate_windows,
// under the account tenant, which no organization owns) and returns the
// count so far and how long until the window ends.
func (svc *Service) countWindow(ctx context.Context, bucket string, window time.Duration) (int64, time.Duration, error) {
	now := svc.now().UnixMilli()
	win := now - now%window.Milliseconds()
	// tenant-lookup: counters of the public account routes belong to no organization (mail.AccountTenant).
	rows, err := svc.p.SQL.Query(ctx, `INSERT INTO rate_windows (tenant_id, bucket, window_start, count) VALUES (?, ?, ?, 1)
		ON CONFLICT (tenant_id, bucket) DO UPDATE SET count = CASE WHEN window_start = excluded.window_start THEN count + 1 ELSE 1 END, window_start = excluded.window_start
		RETURNING count`, mail.AccountTenant, bucket, win)
	if err != nil {
		return 0, 0, err
	}
	if rows.Len() != 1 {
		return 0, 0, fmt.Errorf("identity: the rate counter did not answer")
	}
	var n int64
	if err := rows.Scan(0, &n); err != nil {
		return 0, 0, err
	}
	return n, time.Duration(win+window.Milliseconds()-now) * time.Millisecond, nil
}

// RegisterJobs registers the identity capability's background work: the
// password-reset requests.
func RegisterJobs(reg *jobs.Registry, p storage.Platform) {
	svc := &Service{p: p}
	reg.Register(forgotKind, svc.runForgot)
}

// runForgot is a reset request's hidden half. Its link's id derives from
// the job's, so a job that runs twice makes one link and one mail.
func (svc *Service) runForgot(ctx context.Context, j jobs.Job) error {
	p, err := decodeForgot(j.Payload)
	if err != nil {
		return jobs.Permanent(err)
	}
	email := p.Email
	linkID, err := forgotLinkID(j.ID)
	if err != nil {
		return jobs.Permanent(err)
	}
	// tenant-lookup: account links belong to a person's account, which spans tenants.
	done, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM account_tokens WHERE id = ?`, linkID)
	if err != nil {
		return err
	}
	if done.Len() > 0 {
		return nil // an earlier run made the link and queued its mail
	}
	// Every address counts, whether or not it has an account.
	n, _, err := svc.countWindow(ctx, "forgot-address:"+hashHex(email), forgotWindow)
	if err != nil {
		return err
	}
	if n > forgotPerAddress {
		return nil // the mailbox has this hour's links already
	}
	u, err := svc.userByEmail(ctx, email)
	if err != nil || u == nil {
		return err
	}
	tenants, err := svc.activeTenants(ctx, u.id)
	if err != nil || len(tenants) == 0 {
		return err // a disabled person gets no link
	}
	a, err := svc.accountByID(ctx, u.id)
	if err != nil || a == nil {
		return err
	}
	_, ins, err := svc.newLinkID(ctx, linkID, purposeReset, a.id, a.email, resetTTL)
	if err != nil {
		return err
	}
	m, err := svc.accountMail(p.Origin, "reset:"+linkID, a.email, a.locale, mail.TemplatePasswordReset, nil, pageReset, linkID)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	stmts := append([]stmt{{
		// At most liveResetLinks open at once: the older ones beyond the newest few are revoked.
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		Query: `UPDATE account_tokens SET revoked_at = ? WHERE user_id = ? AND purpose = 'password_reset' AND used_at IS NULL AND revoked_at IS NULL
			AND id NOT IN (SELECT id FROM account_tokens WHERE user_id = ? AND purpose = 'password_reset' AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
			ORDER BY created_at DESC, id DESC LIMIT ?)`,
		Args: []any{now, a.id, a.id, now, liveResetLinks - 1},
	}, ins}, m...)
	return svc.batch(ctx, stmts)
}

// decodeForgot reads a reset request's payload as stored, trusting
// nothing: the address must be a plain address in normal form, the origin
// a normalized http(s) origin.
func decodeForgot(payload []byte) (forgotJob, error) {
	var p forgotJob
	if err := json.Unmarshal(payload, &p); err != nil {
		return forgotJob{}, fmt.Errorf("account.forgot: %w", err)
	}
	if e, err := normalizeEmail(p.Email); err != nil || e != p.Email {
		return forgotJob{}, errors.New("account.forgot: a malformed address")
	}
	if o, err := web.ParseOrigin(p.Origin); err != nil || o != p.Origin {
		return forgotJob{}, errors.New("account.forgot: a malformed origin")
	}
	return p, nil
}

// forgotLinkID is the id of the reset link a job makes: the job's own
// random part, so that the job run twice makes one link.
func forgotLinkID(jobID string) (string, error) {
	id := "atk_" + strings.TrimPrefix(jobID, "job_")
	if !strings.HasPrefix(jobID, "job_") || !web.ValidID("atk", id) {
		return "", errors.New("account.forgot: a job id of an unexpected shape")
	}
	return id, nil
}

type resetRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// ResetPassword sets a new password with a reset link: every session of
// the person ends, in every organization; their other reset links stop
// working; the sign-in throttle of the account is cleared; the person is
// told by mail.
func (svc *Service) ResetPassword(w http.ResponseWriter, r *http.Request) error {
	var req resetRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	l, a, tenants, err := svc.followLink(ctx, req.Token, purposeReset, true)
	if err != nil {
		return err
	}
	hash, err := svc.hashNewPassword(ctx, req.NewPassword, a.email)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	open, openArgs := linkOpen(l, now)
	notice, err := svc.accountMail("", "password_reset:"+l.id, a.email, a.locale, mail.TemplatePasswordChanged, nil, "", "")
	if err != nil {
		return err
	}
	stmts := []stmt{
		{
			// Holding a link mailed to the address proves the address too.
			// tenant-lookup: a password is the person's, across tenants; the link names the person.
			Query: `UPDATE users SET password_hash = ?, password_changed_at = ?, email_verified_at = COALESCE(email_verified_at, ?) WHERE id = ? AND email = ? AND ` + open,
			Args:  append([]any{hash, now, now, a.id, l.email}, openArgs...),
		},
		{
			// tenant-lookup: a reset ends the person's sessions in every tenant.
			Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'password_reset' WHERE user_id = ? AND ended_at IS NULL AND ` + open,
			Args:  append([]any{now, a.id}, openArgs...),
		},
		{
			// tenant-lookup: account links belong to a person's account, which spans tenants.
			Query: `UPDATE account_tokens SET revoked_at = ? WHERE user_id = ? AND purpose = 'password_reset' AND id != ? AND used_at IS NULL AND revoked_at IS NULL AND ` + open,
			Args:  append([]any{now, a.id, l.id}, openArgs...),
		},
		{
			// The account's own brakes: the person proved who they are. (The
			// per-address counter stays, as after a sign-in.)
			// tenant-lookup: login throttling is per account and IP, before any tenant is known.
			Query: `DELETE FROM login_throttle WHERE (key = ? OR key = ?) AND ` + open,
			Args:  append([]any{throttleKey(throttleAccount, a.email), throttleKey(throttleAccountIP, a.email, web.ClientIP(r))}, openArgs...),
		},
	}
	stmts = append(stmts, notice...)
	stmts = append(stmts, useLinkStmt(l, now))
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		return err
	}
	if res[len(res)-1].RowsAffected != 1 {
		return svc.linkRaceError(ctx, req.Token, purposeReset)
	}
	ClearSessionCookie(w)
	if err := svc.recordAccountEvent(r, tenants, a.id, "user.password.reset", map[string]string{"sessions_ended": "all"}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
