package mail

// A stand-in for the outbox's API while it is written alongside: the same
// names and signatures, enough for the account flows to compile and queue
// rows. It is deleted when the outbox lands.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/storage"
)

type Message struct {
	Tenant   string
	Event    string
	To       string
	Locale   string
	Template string
	Vars     map[string]string
	Link     *Link
}

type Link struct {
	Origin, Path, Purpose, ID string
}

const (
	TemplateVerifyEmail     = "verify_email"
	TemplatePasswordReset   = "password_reset"
	TemplateEmailChange     = "email_change_confirm"
	TemplateEmailChanged    = "email_changed"
	TemplateInvitation      = "invitation"
	TemplatePasswordChanged = "password_changed"
	TemplateMFAChanged      = "mfa_changed"
	TemplateSecurityNotice  = "security_notice"
	TemplateNewDevice       = "new_device"

	PurposeAccount    = "account-token"
	PurposeInvitation = "invitation"
)

func Enqueue(m Message, now time.Time) ([]storage.Stmt, error) {
	if err := storage.CheckMailAddress(m.To); err != nil {
		return nil, err
	}
	id := LogID(m.Event)
	payload, _ := json.Marshal(m)
	ms := now.UnixMilli()
	return []storage.Stmt{
		jobs.Enqueue(jobs.Spec{Tenant: m.Tenant, Kind: "mail.send", ID: "job_" + id, Ref: id, Payload: payload}, ms),
		{Query: `INSERT INTO mail_log (tenant_id, id, job_id, to_addr, template, locale, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			Args: []any{m.Tenant, id, "job_" + id, m.To, m.Template, m.Locale, ms, ms}},
	}, nil
}

func Token(ctx context.Context, keys storage.Keys, purpose, id string) (string, error) {
	mac, err := keys.MAC(ctx, purpose, []byte(id))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(mac), nil
}

func LogID(event string) string {
	h := sha256.Sum256([]byte(event))
	return "ml_" + hex.EncodeToString(h[:12])
}

func Status(ctx context.Context, sql storage.SQL, tenant, id string) (string, error) {
	rows, err := sql.Query(ctx, `SELECT status FROM mail_log WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil || rows.Len() == 0 {
		return "", err
	}
	var s string
	return s, rows.Scan(0, &s)
}
