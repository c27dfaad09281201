package identity

import (
	"context"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
)

// One-time account links (account_tokens): verify an address, reset a
// password, confirm a new address. The token a link carries is derived
// from the row's id under a key only the custodian holds
// (mail.Token(PurposeAccount, id)), so neither the row nor the job that
// mails it holds the token; the row keeps its SHA-256, by which a
// presented token is found. The purpose is checked on use: a verification
// token is not a reset token.

// Link purposes (account_tokens.purpose) and their lifetimes.
const (
	purposeVerify      = "verify_email"
	purposeReset       = "password_reset"
	purposeEmailChange = "email_change"

	verifyTTL      = 48 * time.Hour
	resetTTL       = 30 * time.Minute
	emailChangeTTL = 24 * time.Hour
)

// Pages the mailed links open (served by the platform: ui/account).
const (
	pageVerify     = "/account/verify"
	pageReset      = "/account/reset"
	pageEmail      = "/account/email"
	pageInvitation = "/account/invitation"
)

// newLink returns a new link's id and the statement that inserts its row,
// for the batch of its cause. The caller queues the mail with the id.
func (svc *Service) newLink(ctx context.Context, purpose, user, email string, ttl time.Duration) (string, stmt, error) {
	return svc.newLinkID(ctx, web.NewID("atk"), purpose, user, email, ttl)
}

func (svc *Service) newLinkID(ctx context.Context, id, purpose, user, email string, ttl time.Duration) (string, stmt, error) {
	token, err := mail.Token(ctx, svc.p.Keys, mail.PurposeAccount, id)
	if err != nil {
		return "", stmt{}, err
	}
	now := svc.now()
	return id, stmt{
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		Query: `INSERT INTO account_tokens (id, purpose, user_id, email, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		Args:  []any{id, purpose, user, email, tokenHash(token), now.UnixMilli(), now.Add(ttl).UnixMilli()},
	}, nil
}

// revokeLinksStmt revokes a person's open links of a purpose (but keep),
// when a newer one replaces them or the change they were for is done.
func revokeLinksStmt(user, purpose, keep string, now int64) stmt {
	return stmt{
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		Query: `UPDATE account_tokens SET revoked_at = ? WHERE user_id = ? AND purpose = ? AND id != ? AND used_at IS NULL AND revoked_at IS NULL`,
		Args:  []any{now, user, purpose, keep},
	}
}

// link is an account_tokens row found by its token.
type link struct {
	id, purpose, userID, email string
	expiresAt                  int64
	used, revoked              bool
}

// Link errors (docs/api.md, "Account links").
var (
	errInvalidLink = web.Errorf(http.StatusBadRequest, "invalid_link", "this link is not valid: open the newest mail we sent you, or ask for a new link")
	errLinkUsed    = web.Errorf(http.StatusGone, "link_used", "this link was already used; ask for a new one if you still need it")
	errLinkExpired = web.Errorf(http.StatusGone, "link_expired", "this link has expired or a newer one replaced it; ask for a new one")
	errDisabled    = web.Errorf(http.StatusForbidden, "account_disabled", "this account has no active membership in any organization; ask an owner to enable it")
)

// loadLink finds the open link of purpose that token names, or says why
// it cannot be used: malformed, unknown or of another purpose (400
// invalid_link), used (410 link_used), expired or replaced (410
// link_expired). Nothing is changed.
func (svc *Service) loadLink(ctx context.Context, token, purpose string) (*link, error) {
	if !validToken(token) {
		return nil, errInvalidLink
	}
	// tenant-lookup: the link's token is the credential; account links belong to no tenant.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, purpose, user_id, email, expires_at, used_at IS NOT NULL, revoked_at IS NOT NULL FROM account_tokens WHERE token_hash = ?`,
		tokenHash(token))
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, errInvalidLink
	}
	l := &link{}
	if err := rows.Scan(0, &l.id, &l.purpose, &l.userID, &l.email, &l.expiresAt, &l.used, &l.revoked); err != nil {
		return nil, err
	}
	switch {
	case l.purpose != purpose:
		return nil, errInvalidLink
	case l.used:
		return nil, errLinkUsed
	case l.revoked || l.expiresAt <= svc.now().UnixMilli():
		return nil, errLinkExpired
	}
	return l, nil
}

// useLinkStmt marks the link used, only while it is still open. It is the
// LAST statement of the batch that does what the link is for; every
// statement before it is conditional on the link being open (linkOpen),
// and the caller checks its RowsAffected. Batches run one at a time, so
// of two racing uses one does everything and the other nothing.
func useLinkStmt(l *link, now int64) stmt {
	return stmt{
		// tenant-lookup: account links belong to a person's account, which spans tenants.
		Query: `UPDATE account_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		Args:  []any{now, l.id, now},
	}
}

// linkOpen is the SQL condition "the link is still open", with its
// arguments, for the statements before useLinkStmt.
func linkOpen(l *link, now int64) (string, []any) {
	return `EXISTS (SELECT 1 FROM account_tokens WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?)`, []any{l.id, now}
}

// linkRaceError is the answer when useLinkStmt changed nothing: another
// request used, or a newer link revoked, the link meanwhile.
func (svc *Service) linkRaceError(ctx context.Context, token, purpose string) error {
	if _, err := svc.loadLink(ctx, token, purpose); err != nil {
		return err
	}
	return errLinkUsed
}

// account is a person's account as the link flows need it.
type account struct {
	id, email, name, hash, locale string
	verified                      bool
}

// followLink is the first half of following a mailed link: the link of
// purpose that token names, the person it was sent to, and the
// organizations where they are active (none: errDisabled, nothing to do).
// sentToAccount says the link went to the person's own address, so that it
// proves nothing once the address has changed (errLinkExpired); an email
// change's link went to the new address instead.
func (svc *Service) followLink(ctx context.Context, token, purpose string, sentToAccount bool) (*link, *account, []string, error) {
	l, err := svc.loadLink(ctx, token, purpose)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := svc.accountByID(ctx, l.userID)
	if err != nil {
		return nil, nil, nil, err
	}
	if a == nil {
		return nil, nil, nil, errInvalidLink
	}
	if sentToAccount && a.email != l.email {
		return nil, nil, nil, errLinkExpired
	}
	tenants, err := svc.activeTenants(ctx, a.id)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(tenants) == 0 {
		return nil, nil, nil, errDisabled
	}
	return l, a, tenants, nil
}

func (svc *Service) accountByID(ctx context.Context, id string) (*account, error) {
	// tenant-lookup: a person's account is global; the link or session that names it was checked.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, email, name, password_hash, locale, email_verified_at IS NOT NULL FROM users WHERE id = ?`, id)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	a := &account{}
	return a, rows.Scan(0, &a.id, &a.email, &a.name, &a.hash, &a.locale, &a.verified)
}

// activeTenants lists the tenants where the person is an active member
// (where a change to their account is audited); none means the account
// is disabled everywhere.
func (svc *Service) activeTenants(ctx context.Context, user string) ([]string, error) {
	// tenant-lookup: a person's account spans tenants; this lists them.
	rows, err := svc.p.SQL.Query(ctx, `SELECT tenant_id FROM memberships WHERE user_id = ? AND status = 'active' ORDER BY tenant_id LIMIT 50`, user)
	if err != nil {
		return nil, err
	}
	out := make([]string, rows.Len())
	for i := range out {
		if err := rows.Scan(i, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// recordAccountEvent audits a change to a person's account in each tenant
// they are an active member of, as done by the person.
func (svc *Service) recordAccountEvent(r *http.Request, tenants []string, user, action string, details map[string]string) error {
	for _, t := range tenants {
		if err := web.RecordEvent(r, svc.p, auditEvent(t, user, action, details)); err != nil {
			return err
		}
	}
	return nil
}

func auditEvent(tenant, user, action string, details map[string]string) audit.Event {
	return audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: user, Action: action, Target: "user:" + user, Details: details}
}

// linkOrigin is where the links mailed for request r point: the home's
// public origin for it (web.SelfOrigin), which must be a plain origin. A
// home with no public origins configured takes the request's Host, and a
// Host that makes no origin is refused.
func (svc *Service) linkOrigin(r *http.Request) (string, error) {
	o, err := web.ParseOrigin(web.SelfOrigin(r, svc.Origins))
	if err != nil {
		return "", web.Errorf(http.StatusBadRequest, "invalid_host", "the request's Host does not name a site links can point to")
	}
	return o, nil
}

// accountMail queues a mail about the person's own account (under
// mail.AccountTenant, which no organization lists), optionally with a link.
// origin is where the link points (web.SelfOrigin of the request).
func (svc *Service) accountMail(origin, event, to, locale, template string, vars map[string]string, linkPath, linkID string) ([]stmt, error) {
	m := mail.Message{Tenant: mail.AccountTenant, Event: event, To: to, Locale: mailLocale(locale), Template: template, Vars: vars}
	if linkPath != "" {
		m.Link = &mail.Link{Origin: origin, Path: linkPath, Purpose: mail.PurposeAccount, ID: linkID}
	}
	return mail.Enqueue(m, svc.now())
}
