// Package mail is the application's outbox for mail: a message is queued
// as a job (handlers/jobs) in the batch of the change that causes it,
// rendered from a template (English and Turkish, each with a plain-text
// part) when the job runs, handed to the home's Mailer (storage.Mailer),
// retried with backoff, and recorded in mail_log (to, template, status;
// never the body or a token it carries).
//
// One event, one mail: the job's id and the log row's id are derived from
// Message.Event, so enqueueing the same event twice adds nothing, and the
// job does not send again once the log says "sent". A link's token is
// never stored anywhere: it is derived (Token) from the id of the row it
// stands for under a key only the home's custodian holds, once when the
// cause hands it out and again when the job renders the mail.
package mail

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// AccountTenant is the mail log's and the jobs table's tenant for mail
// about a person's own account (verification, password reset, email
// change): it belongs to no organization, so no organization can list it.
const AccountTenant = "_accounts"

// KindSend is the job kind that renders and sends one message.
const KindSend = "mail.send"

// Token derivation purposes (storage.Keys.MAC): one key per kind of link,
// so that a token for one can never be presented as the other.
const (
	PurposeAccount    = "account-token"
	PurposeInvitation = "invitation"
)

// Message is one mail to queue.
type Message struct {
	// Tenant is the tenant the mail is about, or AccountTenant.
	Tenant string `json:"tenant"`
	// Event names what the mail is for, unique per event
	// ("verify:<atk id>", "invite:<inv id>", "notice:<ntc id>:<user id>"):
	// one event is mailed once.
	Event string `json:"event"`
	// To is one plain address (storage.CheckMailAddress).
	To string `json:"to"`
	// Locale is "en" or "tr"; "" is "en".
	Locale string `json:"locale,omitempty"`
	// Template is one of the Template* constants.
	Template string `json:"template"`
	// Vars are the values the template shows (its doc comment lists
	// them; each is required, and no other is accepted). Never a secret:
	// they are stored in the job's payload in clear.
	Vars map[string]string `json:"vars,omitempty"`
	// Link is the one-time link the mail carries, for the templates that
	// have one (and only for them).
	Link *Link `json:"link,omitempty"`
}

// Link is a one-time link, as the job rebuilds it at send time: Origin +
// Path + "#token=" + Token(Purpose, ID), plus "&tenant=" + the message's
// tenant for an invitation. The token sits in the fragment, which a
// browser never sends to a server, so it reaches no access log and no
// Referer.
type Link struct {
	Origin  string `json:"origin"`  // web.SelfOrigin(r, svc.Origins) at enqueue time
	Path    string `json:"path"`    // the page, e.g. "/account/reset"
	Purpose string `json:"purpose"` // PurposeAccount or PurposeInvitation
	ID      string `json:"id"`      // the id of the row the token is derived from
}

// Limits of a Message.
const (
	maxEvent  = 200
	maxTenant = 100
	maxVars   = 16
	maxVarLen = 1000
	maxPath   = 200
	maxLinkID = 100
	// maxError bounds the last error kept on a log row.
	maxError = 500
)

// Enqueue returns the statements that queue m, for the batch of the change
// that causes it: the mail_log row (status "queued") and the "mail.send"
// job, both with ids derived from m.Event and both inserted only if absent,
// so the same event queues one mail however often it is enqueued. A bad
// recipient address is a *web.Error 400 ("invalid_email"), safe to return
// to a client; any other fault is the caller's bug (an unknown template, a
// missing variable) and a plain error.
func Enqueue(m Message, now time.Time) ([]storage.Stmt, error) {
	if m.Locale == "" {
		m.Locale = "en"
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	id := LogID(m.Event)
	job := jobID(m.Event)
	ms := now.UnixMilli()
	return []storage.Stmt{
		{
			Query: `INSERT INTO mail_log (tenant_id, id, job_id, to_addr, template, locale, status, attempts, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?) ON CONFLICT (tenant_id, id) DO NOTHING`,
			Args: []any{m.Tenant, id, job, m.To, m.Template, m.Locale, ms, ms},
		},
		jobs.Enqueue(jobs.Spec{Tenant: m.Tenant, Kind: KindSend, ID: job, Ref: id, Payload: payload, MaxAttempts: MaxAttempts}, ms),
	}, nil
}

// MaxAttempts is a mail's number of tries before it is given up ("failed"):
// with SendPolicy's backoff, about a day of retries.
const MaxAttempts = 12

// check validates a Message (Locale already defaulted).
func (m Message) check() error {
	if err := storage.CheckMailAddress(m.To); err != nil {
		e := web.Errorf(http.StatusBadRequest, "invalid_email", "the address %q cannot receive mail from us: use one plain address like name@example.com", web.Truncate(m.To, 100))
		e.Field = "email"
		return e
	}
	switch {
	case !safeID(m.Tenant, maxTenant):
		return fmt.Errorf("mail: bad tenant %q", m.Tenant)
	case m.Event == "" || len(m.Event) > maxEvent || !printable(m.Event):
		return fmt.Errorf("mail: the event must be 1 to %d printable characters", maxEvent)
	case m.Locale != "en" && m.Locale != "tr":
		return fmt.Errorf("mail: locale %q is neither en nor tr", m.Locale)
	}
	t, ok := templates[m.Template]
	if !ok {
		return fmt.Errorf("mail: unknown template %q", m.Template)
	}
	if len(m.Vars) > maxVars {
		return fmt.Errorf("mail: %d variables, at most %d", len(m.Vars), maxVars)
	}
	for k, v := range m.Vars {
		if len(v) > maxVarLen || !utf8.ValidString(v) {
			return fmt.Errorf("mail: variable %q of %s is not UTF-8 of at most %d bytes", k, m.Template, maxVarLen)
		}
		if !t.takes(k) && !(k == "tenant" && t.link && v == m.Tenant) {
			return fmt.Errorf("mail: template %s takes the variables %s, not %q", m.Template, strings.Join(t.vars, ", "), k)
		}
	}
	for _, k := range t.vars {
		if _, ok := m.Vars[k]; !ok {
			return fmt.Errorf("mail: template %s needs the variable %q", m.Template, k)
		}
	}
	switch {
	case t.link && m.Link == nil:
		return fmt.Errorf("mail: template %s carries a link and the message has none", m.Template)
	case !t.link && m.Link != nil:
		return fmt.Errorf("mail: template %s carries no link", m.Template)
	case m.Link != nil:
		return m.Link.check()
	}
	return nil
}

func (l *Link) check() error {
	if o, err := web.ParseOrigin(l.Origin); err != nil || o != l.Origin {
		return fmt.Errorf("mail: link origin %q is not a normalized http(s) origin", l.Origin)
	}
	if len(l.Path) < 2 || len(l.Path) > maxPath || l.Path[0] != '/' || strings.HasPrefix(l.Path, "//") ||
		strings.Trim(l.Path, "abcdefghijklmnopqrstuvwxyz0123456789/-_") != "" {
		return fmt.Errorf("mail: link path %q must be /lowercase-words", l.Path)
	}
	if l.Purpose != PurposeAccount && l.Purpose != PurposeInvitation {
		return fmt.Errorf("mail: unknown link purpose %q", l.Purpose)
	}
	if !safeID(l.ID, maxLinkID) {
		return fmt.Errorf("mail: bad link id %q", l.ID)
	}
	return nil
}

// safeID: 1 to max of a-z, A-Z, 0-9, '_', '-' (the shapes of the ids the
// application makes, and AccountTenant).
func safeID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// printable: UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Token is the link token for the row id under purpose: the base64url
// (no padding) of the custodian's MAC, 43 characters, the shape identity
// accepts for tokens. The same inputs always give the same token, so the
// mail job recomputes it and nothing stores it; the row it names is found
// by the token's SHA-256.
func Token(ctx context.Context, keys storage.Keys, purpose, id string) (string, error) {
	if purpose != PurposeAccount && purpose != PurposeInvitation {
		return "", fmt.Errorf("mail: unknown token purpose %q", purpose)
	}
	if id == "" {
		return "", fmt.Errorf("mail: a token needs an id")
	}
	mac, err := keys.MAC(ctx, purpose, []byte(id))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(mac), nil
}

// LogID is the mail_log id of an event: "ml_" and the hex of the first 12
// bytes of its SHA-256.
func LogID(event string) string { return "ml_" + eventHash(event) }

// jobID is the "mail.send" job's id of an event.
func jobID(event string) string { return "mail_" + eventHash(event) }

func eventHash(event string) string {
	h := sha256.Sum256([]byte(event))
	return hex.EncodeToString(h[:12])
}

// Status is the log's status of the mail id of tenant: "queued", "sent",
// "failed", or "" when there is none.
func Status(ctx context.Context, sql storage.SQL, tenant, id string) (string, error) {
	rows, err := sql.Query(ctx, `SELECT status FROM mail_log WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil || rows.Len() == 0 {
		return "", err
	}
	var s string
	return s, rows.Scan(0, &s)
}

// Retention is how long the mail log keeps a row: long enough to answer
// "did they get the invitation, the reset link, the notice?", not a
// record of every address ever mailed.
const Retention = 90 * 24 * time.Hour

// Prune deletes log rows older than Retention, at most limit per call (a
// bounded statement). A row still queued is kept: its job may yet send it.
func Prune(ctx context.Context, p storage.Platform, limit int) error {
	// tenant-lookup: retention applies to every tenant (and the accounts' mail) alike; rows are chosen by age and status only.
	_, err := p.SQL.Exec(ctx, `DELETE FROM mail_log WHERE rowid IN (SELECT rowid FROM mail_log WHERE created_at < ? AND status != 'queued' LIMIT ?)`,
		p.Clock.Now().Add(-Retention).UnixMilli(), limit)
	return err
}

// PurgeTenantStmts delete a tenant's mail log, for the tenant's deletion.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{{Query: `DELETE FROM mail_log WHERE tenant_id = ?`, Args: []any{tenant}}}
}

// Templates lists the template names, sorted (for tests and docs).
func Templates() []string {
	out := make([]string, 0, len(templates))
	for k := range templates {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
