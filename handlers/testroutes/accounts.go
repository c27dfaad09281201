package testroutes

import (
	"encoding/json"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers"
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
