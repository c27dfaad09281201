package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

type signupRequest struct {
	Organization string `json:"organization"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	Name         string `json:"name"`
	// Locale is the language of the mail the person gets: "en" (the
	// default) or "tr". An existing person keeps theirs.
	Locale string `json:"locale"`
}

// Signup creates a tenant with the caller as its owner and signs them in.
// An existing person (same email) must give their current password, and
// gets one more tenant.
func (svc *Service) Signup(w http.ResponseWriter, r *http.Request) error {
	var req signupRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	org, err := web.CheckName("organization", req.Organization, true, 100)
	if err != nil {
		return err
	}
	name, err := web.CheckName("name", req.Name, false, 100)
	if err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	locale, err := checkLocale(req.Locale)
	if err != nil {
		return err
	}
	ctx := r.Context()
	existing, err := svc.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	tenant := web.NewID("t")
	stmts := []stmt{{
		// tenant-lookup: this creates the tenant; its id is the tenant condition.
		Query: `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, Args: []any{tenant, org, now}}}
	userID, hash, err := svc.account(r, existing, email, req.Password,
		web.Errorf(http.StatusConflict, "email_in_use", "an account with this email exists; sign up with its password to add an organization, or sign in"))
	if err != nil {
		return err
	}
	verified := false
	if hash != "" {
		stmts = append(stmts, stmt{
			// tenant-lookup: a person's account is global; the membership below ties it to the tenant.
			Query: `INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at, locale) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			Args:  []any{userID, email, name, hash, now, now, locale}})
		// A new account proves its address by the link mailed now.
		origin, err := svc.linkOrigin(r)
		if err != nil {
			return err
		}
		_, verify, err := svc.verificationStmts(ctx, origin, userID, email, locale)
		if err != nil {
			return err
		}
		stmts = append(stmts, verify...)
	} else {
		// An existing person adding an organization keeps their state.
		a, err := svc.accountByID(ctx, userID)
		if err != nil {
			return err
		}
		if a != nil {
			verified, locale = a.verified, a.locale
		}
	}
	stmts = append(stmts, stmt{
		Query: `INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) VALUES (?, ?, 'owner', 'active', ?, ?)`,
		Args:  []any{tenant, userID, now, now}})
	if err := svc.batch(ctx, stmts); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "email_in_use", "an account with this email was just created; sign in")
		}
		return err
	}
	if err := envelope.New(svc.p).Ensure(ctx, tenant); err != nil {
		return err
	}
	body := map[string]any{
		"tenant": map[string]any{"id": tenant, "name": org},
		"user":   map[string]any{"id": userID, "email": email, "role": web.RoleOwner, "email_verified": verified, "locale": locale},
	}
	if err := svc.startSessionOrChallenge(w, r, tenant, userID, existing != nil, body); err != nil {
		return err
	}
	if err := web.RecordEvent(r, svc.p, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: userID, Action: "tenant.created",
		Target: "tenant:" + tenant, Details: map[string]string{"owner": userID}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, body)
	return nil
}

// startSessionOrChallenge signs in the person who has just signed up or
// accepted an invitation with their password. An existing account with a
// second factor is not signed in by its password alone, here any more
// than at POST /v1/login (else a password would open a session that could
// remove the factor, its step-up satisfied by that very sign-in): body
// gets "mfa_required": true and a challenge for the new membership
// ("mfa_token", "methods", "expires_at") that POST /v1/login/mfa turns
// into the session.
func (svc *Service) startSessionOrChallenge(w http.ResponseWriter, r *http.Request, tenant, user string, existing bool, body map[string]any) error {
	ctx := r.Context()
	if existing {
		methods, err := svc.secondFactors(ctx, user)
		if err != nil {
			return err
		}
		if len(methods) > 0 {
			token, err := svc.newChallenge(ctx, "mfa", user, tenant, mfaChallengeData{Methods: methods}, mfaChallengeTTL)
			if err != nil {
				return err
			}
			body["mfa_required"], body["mfa_token"], body["methods"] = true, token, methods
			body["expires_at"] = web.Millis(svc.now().Add(mfaChallengeTTL).UnixMilli())
			return nil
		}
	}
	_, err := svc.startSession(w, r, tenant, user, []string{methodPassword})
	return err
}

// account is the person signing up or accepting an invitation: an
// existing account u, whose password is checked exactly as a sign-in
// checks it, throttles and all (otherwise this would be a way round them),
// with wrong as the answer to a wrong one; or, when u is nil, a new
// account's id and the hash of the password it chose, for the caller to
// insert with its own conditions.
func (svc *Service) account(r *http.Request, u *userRow, email, password string, wrong error) (userID, newHash string, err error) {
	if u != nil {
		return u.id, "", svc.checkPassword(r, u, email, password, "", wrong)
	}
	hash, err := svc.hashNewPassword(r.Context(), password, email)
	if err != nil {
		return "", "", err
	}
	return web.NewID("u"), hash, nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"`
}

func (svc *Service) Login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	if req.Password == "" || len(req.Password) > 4*maxPasswordLen {
		return web.Errorf(http.StatusBadRequest, "invalid_password", "password is required (at most %d characters)", maxPasswordLen)
	}
	if req.Tenant != "" && !web.ValidID("t", req.Tenant) {
		return web.Errorf(http.StatusBadRequest, "invalid_tenant", "tenant must be a tenant id (t_…)")
	}
	ctx := r.Context()
	u, err := svc.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	if err := svc.checkPassword(r, u, email, req.Password, req.Tenant,
		web.Errorf(http.StatusUnauthorized, "invalid_credentials", "email or password is wrong")); err != nil {
		return err
	}
	// The person is who they say. Which tenant?
	ms, err := svc.memberships(ctx, u.id, req.Tenant)
	if err != nil {
		return err
	}
	m, done, err := pickMembership(w, ms)
	if done || err != nil {
		return err
	}
	// A second factor, when the person has one, before any session.
	methods, err := svc.secondFactors(ctx, u.id)
	if err != nil {
		return err
	}
	if len(methods) > 0 {
		return svc.askSecondFactor(w, r, u, m.tenant, methods)
	}
	return svc.finishSignIn(w, r, u, m.tenant, []string{methodPassword})
}

// membershipRow is one of a person's active memberships, with the
// tenant's MFA policy.
type membershipRow struct {
	tenant, name, role, mfaPolicy string
}

// memberships lists a person's active memberships (only tenant's when
// tenant is not "").
func (svc *Service) memberships(ctx context.Context, user, tenant string) ([]membershipRow, error) {
	rows, err := svc.p.SQL.Query(ctx, `SELECT m.tenant_id, t.name, m.role, t.mfa_required FROM memberships m JOIN tenants t ON t.id = m.tenant_id
		WHERE m.user_id = ? AND m.status = 'active' AND (? = '' OR m.tenant_id = ?) ORDER BY t.name LIMIT 50`, user, tenant, tenant)
	if err != nil {
		return nil, err
	}
	ms := make([]membershipRow, rows.Len())
	for i := range ms {
		if err := rows.Scan(i, &ms[i].tenant, &ms[i].name, &ms[i].role, &ms[i].mfaPolicy); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// pickMembership is the one membership a sign-in is for. With none it is
// 403 no_membership; with several (and no tenant asked for) it writes 409
// tenant_required listing them and reports done.
func pickMembership(w http.ResponseWriter, ms []membershipRow) (m membershipRow, done bool, err error) {
	switch {
	case len(ms) == 0:
		return m, false, web.Errorf(http.StatusForbidden, "no_membership", "this account has no active membership in that organization")
	case len(ms) > 1:
		list := make([]map[string]string, len(ms))
		for i, m := range ms {
			list[i] = map[string]string{"id": m.tenant, "name": m.name}
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		web.WriteJSON(w, http.StatusConflict, map[string]any{
			"error":   &web.Error{Code: "tenant_required", Message: "this account belongs to several organizations; send tenant"},
			"tenants": list,
		})
		return m, true, nil
	}
	return ms[0], false, nil
}

// finishSignIn completes a sign-in (password, password and a second
// factor, or a passkey): it picks the membership (tenant "" means the
// person's only one), runs extra (the conditional statements that make the
// sign-in count: the challenge used, the TOTP step, the recovery code
// taken, the passkey's sign count), and only when every one of them
// changed a row starts the session with methods, audits the sign-in and
// writes the 200 body. A lost race (the challenge used meanwhile) is 401
// invalid_challenge and grants nothing.
func (svc *Service) finishSignIn(w http.ResponseWriter, r *http.Request, u *userRow, tenant string, methods []string, extra ...stmt) error {
	ctx := r.Context()
	ms, err := svc.memberships(ctx, u.id, tenant)
	if err != nil {
		return err
	}
	m, done, err := pickMembership(w, ms)
	if done || err != nil {
		return err
	}
	ok, err := svc.runGuarded(ctx, extra)
	if err != nil {
		return err
	}
	if !ok {
		return errInvalidChallenge
	}
	if _, err := svc.startSession(w, r, m.tenant, u.id, methods); err != nil {
		return err
	}
	if err := svc.recordLogin(r, audit.Event{TenantID: m.tenant, ActorType: audit.ActorUser, ActorID: u.id, Action: audit.ActionLoginSucceeded, Target: "user:" + u.id,
		Details: map[string]string{"methods": strings.Join(methods, " ")}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"tenant":                 map[string]any{"id": m.tenant, "name": m.name},
		"user":                   map[string]any{"id": u.id, "email": u.email, "name": u.name, "role": m.role},
		"auth_methods":           methods,
		"mfa_enrolment_required": MFARequired(m.mfaPolicy, m.role) && !HasSecondFactor(methods),
	})
	return nil
}

// recordLoginFailure audits a failed login in every tenant the person
// belongs to (or the one they asked for).
func (svc *Service) recordLoginFailure(r *http.Request, user, tenant, why string) error {
	ctx := r.Context()
	// tenant-lookup: a failed login has no tenant yet; it is recorded in each of the person's tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT tenant_id FROM memberships WHERE user_id = ? AND (? = '' OR tenant_id = ?) LIMIT 20`, user, tenant, tenant)
	if err != nil {
		return err
	}
	for i := range rows.Len() {
		var t string
		if err := rows.Scan(i, &t); err != nil {
			return err
		}
		if err := svc.recordLogin(r, audit.Event{TenantID: t, ActorType: audit.ActorAnonymous, Action: audit.ActionLoginFailed,
			Target: "user:" + user, Details: map[string]string{"reason": why}}); err != nil {
			return err
		}
	}
	return nil
}

func (svc *Service) Logout(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	if _, err := svc.p.SQL.Exec(ctx, `UPDATE sessions SET ended_at = ?, ended_reason = 'logout' WHERE tenant_id = ? AND id = ? AND ended_at IS NULL`,
		svc.now().UnixMilli(), s.Tenant, s.SessionID); err != nil {
		return err
	}
	ClearSessionCookie(w)
	if err := s.Record(r, "auth.logout", "session:"+s.SessionID, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (svc *Service) Me(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT u.email, u.name, t.name, u.locale FROM users u JOIN memberships m ON m.user_id = u.id JOIN tenants t ON t.id = m.tenant_id
		WHERE m.tenant_id = ? AND u.id = ?`, s.Tenant, s.UserID)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	var email, name, tname, locale string
	if err := rows.Scan(0, &email, &name, &tname, &locale); err != nil {
		return err
	}
	mfa, err := svc.mfaSummary(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"user": map[string]any{"id": s.UserID, "email": email, "name": name, "role": s.Role,
			"email_verified": s.EmailVerified, "locale": locale},
		"tenant": map[string]any{"id": s.Tenant, "name": tname},
		"session": map[string]any{"id": s.SessionID, "auth_methods": nonNil(s.AuthMethods),
			"reauth_at": web.Millis(s.ReauthAt.UnixMilli())},
		"mfa":                    mfa,
		"mfa_enrolment_required": s.MFAMissing,
	})
	return nil
}

type passwordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// ChangePassword ends every other session of the person, in every tenant,
// and gives this one a new token.
func (svc *Service) ChangePassword(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req passwordChange
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	rows, err := svc.p.SQL.Query(ctx, `SELECT u.email, u.password_hash FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.tenant_id = ? AND u.id = ?`, s.Tenant, s.UserID)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	var email, hash string
	if err := rows.Scan(0, &email, &hash); err != nil {
		return err
	}
	lt := loginThrottle{email: email, ip: web.ClientIP(r), knownIP: true}
	if err := svc.throttleCheck(ctx, lt); err != nil {
		return err
	}
	ok, err := svc.p.Passwords.Verify(ctx, hash, []byte(req.Current))
	if err != nil {
		return err
	}
	if !ok {
		if err := svc.throttleFail(ctx, lt); err != nil {
			return err
		}
		return web.Errorf(http.StatusForbidden, "invalid_credentials", "current password is wrong")
	}
	newHash, err := svc.hashNewPassword(ctx, req.New, email)
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	a, err := svc.accountByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	if a == nil {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	// The person is told by mail, so a change they did not make does not go unseen.
	notice, err := svc.accountMail("", fmt.Sprintf("password_changed:%s:%d", s.UserID, now), email, a.locale,
		mail.TemplatePasswordChanged, nil, "", "")
	if err != nil {
		return err
	}
	rot, setCookie := svc.rotateSession(ctx, w, s)
	stmts := append([]stmt{
		// tenant-lookup: a password is the person's, across tenants; the hash it replaces pins the row (no lost update).
		{Query: `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ? AND password_hash = ?`, Args: []any{newHash, now, s.UserID, hash}},
		// tenant-lookup: a password change ends the person's sessions in every tenant.
		{Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'password_changed' WHERE user_id = ? AND id != ? AND ended_at IS NULL`, Args: []any{now, s.UserID, s.SessionID}},
	}, rot...)
	stmts = append(stmts, notice...)
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "conflict", "the password changed meanwhile; sign in again")
	}
	setCookie()
	if err := s.Record(r, "user.password.changed", "user:"+s.UserID, map[string]string{"other_sessions_ended": "true"}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// recordLogin records a login success or failure and runs the audit
// package's anomaly detection on it (bursts of failures; a new IP or
// country for the person).
func (svc *Service) recordLogin(r *http.Request, e audit.Event) error {
	e.IP, e.UserAgent = web.ClientIP(r), web.UserAgent(r)
	e.RequestID = web.RequestID(r)
	if c := web.ClientCountry(r); c != "" {
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details["country"] = c
	}
	_, err := web.AuditLog(svc.p).RecordLogin(r.Context(), e)
	return err
}
