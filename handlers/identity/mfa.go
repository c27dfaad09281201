package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"pommy.ai/edge/handlers/web"
)

// Second factors at sign-in: a person with a confirmed TOTP authenticator
// or a WebAuthn credential who gives the right password gets no session
// but a challenge (auth_challenges, kind 'mfa', challenges.go) bound to
// them and the tenant they chose, which one right second factor turns into
// the session.

// secondFactors lists the second factors a person can answer a challenge
// with; empty when they have none (a password alone signs them in).
func (svc *Service) secondFactors(ctx context.Context, user string) ([]string, error) {
	var methods []string
	hasTOTP, err := svc.totpConfirmed(ctx, user)
	if err != nil {
		return nil, err
	}
	if hasTOTP {
		methods = append(methods, methodTOTP)
	}
	n, err := svc.webauthnCount(ctx, user)
	if err != nil {
		return nil, err
	}
	if len(methods) == 0 && n == 0 {
		return nil, nil
	}
	methods = append(methods, methodRecoveryCode)
	if n > 0 {
		methods = append(methods, methodWebAuthn)
	}
	return methods, nil
}

// mfaChallengeData is an 'mfa' challenge's data: the methods offered and,
// once the client asked for WebAuthn options, the WebAuthn session data
// (its challenge) under "webauthn".
type mfaChallengeData struct {
	Methods  []string        `json:"methods"`
	WebAuthn json.RawMessage `json:"webauthn,omitempty"`
}

// webauthnSession is the WebAuthn session data a challenge holds under
// "webauthn" (nil when none was asked for).
func (c *challenge) webauthnSession() json.RawMessage {
	var d mfaChallengeData
	if json.Unmarshal(c.Data, &d) != nil {
		return nil
	}
	return d.WebAuthn
}

// askSecondFactor answers a right password of a person who has a second
// factor: 401 mfa_required with the challenge's token, and no session.
func (svc *Service) askSecondFactor(w http.ResponseWriter, r *http.Request, u *userRow, tenant string, methods []string) error {
	token, err := svc.newChallenge(r.Context(), "mfa", u.id, tenant, mfaChallengeData{Methods: methods}, mfaChallengeTTL)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusUnauthorized, map[string]any{
		"error":      &web.Error{Code: "mfa_required", Message: "the password is right; now give a code from your authenticator app, a recovery code or a passkey"},
		"mfa_token":  token,
		"methods":    methods,
		"expires_at": web.Millis(svc.now().Add(mfaChallengeTTL).UnixMilli()),
	})
	return nil
}

// factorAnswer is a second factor given at sign-in or at step-up: exactly
// one of a TOTP code, a recovery code or a WebAuthn assertion.
type factorAnswer struct {
	Code         string          `json:"code"`
	RecoveryCode string          `json:"recovery_code"`
	WebAuthn     json.RawMessage `json:"webauthn"`
}

// method says which factor the answer gives, or refuses an answer with
// none or several.
func (a factorAnswer) method(password bool) (string, error) {
	var given []string
	if password {
		given = append(given, methodPassword)
	}
	if a.Code != "" {
		given = append(given, methodTOTP)
	}
	if a.RecoveryCode != "" {
		given = append(given, methodRecoveryCode)
	}
	if len(a.WebAuthn) > 0 && string(a.WebAuthn) != "null" {
		given = append(given, methodWebAuthn)
	}
	if len(given) != 1 {
		return "", web.Errorf(http.StatusBadRequest, "invalid_answer", "send exactly one of code, recovery_code or webauthn")
	}
	return given[0], nil
}

type loginMFARequest struct {
	MFAToken string `json:"mfa_token"`
	factorAnswer
}

// errWrongFactor is the answer to a wrong second factor.
var errWrongFactor = web.Errorf(http.StatusUnauthorized, "wrong_second_factor", "that code is not right")

// LoginMFA finishes a sign-in with the second factor: the challenge's
// person and tenant, never anything the request names.
func (svc *Service) LoginMFA(w http.ResponseWriter, r *http.Request) error {
	var req loginMFARequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	method, err := req.method(false)
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := svc.loadChallenge(ctx, req.MFAToken, "mfa")
	if err != nil {
		return err
	}
	u, err := svc.userByID(ctx, c.UserID)
	if err != nil {
		return err
	}
	proof, err := svc.proveFactor(r, u.id, method, req.factorAnswer, c.webauthnSession())
	if err != nil {
		return err
	}
	if proof == nil {
		if err := svc.recordFactor(r, c.Tenant, u.id, "auth.mfa.failed", method); err != nil {
			return err
		}
		return svc.failChallenge(ctx, c, errWrongFactor)
	}
	use, err := svc.useChallenge(ctx, c)
	if err != nil {
		return err
	}
	if err := svc.finishSignIn(w, r, u, c.Tenant, []string{methodPassword, method}, append([]stmt{use}, proof...)...); err != nil {
		return err
	}
	if err := svc.throttleSuccess(ctx, mfaThrottle(u.id)); err != nil {
		return err
	}
	return svc.afterFactor(r, c.Tenant, u.id, "auth.mfa.succeeded", method)
}

// afterFactor audits a right second factor; a recovery code used is also
// its own event (the person has one fewer).
func (svc *Service) afterFactor(r *http.Request, tenant, user, action, method string) error {
	if err := svc.recordFactor(r, tenant, user, action, method); err != nil {
		return err
	}
	if method == methodRecoveryCode {
		return svc.recordFactor(r, tenant, user, "auth.recovery_code.used", method)
	}
	return nil
}

func (svc *Service) recordFactor(r *http.Request, tenant, user, action, method string) error {
	if tenant == "" {
		return nil
	}
	return web.RecordEvent(r, svc.p, auditEvent(tenant, user, action, map[string]string{"method": method}))
}

// proveFactor checks a second factor of user (under the account's
// second-factor throttle) and returns the conditional statements that
// spend it (the TOTP step, the recovery code, the passkey's counter), for
// the batch that grants what it proves; nil when it is wrong (counted).
// A malformed answer is a 400 and counts nothing.
func (svc *Service) proveFactor(r *http.Request, user, method string, a factorAnswer, webauthnSession json.RawMessage) ([]stmt, error) {
	ctx := r.Context()
	var check func() ([]stmt, error)
	switch method {
	case methodTOTP:
		code, err := normalizeTOTPCode(a.Code)
		if err != nil {
			return nil, err
		}
		check = func() ([]stmt, error) { return svc.totpProof(ctx, user, code) }
	case methodRecoveryCode:
		code, err := normalizeRecoveryCode(a.RecoveryCode)
		if err != nil {
			return nil, err
		}
		check = func() ([]stmt, error) { return svc.recoveryCodeProof(ctx, user, code) }
	case methodWebAuthn:
		if webauthnSession == nil {
			return nil, web.Errorf(http.StatusBadRequest, "webauthn_not_started", "ask for the passkey options first")
		}
		check = func() ([]stmt, error) {
			return svc.webauthnVerify(ctx, r, user, webauthnSession, a.WebAuthn)
		}
	default:
		return nil, web.Errorf(http.StatusBadRequest, "invalid_answer", "send exactly one of code, recovery_code or webauthn")
	}
	lt := mfaThrottle(user)
	if err := svc.throttleCheck(ctx, lt); err != nil {
		return nil, err
	}
	proof, err := check()
	if err != nil {
		return nil, err
	}
	if proof == nil {
		if err := svc.throttleFail(ctx, lt); err != nil {
			return nil, err
		}
	}
	return proof, nil
}

// totpProof checks a code against the person's confirmed authenticator;
// the statement raises last_step to the code's step, on the condition that
// no code of that step or later was accepted meanwhile.
func (svc *Service) totpProof(ctx context.Context, user, code string) ([]stmt, error) {
	t, err := svc.userTOTP(ctx, user)
	if err != nil || t == nil || !t.confirmed {
		return nil, err
	}
	step, err := totpMatch(t.secret, code, svc.now(), t.lastStep)
	if err != nil || step == 0 {
		return nil, err
	}
	return []stmt{{
		// tenant-lookup: a second factor is the person's, across tenants.
		Query: `UPDATE mfa_totp SET last_step = ? WHERE user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?`,
		Args:  []any{step, user, step},
	}}, nil
}

// userByID is a person's account.
func (svc *Service) userByID(ctx context.Context, id string) (*userRow, error) {
	// tenant-lookup: a person's account is global; id comes from a session or a challenge that named it.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, email, name, password_hash FROM users WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, errInvalidChallenge
	}
	u := &userRow{}
	return u, rows.Scan(0, &u.id, &u.email, &u.name, &u.hash)
}

// sessionProvedStmt records on the session that it has just proved method:
// reauth_at moves to now, and the method joins auth_methods if new.
func (svc *Service) sessionProvedStmt(s *web.Scope, method string, now int64) stmt {
	methods := s.AuthMethods
	if method != methodPassword && !slices.Contains(methods, method) {
		methods = append(slices.Clone(methods), method)
	}
	return stmt{
		Query: `UPDATE sessions SET reauth_at = ?, auth_methods = ? WHERE tenant_id = ? AND id = ? AND ended_at IS NULL`,
		Args:  []any{now, strings.Join(methods, " "), s.Tenant, s.SessionID},
	}
}

type reauthRequest struct {
	Password string `json:"password"`
	factorAnswer
}

// Reauth is step-up: the session proves again a password or a second
// factor (throttled like a sign-in), and may then take dangerous actions
// for identity.StepUpWindow.
func (svc *Service) Reauth(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req reauthRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	method, err := req.method(req.Password != "")
	if err != nil {
		return web.Errorf(http.StatusBadRequest, "invalid_answer", "send exactly one of password, code, recovery_code or webauthn")
	}
	ctx := r.Context()
	u, err := svc.userByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	var proof []stmt
	var reauthChallenge *challenge
	switch method {
	case methodPassword:
		if len(req.Password) > 4*maxPasswordLen {
			return web.Errorf(http.StatusBadRequest, "invalid_password", "password is at most %d characters", maxPasswordLen)
		}
		if err := svc.checkPassword(r, u, u.email, req.Password, s.Tenant,
			web.Errorf(http.StatusForbidden, "invalid_credentials", "the password is wrong")); err != nil {
			return err
		}
	default:
		var session json.RawMessage
		if method == methodWebAuthn {
			if reauthChallenge, err = svc.openReauthChallenge(ctx, s.UserID); err != nil {
				return err
			}
			if reauthChallenge != nil {
				session = reauthChallenge.webauthnSession()
			}
		}
		if proof, err = svc.proveFactor(r, s.UserID, method, req.factorAnswer, session); err != nil {
			return err
		}
		if proof == nil {
			if err := s.Record(r, "auth.reauth.failed", "user:"+s.UserID, map[string]string{"method": method}); err != nil {
				return err
			}
			if reauthChallenge != nil {
				return svc.failChallenge(ctx, reauthChallenge, web.Errorf(http.StatusForbidden, "wrong_second_factor", "that is not right"))
			}
			return web.Errorf(http.StatusForbidden, "wrong_second_factor", "that code is not right")
		}
		if reauthChallenge != nil {
			use, err := svc.useChallenge(ctx, reauthChallenge)
			if err != nil {
				return err
			}
			proof = append(proof, use)
		}
	}
	now := svc.now().UnixMilli()
	proof = append(proof, svc.sessionProvedStmt(s, method, now))
	ok, err := svc.runGuarded(ctx, proof)
	if err != nil {
		return err
	}
	if !ok {
		return web.Errorf(http.StatusConflict, "conflict", "that was just used, or the session ended; try again")
	}
	if method != methodPassword {
		if err := svc.throttleSuccess(ctx, mfaThrottle(s.UserID)); err != nil {
			return err
		}
	}
	if err := s.Record(r, "auth.reauth", "session:"+s.SessionID, map[string]string{"method": method}); err != nil {
		return err
	}
	if method == methodRecoveryCode {
		if err := s.Record(r, "auth.recovery_code.used", "user:"+s.UserID, nil); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reauthChallengeTTL is how long WebAuthn options for a step-up stay good.
const reauthChallengeTTL = 5 * time.Minute

// openReauthChallenge is the person's latest open 'reauth' challenge (the
// WebAuthn options asked for by POST /v1/me/reauth/webauthn), or nil.
func (svc *Service) openReauthChallenge(ctx context.Context, user string) (*challenge, error) {
	// tenant-lookup: a step-up challenge is the person's; it is found by their id, from the session.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, data, attempts, expires_at FROM auth_challenges
		WHERE kind = 'reauth' AND user_id = ? AND used_at IS NULL AND attempts < ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1`,
		user, maxChallengeAttempts, svc.now().UnixMilli())
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	c := &challenge{Kind: "reauth", UserID: user}
	var data string
	var expires int64
	if err := rows.Scan(0, &c.ID, &data, &c.Attempts, &expires); err != nil {
		return nil, err
	}
	c.Data, c.ExpiresAt = json.RawMessage(data), time.UnixMilli(expires).UTC()
	return c, nil
}

// mfaSummary is what GET /v1/me shows of the person's second factors.
func (svc *Service) mfaSummary(ctx context.Context, user string) (map[string]any, error) {
	hasTOTP, err := svc.totpConfirmed(ctx, user)
	if err != nil {
		return nil, err
	}
	passkeys, err := svc.webauthnCount(ctx, user)
	if err != nil {
		return nil, err
	}
	left, err := svc.recoveryCodesLeft(ctx, user)
	if err != nil {
		return nil, err
	}
	return map[string]any{"totp": hasTOTP, "passkeys": passkeys, "recovery_codes_left": left}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
