package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

type stmt = storage.Stmt

func (a *app) batch(ctx context.Context, stmts []stmt) error {
	_, err := a.p.SQL.Batch(ctx, stmts)
	return err
}

const identityBodyLimit = 8 << 10

func normalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" || len(e) > 254 || !utf8.ValidString(e) {
		return "", web.Errorf(http.StatusBadRequest, "invalid_email", "email must be a valid address of at most 254 characters")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Address != e || addr.Name != "" {
		return "", web.Errorf(http.StatusBadRequest, "invalid_email", "email must be a plain address like name@example.com")
	}
	return e, nil
}

func checkName(field, s string, required bool, max int) (string, error) {
	s = strings.TrimSpace(s)
	if (required && s == "") || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		if required {
			return "", web.Errorf(http.StatusBadRequest, "invalid_"+field, "%s must be 1 to %d characters", field, max)
		}
		return "", web.Errorf(http.StatusBadRequest, "invalid_"+field, "%s must be at most %d characters", field, max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", web.Errorf(http.StatusBadRequest, "invalid_"+field, "%s must not contain control characters", field)
		}
	}
	return s, nil
}

type userRow struct {
	id, email, name, hash string
}

func (a *app) userByEmail(ctx context.Context, email string) (*userRow, error) {
	// tenant-lookup: a person's account is global (one email, many tenants); this resolves who is signing in.
	rows, err := a.p.SQL.Query(ctx, `SELECT id, email, name, password_hash FROM users WHERE email = ?`, email)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	u := &userRow{}
	return u, rows.Scan(0, &u.id, &u.email, &u.name, &u.hash)
}

// --- sign-up ---------------------------------------------------------------

type signupRequest struct {
	Organization string `json:"organization"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	Name         string `json:"name"`
}

// signup creates a tenant with the caller as its owner and signs them in.
// An existing person (same email) must give their current password, and
// gets one more tenant.
func (a *app) signup(w http.ResponseWriter, r *http.Request) error {
	var req signupRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	org, err := checkName("organization", req.Organization, true, 100)
	if err != nil {
		return err
	}
	name, err := checkName("name", req.Name, false, 100)
	if err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	ctx := r.Context()
	existing, err := a.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	now := a.now().UnixMilli()
	tenant := web.NewID("t")
	var userID string
	stmts := []stmt{{
		// tenant-lookup: this creates the tenant; its id is the tenant condition.
		Query: `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, Args: []any{tenant, org, now}}}
	if existing != nil {
		// Sign-up with an existing email checks its password exactly as a
		// sign-in does, throttles and all: otherwise it is a way round them.
		if err := a.checkPassword(r, existing, email, req.Password, "",
			web.Errorf(http.StatusConflict, "email_in_use", "an account with this email exists; sign up with its password to add an organization, or sign in")); err != nil {
			return err
		}
		userID = existing.id
	} else {
		hash, err := a.hashNewPassword(ctx, req.Password, email)
		if err != nil {
			return err
		}
		userID = web.NewID("u")
		stmts = append(stmts, stmt{
			// tenant-lookup: a person's account is global; the membership below ties it to the tenant.
			Query: `INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			Args:  []any{userID, email, name, hash, now, now}})
	}
	stmts = append(stmts, stmt{
		Query: `INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) VALUES (?, ?, 'owner', 'active', ?, ?)`,
		Args:  []any{tenant, userID, now, now}})
	if err := a.batch(ctx, stmts); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "email_in_use", "an account with this email was just created; sign in")
		}
		return err
	}
	if err := envelope.New(a.p).Ensure(ctx, tenant); err != nil {
		return err
	}
	if _, err := a.startSession(w, r, tenant, userID); err != nil {
		return err
	}
	if err := web.RecordEvent(r, a.p, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: userID, Action: "tenant.created",
		Target: "tenant:" + tenant, Details: map[string]string{"owner": userID}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"tenant": map[string]any{"id": tenant, "name": org},
		"user":   map[string]any{"id": userID, "email": email, "role": roleOwner},
	})
	return nil
}

// --- login / logout --------------------------------------------------------

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"`
}

type membershipRow struct {
	tenant, name, role string
}

func (a *app) login(w http.ResponseWriter, r *http.Request) error {
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
	u, err := a.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	if err := a.checkPassword(r, u, email, req.Password, req.Tenant,
		web.Errorf(http.StatusUnauthorized, "invalid_credentials", "email or password is wrong")); err != nil {
		return err
	}
	// The person is who they say. Which tenant?
	rows, err := a.p.SQL.Query(ctx, `SELECT m.tenant_id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
		WHERE m.user_id = ? AND m.status = 'active' AND (? = '' OR m.tenant_id = ?) ORDER BY t.name LIMIT 50`, u.id, req.Tenant, req.Tenant)
	if err != nil {
		return err
	}
	var ms []membershipRow
	for i := range rows.Len() {
		var m membershipRow
		if err := rows.Scan(i, &m.tenant, &m.name, &m.role); err != nil {
			return err
		}
		ms = append(ms, m)
	}
	switch {
	case len(ms) == 0:
		return web.Errorf(http.StatusForbidden, "no_membership", "this account has no active membership in that organization")
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
		return nil
	}
	m := ms[0]
	if _, err := a.startSession(w, r, m.tenant, u.id); err != nil {
		return err
	}
	if err := a.recordLogin(r, audit.Event{TenantID: m.tenant, ActorType: audit.ActorUser, ActorID: u.id, Action: audit.ActionLoginSucceeded, Target: "user:" + u.id}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"tenant": map[string]any{"id": m.tenant, "name": m.name},
		"user":   map[string]any{"id": u.id, "email": u.email, "name": u.name, "role": m.role},
	})
	return nil
}

// recordLoginFailure audits a failed login in every tenant the person
// belongs to (or the one they asked for).
func (a *app) recordLoginFailure(r *http.Request, user, tenant, why string) error {
	ctx := r.Context()
	// tenant-lookup: a failed login has no tenant yet; it is recorded in each of the person's tenants.
	rows, err := a.p.SQL.Query(ctx, `SELECT tenant_id FROM memberships WHERE user_id = ? AND (? = '' OR tenant_id = ?) LIMIT 20`, user, tenant, tenant)
	if err != nil {
		return err
	}
	for i := range rows.Len() {
		var t string
		if err := rows.Scan(i, &t); err != nil {
			return err
		}
		if err := a.recordLogin(r, audit.Event{TenantID: t, ActorType: audit.ActorAnonymous, Action: audit.ActionLoginFailed,
			Target: "user:" + user, Details: map[string]string{"reason": why}}); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) logout(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	if _, err := a.p.SQL.Exec(ctx, `UPDATE sessions SET ended_at = ?, ended_reason = 'logout' WHERE tenant_id = ? AND id = ? AND ended_at IS NULL`,
		a.now().UnixMilli(), s.Tenant, s.SessionID); err != nil {
		return err
	}
	clearSessionCookie(w)
	if err := s.Record(r, "auth.logout", "session:"+s.SessionID, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *app) me(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := a.p.SQL.Query(r.Context(), `SELECT u.email, u.name, t.name FROM users u JOIN memberships m ON m.user_id = u.id JOIN tenants t ON t.id = m.tenant_id
		WHERE m.tenant_id = ? AND u.id = ?`, s.Tenant, s.UserID)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return web.Errorf(http.StatusUnauthorized, "invalid_session", "sign in again")
	}
	var email, name, tname string
	if err := rows.Scan(0, &email, &name, &tname); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"user":    map[string]any{"id": s.UserID, "email": email, "name": name, "role": s.Role},
		"tenant":  map[string]any{"id": s.Tenant, "name": tname},
		"session": map[string]any{"id": s.SessionID},
	})
	return nil
}

type passwordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// changePassword ends every other session of the person, in every tenant,
// and gives this one a new token.
func (a *app) changePassword(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req passwordChange
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	rows, err := a.p.SQL.Query(ctx, `SELECT u.email, u.password_hash FROM users u JOIN memberships m ON m.user_id = u.id WHERE m.tenant_id = ? AND u.id = ?`, s.Tenant, s.UserID)
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
	if err := a.throttleCheck(ctx, lt); err != nil {
		return err
	}
	ok, err := a.p.Passwords.Verify(ctx, hash, []byte(req.Current))
	if err != nil {
		return err
	}
	if !ok {
		if err := a.throttleFail(ctx, lt); err != nil {
			return err
		}
		return web.Errorf(http.StatusForbidden, "invalid_credentials", "current password is wrong")
	}
	newHash, err := a.hashNewPassword(ctx, req.New, email)
	if err != nil {
		return err
	}
	now := a.now().UnixMilli()
	rot, setCookie := a.rotateSession(ctx, w, s)
	stmts := append([]stmt{
		// tenant-lookup: a password is the person's, across tenants; the hash it replaces pins the row (no lost update).
		{Query: `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE id = ? AND password_hash = ?`, Args: []any{newHash, now, s.UserID, hash}},
		// tenant-lookup: a password change ends the person's sessions in every tenant.
		{Query: `UPDATE sessions SET ended_at = ?, ended_reason = 'password_changed' WHERE user_id = ? AND id != ? AND ended_at IS NULL`, Args: []any{now, s.UserID, s.SessionID}},
	}, rot...)
	res, err := a.p.SQL.Batch(ctx, stmts)
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

// --- invitations -----------------------------------------------------------

const invitationTTL = 7 * 24 * time.Hour

type invitationRequest struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

func validRole(r string) bool { return r == roleOwner || r == roleAdmin || r == roleAgent }

// mayGrant: only an owner may grant or touch the owner role.
func mayGrant(s *web.Scope, role string) bool {
	return role != roleOwner || (s.KeyID == "" && s.Role == roleOwner)
}

func (a *app) createInvitation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req invitationRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		return err
	}
	if !validRole(req.Role) {
		return web.Errorf(http.StatusBadRequest, "invalid_role", "role must be owner, admin or agent")
	}
	if !mayGrant(s, req.Role) {
		return web.Errorf(http.StatusForbidden, "forbidden", "only an owner may invite an owner")
	}
	ctx := r.Context()
	rows, err := a.p.SQL.Query(ctx, `SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ? AND u.email = ?`, s.Tenant, email)
	if err != nil {
		return err
	}
	if rows.Len() > 0 {
		return web.Errorf(http.StatusConflict, "already_member", "this person is already a member")
	}
	now := a.now()
	id, token := web.NewID("inv"), newToken()
	_, actor := s.Actor()
	if _, err := a.p.SQL.Exec(ctx, `INSERT INTO invitations (tenant_id, id, email, role, token_hash, invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Tenant, id, email, req.Role, tokenHash(token), actor, now.UnixMilli(), now.Add(invitationTTL).UnixMilli()); err != nil {
		return err
	}
	if err := s.Record(r, "member.invited", "invitation:"+id, map[string]string{"email": email, "role": req.Role}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"id": id, "email": email, "role": req.Role, "expires_at": now.Add(invitationTTL).UTC().Format(time.RFC3339),
		"token": token, // shown once; deliver it to the invitee (email delivery is not built yet)
	})
	return nil
}

func (a *app) listInvitations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := a.p.SQL.Query(r.Context(), `SELECT id, email, role, created_at, expires_at FROM invitations
		WHERE tenant_id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 200`,
		s.Tenant, a.now().UnixMilli())
	if err != nil {
		return err
	}
	out := make([]map[string]any, rows.Len())
	for i := range out {
		var id, email, role string
		var created, expires int64
		if err := rows.Scan(i, &id, &email, &role, &created, &expires); err != nil {
			return err
		}
		out[i] = map[string]any{"id": id, "email": email, "role": role, "created_at": web.Millis(created), "expires_at": web.Millis(expires)}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"invitations": out})
	return nil
}

func (a *app) revokeInvitation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("inv", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such invitation")
	}
	res, err := a.p.SQL.Exec(r.Context(), `UPDATE invitations SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
		a.now().UnixMilli(), s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such pending invitation")
	}
	if err := s.Record(r, "member.invitation.revoked", "invitation:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type acceptRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// acceptInvitation joins the invitee to the tenant (creating their account
// if the email has none; otherwise their current password is required) and
// signs them in. One batch, every statement conditional on the invitation
// still being open, so a token is used at most once.
func (a *app) acceptInvitation(w http.ResponseWriter, r *http.Request) error {
	var req acceptRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	invalid := web.Errorf(http.StatusBadRequest, "invalid_invitation", "the invitation is unknown, used, revoked or expired")
	if !validToken(req.Token) {
		return invalid
	}
	name, err := checkName("name", req.Name, false, 100)
	if err != nil {
		return err
	}
	ctx := r.Context()
	th := tokenHash(req.Token)
	now := a.now().UnixMilli()
	// tenant-lookup: the invitation token is the credential that names the tenant.
	rows, err := a.p.SQL.Query(ctx, `SELECT tenant_id, id, email, role FROM invitations WHERE token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`, th, now)
	if err != nil {
		return err
	}
	if rows.Len() != 1 {
		return invalid
	}
	var tenant, invID, email, role string
	if err := rows.Scan(0, &tenant, &invID, &email, &role); err != nil {
		return err
	}
	u, err := a.userByEmail(ctx, email)
	if err != nil {
		return err
	}
	open := `SELECT 1 FROM invitations WHERE tenant_id = ? AND token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`
	openArgs := []any{tenant, th, now}
	var stmts []stmt
	var userID string
	if u != nil {
		if err := a.checkPassword(r, u, email, req.Password, "",
			web.Errorf(http.StatusUnauthorized, "invalid_credentials", "an account with this email exists; give its password to accept")); err != nil {
			return err
		}
		userID = u.id
	} else {
		hash, err := a.hashNewPassword(ctx, req.Password, email)
		if err != nil {
			return err
		}
		userID = web.NewID("u")
		stmts = append(stmts, stmt{
			// tenant-lookup: a person's account is global; it is created only while the tenant's invitation is open.
			Query: `INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (` + open + `)`,
			Args:  append([]any{userID, email, name, hash, now, now}, openArgs...)})
	}
	stmts = append(stmts,
		stmt{Query: `INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) SELECT ?, ?, ?, 'active', ?, ? WHERE EXISTS (` + open + `) ON CONFLICT (tenant_id, user_id) DO NOTHING`,
			Args: append([]any{tenant, userID, role, now, now}, openArgs...)},
		stmt{Query: `UPDATE invitations SET accepted_at = ? WHERE tenant_id = ? AND token_hash = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
			Args: []any{now, tenant, th, now}},
	)
	res, err := a.p.SQL.Batch(ctx, stmts)
	if err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "email_in_use", "an account with this email was just created; accept again with its password")
		}
		return err
	}
	if res[len(res)-1].RowsAffected != 1 {
		return invalid
	}
	if res[len(res)-2].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "already_member", "you are already a member of this organization")
	}
	if _, err := a.startSession(w, r, tenant, userID); err != nil {
		return err
	}
	if err := web.RecordEvent(r, a.p, audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: userID, Action: "member.joined",
		Target: "user:" + userID, Details: map[string]string{"role": role, "invitation": invID}}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"tenant": map[string]any{"id": tenant},
		"user":   map[string]any{"id": userID, "email": email, "role": role},
	})
	return nil
}
