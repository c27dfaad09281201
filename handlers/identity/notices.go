package identity

// Security notices by mail. The audit log raises a notice (a burst of
// failed sign-ins, a sign-in from a new place, …) and, in the same batch,
// queues a "notice.deliver" job (audit.NoticeJob). That job, run here
// because only identity knows people and roles, mails the notice to the
// person it is about (when they are still an active member) and, when the
// organization keeps tenants.notices_to_owners on, to each active owner:
// one mail per person, each its own event "notice:<notice>:<user>", so a
// notice raised twice, or a delivery run twice, mails each person once.
//
// A sign-in from a browser the account has not used before, by a person
// who has signed in before, is mailed to that person in the session's own
// batch (newDeviceNotice) and recorded as "auth.new_device".

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// ActionNewDevice is the audit action of a sign-in from a new device.
const ActionNewDevice = "auth.new_device"

// maxNoticeOwners bounds the owners one notice is mailed to.
const maxNoticeOwners = 20

// RegisterNotices adds the "notice.deliver" kind to reg, bound to p.
func RegisterNotices(reg *jobs.Registry, p storage.Platform) {
	svc := &Service{p: p}
	reg.Register(audit.NoticeJobKind, svc.deliverNotice)
}

type recipient struct {
	id, email, locale string
}

// deliverNotice queues the mail of one notice to its recipients.
func (svc *Service) deliverNotice(ctx context.Context, j jobs.Job) error {
	var n audit.NoticePayload
	if err := json.Unmarshal(j.Payload, &n); err != nil || n.Tenant != j.Tenant || n.Notice == "" {
		return jobs.Permanent(fmt.Errorf("notice.deliver: bad payload"))
	}
	rows, err := svc.p.SQL.Query(ctx, `SELECT n.kind, n.message, t.name, t.notices_to_owners FROM security_notices n JOIN tenants t ON t.id = n.tenant_id
		WHERE n.tenant_id = ? AND n.id = ?`, j.Tenant, n.Notice)
	if err != nil {
		return err
	}
	if rows.Len() == 0 {
		return nil // the tenant was deleted since
	}
	var kind, message, org string
	var toOwners int64
	if err := rows.Scan(0, &kind, &message, &org, &toOwners); err != nil {
		return err
	}
	var to []recipient
	seen := map[string]bool{}
	add := func(query string, args ...any) error {
		rows, err := svc.p.SQL.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		for i := range rows.Len() {
			var r recipient
			if err := rows.Scan(i, &r.id, &r.email, &r.locale); err != nil {
				return err
			}
			if !seen[r.id] {
				seen[r.id] = true
				to = append(to, r)
			}
		}
		return nil
	}
	const people = `SELECT u.id, u.email, u.locale FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ? AND m.status = 'active'`
	if n.User != "" {
		if err := add(people+` AND m.user_id = ?`, j.Tenant, n.User); err != nil {
			return err
		}
	}
	// A notice about no one in particular (failures from one address over
	// many accounts, a webhook disabled) is the owners' in any case.
	if toOwners != 0 || n.User == "" {
		if err := add(people+` AND m.role = 'owner' ORDER BY m.created_at LIMIT ?`, j.Tenant, maxNoticeOwners); err != nil {
			return err
		}
	}
	// The notice names the person by id ("user:u_…"); a mail names them
	// by the address people know them by.
	for _, r := range to {
		if n.User != "" && r.id == n.User {
			message = strings.ReplaceAll(message, "user:"+n.User, r.email)
		}
	}
	now := svc.now()
	var stmts []storage.Stmt
	for _, r := range to {
		st, err := mail.Enqueue(mail.Message{Tenant: j.Tenant, Event: "notice:" + n.Notice + ":" + r.id, To: r.email, Locale: mailLocale(r.locale),
			Template: mail.TemplateSecurityNotice, Vars: map[string]string{"kind": kind, "message": jobs.Truncate(message, 900), "organization": org}}, now)
		var bad *web.Error
		switch {
		case errors.As(err, &bad):
			// An address that cannot receive mail (an account made
			// before addresses were checked this strictly): the others
			// still get theirs.
			continue
		case err != nil:
			return jobs.Permanent(err)
		}
		stmts = append(stmts, st...)
	}
	if len(stmts) == 0 {
		return nil
	}
	_, err = svc.p.SQL.Batch(ctx, stmts)
	return err
}

// mailLocale is a stored locale as the mail templates take it.
func mailLocale(l string) string {
	if l == "tr" {
		return "tr"
	}
	return "en"
}

// newDeviceNotice returns, for a sign-in of user to tenant from a browser
// that got a new device token (tokenHash h), the statements that mail the
// person about it and the audit event that records it; nothing when the
// person has never signed in before (their first device is no news), or
// when their address cannot receive mail (then only the event).
func (svc *Service) newDeviceNotice(r *http.Request, tenant, user string, h []byte) ([]storage.Stmt, *audit.Event, error) {
	ctx := r.Context()
	// tenant-lookup: devices belong to a person's account, which spans tenants; has this person any device yet?
	rows, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM trusted_devices WHERE user_id = ? LIMIT 1`, user)
	if err != nil || rows.Len() == 0 {
		return nil, nil, err
	}
	rows, err = svc.p.SQL.Query(ctx, `SELECT u.email, u.locale, t.name FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id
		WHERE m.tenant_id = ? AND m.user_id = ?`, tenant, user)
	if err != nil || rows.Len() == 0 {
		return nil, nil, err
	}
	var email, locale, org string
	if err := rows.Scan(0, &email, &locale, &org); err != nil {
		return nil, nil, err
	}
	ip, ua, country := web.ClientIP(r), web.UserAgent(r), web.ClientCountry(r)
	ev := &audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: user, Action: ActionNewDevice, Target: "user:" + user,
		IP: ip, UserAgent: ua, RequestID: web.RequestID(r), Details: map[string]string{"country": country}}
	place := country
	if place == "" {
		place = "unknown"
	}
	// The mail is about the person's account, not the organization's
	// business: it is kept with the account's mail, which no organization
	// lists.
	stmts, err := mail.Enqueue(mail.Message{Tenant: mail.AccountTenant, Event: "device:" + user + ":" + hex.EncodeToString(h[:12]), To: email,
		Locale: mailLocale(locale), Template: mail.TemplateNewDevice,
		Vars: map[string]string{"when": svc.now().UTC().Format("2006-01-02 15:04 UTC"), "ip": orUnknown(jobs.Truncate(ip, 64)), "place": jobs.Truncate(place, 16),
			"user_agent": orUnknown(jobs.Truncate(ua, 200)), "organization": org}}, svc.now())
	if err != nil {
		return nil, ev, nil
	}
	return stmts, ev, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
