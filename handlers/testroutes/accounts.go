package testroutes

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/handlers/mail"
)

// mountAccounts mounts the account shortcuts of the test build.
//
// /__test/users/verify-email marks a person's address verified without the
// mailed link, for suites whose subject is not the verification itself (an
// unverified owner may not invite people or create API keys). The link is
// tested end to end through a real mail server elsewhere.
func mountAccounts(mux *http.ServeMux, env handlers.TestEnv) {
	mux.HandleFunc("POST /__test/users/verify-email", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Email string `json:"email"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || !strings.Contains(req.Email, "@") {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {email}"))
			return
		}
		// tenant-lookup: a person's account is global.
		res, err := env.Platform.SQL.Exec(r.Context(), `UPDATE users SET email_verified_at = ? WHERE email = ? AND email_verified_at IS NULL`,
			env.Platform.Clock.Now().UnixMilli(), strings.ToLower(req.Email))
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]int64{"verified": res.RowsAffected})
	})
}

// mountAccountLinks mounts /__test/account-links: the account links made
// for an address, newest first, each with the token its mail carries
// (recomputed as the mail job does), so that the suites that run without
// a mail server can follow them. The links' mail, through a real server,
// is tested in tests/e2e. Also /__test/mail-log: what was queued to an
// address (template, status), the mail about people's accounts included.
func mountAccountLinks(mux *http.ServeMux, env handlers.TestEnv) {
	mux.HandleFunc("POST /__test/account-links", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Email string `json:"email"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || !strings.Contains(req.Email, "@") {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {email}"))
			return
		}
		// tenant-lookup: account links belong to people's accounts, which span tenants.
		rows, err := env.Platform.SQL.Query(r.Context(), `SELECT id, purpose, user_id, created_at, expires_at, used_at IS NOT NULL, revoked_at IS NOT NULL
			FROM account_tokens WHERE email = ? ORDER BY created_at DESC, id DESC LIMIT 50`, strings.ToLower(req.Email))
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		out := make([]map[string]any, rows.Len())
		for i := range out {
			var id, purpose, user string
			var created, expires int64
			var used, revoked bool
			if err := rows.Scan(i, &id, &purpose, &user, &created, &expires, &used, &revoked); err != nil {
				env.WriteError(w, r, err)
				return
			}
			token, err := mail.Token(r.Context(), env.Platform.Keys, mail.PurposeAccount, id)
			if err != nil {
				env.WriteError(w, r, err)
				return
			}
			out[i] = map[string]any{"id": id, "purpose": purpose, "user_id": user, "token": token, "used": used, "revoked": revoked,
				"created_at": created, "expires_at": expires}
		}
		env.WriteJSON(w, http.StatusOK, map[string]any{"links": out})
	})
	// /__test/account-links/make makes a link for a person directly (no
	// mail, no job), for the cross-tenant matrix, whose subject is who may
	// call the link routes rather than how the links are mailed.
	mux.HandleFunc("POST /__test/account-links/make", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Email   string `json:"email"`
			Purpose string `json:"purpose"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || !strings.Contains(req.Email, "@") ||
			(req.Purpose != "verify_email" && req.Purpose != "password_reset") {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {email, purpose: verify_email|password_reset}"))
			return
		}
		ctx := r.Context()
		var b [16]byte
		rand.Read(b[:])
		id := "atk_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
		token, err := mail.Token(ctx, env.Platform.Keys, mail.PurposeAccount, id)
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		h := sha256.Sum256([]byte(token))
		now := env.Platform.Clock.Now()
		// tenant-lookup: account links belong to people's accounts, which span tenants.
		res, err := env.Platform.SQL.Exec(ctx, `INSERT INTO account_tokens (id, purpose, user_id, email, token_hash, created_at, expires_at)
			SELECT ?, ?, id, email, ?, ?, ? FROM users WHERE email = ?`, id, req.Purpose, h[:], now.UnixMilli(), now.Add(30*time.Minute).UnixMilli(), strings.ToLower(req.Email))
		if err != nil || res.RowsAffected != 1 {
			env.WriteError(w, r, cmp.Or(err, env.Errorf(http.StatusNotFound, "not_found", "no such account")))
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]string{"token": token})
	})
	// /__test/account-links/age moves a person's links back in time by
	// seconds, as if they had been made earlier: the suites that cannot
	// move the home's clock use it to pass the one-a-minute resend gap
	// (tests/native moves the clock itself).
	mux.HandleFunc("POST /__test/account-links/age", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Email   string `json:"email"`
			Seconds int64  `json:"seconds"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || !strings.Contains(req.Email, "@") || req.Seconds <= 0 {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {email, seconds}"))
			return
		}
		// tenant-lookup: account links belong to people's accounts, which span tenants.
		res, err := env.Platform.SQL.Exec(r.Context(), `UPDATE account_tokens SET created_at = created_at - ? WHERE email = ?`, req.Seconds*1000, strings.ToLower(req.Email))
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		env.WriteJSON(w, http.StatusOK, map[string]int64{"aged": res.RowsAffected})
	})
	mux.HandleFunc("POST /__test/mail-log", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			To string `json:"to"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&req); err != nil || !strings.Contains(req.To, "@") {
			env.WriteError(w, r, env.Errorf(http.StatusBadRequest, "invalid", "want {to}"))
			return
		}
		// tenant-lookup: the test build's view of every tenant's mail log, the account tenant's included.
		rows, err := env.Platform.SQL.Query(r.Context(), `SELECT tenant_id, id, template, locale, status FROM mail_log WHERE to_addr = ? ORDER BY created_at DESC, id LIMIT 50`,
			strings.ToLower(req.To))
		if err != nil {
			env.WriteError(w, r, err)
			return
		}
		out := make([]map[string]any, rows.Len())
		for i := range out {
			var tenant, id, template, locale, status string
			if err := rows.Scan(i, &tenant, &id, &template, &locale, &status); err != nil {
				env.WriteError(w, r, err)
				return
			}
			out[i] = map[string]any{"tenant": tenant, "id": id, "template": template, "locale": locale, "status": status}
		}
		env.WriteJSON(w, http.StatusOK, map[string]any{"mails": out})
	})
}
