package mail

// GET /v1/mail: a tenant's mail log. It shows what was sent to whom, with
// which template, and how it went; never a body, a link or a token (the
// log holds none). Mail about a person's own account is kept under
// AccountTenant, which no tenant's scope ever names.

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Limits of the listing.
const (
	PageSize    = 50
	MaxPageSize = 100
	maxCursor   = 200
)

// Statuses a mail can be in.
var Statuses = []string{"queued", "sent", "failed"}

// View is one mail as the API shows it.
type View struct {
	ID         string  `json:"id"`
	To         string  `json:"to"`
	Template   string  `json:"template"`
	Locale     string  `json:"locale"`
	Status     string  `json:"status"`
	Attempts   int     `json:"attempts"`
	LastError  *string `json:"last_error"`
	ProviderID *string `json:"provider_id"`
	JobID      string  `json:"job_id"`
	CreatedAt  string  `json:"created_at"`
	UpdatedAt  string  `json:"updated_at"`
	SentAt     *string `json:"sent_at"`
}

// listQuery is a parsed GET /v1/mail.
type listQuery struct {
	Status, Template string
	Limit            int
	AfterAt          int64
	AfterID          string
}

// parseList reads status, template, cursor and limit; unknown or repeated
// parameters are refused, so that a typo does not list everything.
func parseList(q url.Values) (listQuery, error) {
	out := listQuery{Limit: PageSize}
	if err := web.CheckQuery(q, "cursor", "limit", "status", "template"); err != nil {
		return out, err
	}
	if s := q.Get("status"); s != "" {
		if s != "queued" && s != "sent" && s != "failed" {
			return out, web.FieldErrorf("invalid_status", "status", "status is one of %s", strings.Join(Statuses, ", "))
		}
		out.Status = s
	}
	if t := q.Get("template"); t != "" {
		if _, ok := templates[t]; !ok {
			return out, web.FieldErrorf("invalid_template", "template", "template is one of %s", strings.Join(Templates(), ", "))
		}
		out.Template = t
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageSize || strconv.Itoa(n) != s {
			return out, web.FieldErrorf("invalid_limit", "limit", "limit is an integer from 1 to %d", MaxPageSize)
		}
		out.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		at, id, err := parseCursor(s)
		if err != nil {
			return out, err
		}
		out.AfterAt, out.AfterID = at, id
	}
	return out, nil
}

// encodeCursor is opaque to clients: base64url of "<ms>.<log id>".
func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "." + id))
}

// parseCursor reads a cursor made by encodeCursor, and only that spelling.
func parseCursor(s string) (int64, string, error) {
	bad := web.FieldErrorf("invalid_cursor", "cursor", "the cursor is not one this list returned")
	if len(s) > maxCursor {
		return 0, "", bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", bad
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || !validLogID(id) || at == "" || len(at) > 16 || (at[0] == '0' && at != "0") || strings.Trim(at, "0123456789") != "" {
		return 0, "", bad
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil || n > web.MaxSafeInt || encodeCursor(n, id) != s {
		return 0, "", bad
	}
	return n, id, nil
}

// validLogID: "ml_" and 24 lower-case hex digits (LogID's shape).
func validLogID(id string) bool {
	rest, ok := strings.CutPrefix(id, "ml_")
	return ok && len(rest) == 24 && strings.Trim(rest, "0123456789abcdef") == ""
}

// tenant-scoped: every use appends WHERE tenant_id = ?.
const selectLog = `SELECT id, to_addr, template, locale, status, attempts, last_error, provider_id, job_id, created_at, updated_at, sent_at FROM mail_log`

// List is GET /v1/mail: the tenant's mail, newest first by (created_at,
// id), a keyset on values that never change; filtered by status and
// template; "next" is the cursor of the following page, absent on the
// last.
func List(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	q, err := parseList(r.URL.Query())
	if err != nil {
		return err
	}
	query := selectLog + ` WHERE tenant_id = ?`
	args := []any{s.Tenant}
	if q.Status != "" {
		query += ` AND status = ?`
		args = append(args, q.Status)
	}
	if q.Template != "" {
		query += ` AND template = ?`
		args = append(args, q.Template)
	}
	if q.AfterID != "" {
		query += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, q.AfterAt, q.AfterAt, q.AfterID)
	}
	query += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	rows, err := s.P.SQL.Query(r.Context(), query, append(args, q.Limit+1)...)
	if err != nil {
		return err
	}
	n := min(rows.Len(), q.Limit)
	list := make([]View, n)
	var lastAt int64
	for i := range list {
		if lastAt, err = scanView(rows, i, &list[i]); err != nil {
			return err
		}
	}
	resp := map[string]any{"mail": list}
	if rows.Len() > q.Limit {
		resp["next"] = encodeCursor(lastAt, list[n-1].ID)
	}
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// scanView reads row i of selectLog into v and returns its created_at.
func scanView(rows *storage.Rows, i int, v *View) (int64, error) {
	var lastErr, provider any
	var created, updated int64
	var sent *int64
	if err := rows.Scan(i, &v.ID, &v.To, &v.Template, &v.Locale, &v.Status, &v.Attempts, &lastErr, &provider, &v.JobID, &created, &updated, &sent); err != nil {
		return 0, err
	}
	if e, ok := lastErr.(string); ok {
		v.LastError = &e
	}
	if p, ok := provider.(string); ok {
		v.ProviderID = &p
	}
	if sent != nil {
		t := web.Millis(*sent)
		v.SentAt = &t
	}
	v.CreatedAt, v.UpdatedAt = web.Millis(created), web.Millis(updated)
	return created, nil
}
