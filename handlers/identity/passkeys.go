//go:build !nopasskeys

package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Passkeys (WebAuthn credentials, webauthn.go): enrolled by a signed-in
// person, used as the second factor after a password, as a passwordless
// sign-in, and for step-up. A credential belongs to the person's account,
// across their tenants, like their password.

// maxPasskeys bounds a person's credentials: the registration options list
// them all (excludeCredentials), so do the assertion options.
const maxPasskeys = 20

// maxPasskeyName bounds a passkey's label, in characters.
const maxPasskeyName = 64

// credentialRow is one webauthn_credentials row.
type credentialRow struct {
	id, user, name string
	credID         []byte
	rec            storedCredential
	signCount      int64
	backedUp       bool
	created        int64
	lastUsed       *int64
}

const credentialColumns = `id, user_id, name, credential_id, credential, sign_count, backed_up, created_at, last_used_at`

func scanCredentials(rows *storage.Rows) ([]credentialRow, error) {
	out := make([]credentialRow, rows.Len())
	for i := range out {
		c := &out[i]
		var rec string
		if err := rows.Scan(i, &c.id, &c.user, &c.name, &c.credID, &rec, &c.signCount, &c.backedUp, &c.created, &c.lastUsed); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(rec), &c.rec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// userCredentials are a person's passkeys, oldest first.
func (svc *Service) userCredentials(ctx context.Context, user string) ([]credentialRow, error) {
	// tenant-lookup: a passkey is the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT `+credentialColumns+` FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id LIMIT ?`, user, maxPasskeys+1)
	if err != nil {
		return nil, err
	}
	return scanCredentials(rows)
}

// credentialByID is the passkey with that credential id, or nil.
func (svc *Service) credentialByID(ctx context.Context, credID []byte) (*credentialRow, error) {
	// tenant-lookup: a passkey is the person's, across tenants; the credential id names it (a passwordless sign-in knows no one yet).
	rows, err := svc.p.SQL.Query(ctx, `SELECT `+credentialColumns+` FROM webauthn_credentials WHERE credential_id = ?`, credID)
	if err != nil {
		return nil, err
	}
	cs, err := scanCredentials(rows)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return &cs[0], nil
}

func descriptors(cs []credentialRow) []credentialDescriptor {
	out := make([]credentialDescriptor, len(cs))
	for i, c := range cs {
		out[i] = credentialDescriptor{Type: "public-key", ID: base64.RawURLEncoding.EncodeToString(c.credID), Transports: c.rec.Transports}
	}
	return out
}

// webauthnCount is how many passkeys the person has.
func (svc *Service) webauthnCount(ctx context.Context, user string) (int, error) {
	// tenant-lookup: a passkey is the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?`, user)
	if err != nil {
		return 0, err
	}
	var n int
	return n, rows.Scan(0, &n)
}

// webauthnOptions are the assertion options for a person's own passkeys
// (a second factor, a step-up) and the session data that checks the
// answer (webauthnVerify). 409 no_passkeys when they have none.
func (svc *Service) webauthnOptions(ctx context.Context, r *http.Request, user string) (json.RawMessage, json.RawMessage, error) {
	rp, err := svc.relyingParty(r)
	if err != nil {
		return nil, nil, err
	}
	cs, err := svc.userCredentials(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	if len(cs) == 0 {
		return nil, nil, web.Errorf(http.StatusConflict, "no_passkeys", "this account has no passkey")
	}
	s := webauthnSession{Challenge: newWebAuthnChallenge(), RPID: rp.ID, Origins: rp.Origins, User: user}
	ds := descriptors(cs)
	for _, d := range ds {
		s.Allowed = append(s.Allowed, d.ID)
	}
	session, err := json.Marshal(s)
	if err != nil {
		return nil, nil, err
	}
	return requestOptions(rp, s.Challenge, ds, "preferred"), session, nil
}

// webauthnVerify checks a person's answer to webauthnOptions. It returns
// the conditional statement that moves the passkey's sign count and last
// use (it changes no row when a concurrent use of the same counter value
// won), or nil when the answer is wrong (not theirs, not this ceremony's,
// a bad signature, a counter that went back: a cloned authenticator, which
// is also audited). A malformed answer is a 400.
func (svc *Service) webauthnVerify(ctx context.Context, r *http.Request, user string, session, credential json.RawMessage) ([]stmt, error) {
	var s webauthnSession
	if err := json.Unmarshal(session, &s); err != nil || s.Challenge == "" {
		return nil, web.Errorf(http.StatusBadRequest, "webauthn_not_started", "ask for the passkey options first")
	}
	c, id, err := parseAssertion(credential)
	if err != nil {
		return nil, err
	}
	if s.User != user {
		return nil, nil
	}
	row, err := svc.credentialByID(ctx, id)
	if err != nil || row == nil || row.user != user {
		return nil, err
	}
	a, err := verifyAssertion(c, id, &s, row.rec)
	if err != nil {
		return nil, nil
	}
	if a.userHandle != nil && string(a.userHandle) != user {
		return nil, nil
	}
	if !signCountOK(row.signCount, a.signCount) {
		return nil, svc.cloneSuspected(r, row, a.signCount)
	}
	return []stmt{svc.credentialUsed(row, a)}, nil
}

// credentialUsed is the statement recording a verified use: the sign count
// moves up (on the condition that it is still below: of two uses with one
// counter value, one counts), the backup state and the last use change.
func (svc *Service) credentialUsed(row *credentialRow, a *assertion) stmt {
	n := int64(a.signCount)
	return stmt{
		// tenant-lookup: a passkey is the person's, across tenants.
		Query: `UPDATE webauthn_credentials SET sign_count = ?, backed_up = ?, last_used_at = ? WHERE id = ? AND user_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		Args:  []any{n, b2i(a.backedUp), svc.now().UnixMilli(), row.id, row.user, n, n},
	}
}

// cloneSuspected audits a passkey whose counter did not move up, in every
// tenant of its person: two copies of one authenticator exist, one of
// them perhaps not the person's.
func (svc *Service) cloneSuspected(r *http.Request, row *credentialRow, got uint32) error {
	ms, err := svc.memberships(r.Context(), row.user, "")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := web.RecordEvent(r, svc.p, auditEvent(m.tenant, row.user, "user.passkey.clone_suspected", map[string]string{
			"passkey": row.id, "stored_sign_count": itoa(row.signCount), "presented_sign_count": itoa(int64(got))})); err != nil {
			return err
		}
	}
	return nil
}

// emptyBody is the body of an options request: {}.
type emptyBody struct{}

// PasskeyOptions starts enrolling a passkey (step-up): the creation options
// for navigator.credentials.create and the token of the ceremony
// (auth_challenges kind 'webauthn_register', 5 minutes).
func (svc *Service) PasskeyOptions(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := web.DecodeJSON(w, r, identityBodyLimit, &emptyBody{}); err != nil {
		return err
	}
	ctx := r.Context()
	rp, err := svc.relyingParty(r)
	if err != nil {
		return err
	}
	cs, err := svc.userCredentials(ctx, s.UserID)
	if err != nil {
		return err
	}
	if len(cs) >= maxPasskeys {
		return web.Errorf(http.StatusConflict, "too_many_passkeys", "an account has at most %d passkeys; remove one first", maxPasskeys)
	}
	u, err := svc.userByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	sess := webauthnSession{Challenge: newWebAuthnChallenge(), RPID: rp.ID, Origins: rp.Origins, User: s.UserID}
	token, err := svc.newChallenge(ctx, "webauthn_register", s.UserID, s.Tenant, mfaChallengeData{WebAuthn: mustJSON(sess)}, webauthnTimeout)
	if err != nil {
		return err
	}
	display := u.name
	if display == "" {
		display = u.email
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"challenge_token": token,
		"options":         creationOptions(rp, sess.Challenge, s.UserID, u.email, display, descriptors(cs)),
		"expires_at":      web.Millis(svc.now().Add(webauthnTimeout).UnixMilli()),
	})
	return nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type addPasskeyRequest struct {
	ChallengeToken string          `json:"challenge_token"`
	Credential     json.RawMessage `json:"credential"`
	Name           string          `json:"name"`
}

// AddPasskey finishes enrolling a passkey. The person's first second
// factor also gets their recovery codes (shown once).
func (svc *Service) AddPasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req addPasskeyRequest
	if err := web.DecodeJSON(w, r, maxCredentialJSON+1024, &req); err != nil {
		return err
	}
	name, err := web.CheckName("name", req.Name, false, maxPasskeyName)
	if err != nil {
		return err
	}
	if name == "" {
		name = "Passkey"
	}
	ctx := r.Context()
	c, err := svc.loadChallenge(ctx, req.ChallengeToken, "webauthn_register")
	if err != nil {
		return err
	}
	if c.UserID != s.UserID {
		return errInvalidChallenge
	}
	var sess webauthnSession
	if err := json.Unmarshal(c.webauthnSession(), &sess); err != nil {
		return err
	}
	reg, err := verifyRegistration(req.Credential, &sess)
	if err != nil {
		var we *web.Error
		if errors.As(err, &we) && we.Code == "webauthn_failed" {
			// The reason may quote what the client sent: bounded.
			reason := we.Message
			if len(reason) > 200 {
				reason = strings.ToValidUTF8(reason[:200], "") + "…"
			}
			if rerr := s.Record(r, "user.passkey.refused", "user:"+s.UserID, map[string]string{"reason": reason}); rerr != nil {
				return rerr
			}
			return svc.failChallenge(ctx, c, we)
		}
		return err
	}
	n, err := svc.webauthnCount(ctx, s.UserID)
	if err != nil {
		return err
	}
	if n >= maxPasskeys {
		return web.Errorf(http.StatusConflict, "too_many_passkeys", "an account has at most %d passkeys; remove one first", maxPasskeys)
	}
	codes, codeStmts, err := svc.recoveryCodesIfFirst(ctx, s.UserID)
	if err != nil {
		return err
	}
	notice, err := svc.factorNotice(ctx, s, "passkey_added")
	if err != nil {
		return err
	}
	// The ceremony is spent first, on its own: of two answers to one
	// challenge one goes on, and a failure after this costs the person a
	// new ceremony, never a second credential.
	use, err := svc.useChallenge(ctx, c)
	if err != nil {
		return err
	}
	if ok, err := svc.runGuarded(ctx, []stmt{use}); err != nil || !ok {
		if err == nil {
			err = errInvalidChallenge
		}
		return err
	}
	id, now := web.NewID("pk"), svc.now().UnixMilli()
	stmts := []stmt{{
		// tenant-lookup: a passkey is the person's, across tenants.
		Query: `INSERT INTO webauthn_credentials (id, user_id, credential_id, credential, name, created_at, sign_count, backed_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{id, s.UserID, reg.credID, string(mustJSON(reg.record)), name, now, int64(reg.signCount), b2i(reg.backedUp)},
	}}
	stmts = append(append(stmts, codeStmts...), notice...)
	// The session that enrolled a second factor has proved it (the
	// person was just verified by it): the policy stops holding it back.
	stmts = append(stmts, svc.sessionProvedStmt(s, methodWebAuthn, now))
	if err := svc.batch(ctx, stmts); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return web.Errorf(http.StatusConflict, "passkey_exists", "this passkey is already enrolled")
		}
		return err
	}
	if err := s.Record(r, "user.passkey.added", "user:"+s.UserID, map[string]string{"passkey": id, "name": name}); err != nil {
		return err
	}
	out := map[string]any{"id": id, "name": name}
	if codes != nil {
		out["recovery_codes"] = codes
	}
	web.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func passkeyJSON(c credentialRow) map[string]any {
	out := map[string]any{"id": c.id, "name": c.name, "created_at": web.Millis(c.created), "last_used_at": nil,
		"backup_eligible": c.rec.BackupEligible, "backed_up": c.backedUp, "transports": nonNil(c.rec.Transports)}
	if c.lastUsed != nil {
		out["last_used_at"] = web.Millis(*c.lastUsed)
	}
	return out
}

// ListPasskeys lists the person's passkeys.
func (svc *Service) ListPasskeys(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	cs, err := svc.userCredentials(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(cs))
	for i, c := range cs {
		out[i] = passkeyJSON(c)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"passkeys": out})
	return nil
}

func (svc *Service) ownCredential(ctx context.Context, s *web.Scope, id string) (*credentialRow, error) {
	if !web.ValidID("pk", id) {
		return nil, web.Errorf(http.StatusNotFound, "not_found", "no such passkey")
	}
	// tenant-lookup: a passkey is the person's, across tenants; the person is the session's.
	rows, err := svc.p.SQL.Query(ctx, `SELECT `+credentialColumns+` FROM webauthn_credentials WHERE id = ? AND user_id = ?`, id, s.UserID)
	if err != nil {
		return nil, err
	}
	cs, err := scanCredentials(rows)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, web.Errorf(http.StatusNotFound, "not_found", "no such passkey")
	}
	return &cs[0], nil
}

type renamePasskeyRequest struct {
	Name string `json:"name"`
}

// RenamePasskey changes a passkey's label.
func (svc *Service) RenamePasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req renamePasskeyRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	name, err := web.CheckName("name", req.Name, true, maxPasskeyName)
	if err != nil {
		return err
	}
	ctx := r.Context()
	c, err := svc.ownCredential(ctx, s, r.PathValue("id"))
	if err != nil {
		return err
	}
	// tenant-lookup: a passkey is the person's, across tenants; the person is the session's.
	res, err := svc.p.SQL.Exec(ctx, `UPDATE webauthn_credentials SET name = ? WHERE id = ? AND user_id = ?`, name, c.id, s.UserID)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such passkey")
	}
	if err := s.Record(r, "user.passkey.renamed", "user:"+s.UserID, map[string]string{"passkey": c.id, "name": name}); err != nil {
		return err
	}
	c.name = name
	web.WriteJSON(w, http.StatusOK, passkeyJSON(*c))
	return nil
}

// DeletePasskey removes a passkey (step-up). The last second factor of a
// person whom a tenant's policy requires to have one stays (409
// mfa_required_by_policy).
func (svc *Service) DeletePasskey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	c, err := svc.ownCredential(ctx, s, r.PathValue("id"))
	if err != nil {
		return err
	}
	extra, err := svc.removeFactorStmts(ctx, s.UserID, 1)
	if err != nil {
		return err
	}
	notice, err := svc.factorNotice(ctx, s, "passkey_removed")
	if err != nil {
		return err
	}
	stmts := []stmt{{
		// tenant-lookup: a passkey is the person's, across tenants; the person is the session's.
		Query: `DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?`, Args: []any{c.id, s.UserID}}}
	stmts = append(append(stmts, extra...), notice...)
	if err := svc.batch(ctx, stmts); err != nil {
		return err
	}
	if err := s.Record(r, "user.passkey.removed", "user:"+s.UserID, map[string]string{"passkey": c.id, "name": c.name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type mfaWebAuthnRequest struct {
	MFAToken string `json:"mfa_token"`
}

// LoginMFAWebAuthn gives the assertion options for the person's passkeys
// to answer a sign-in's 'mfa' challenge with (POST /v1/login/mfa
// {"mfa_token", "webauthn"}). The session data joins the challenge's data.
func (svc *Service) LoginMFAWebAuthn(w http.ResponseWriter, r *http.Request) error {
	var req mfaWebAuthnRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	ctx := r.Context()
	c, err := svc.loadChallenge(ctx, req.MFAToken, "mfa")
	if err != nil {
		return err
	}
	options, session, err := svc.webauthnOptions(ctx, r, c.UserID)
	if err != nil {
		return err
	}
	var d mfaChallengeData
	if err := json.Unmarshal(c.Data, &d); err != nil {
		return err
	}
	d.WebAuthn = session
	res, err := svc.p.SQL.Exec(ctx,
		// tenant-lookup: the challenge is found by its own id, which only its token's holder learned.
		`UPDATE auth_challenges SET data = ? WHERE id = ? AND used_at IS NULL`, string(mustJSON(d)), c.ID)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return errInvalidChallenge
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"options": options})
	return nil
}

// ReauthWebAuthn gives the assertion options for a step-up with a passkey
// (POST /v1/me/reauth {"webauthn"}): a 'reauth' challenge of the session's
// person.
func (svc *Service) ReauthWebAuthn(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := web.DecodeJSON(w, r, identityBodyLimit, &emptyBody{}); err != nil {
		return err
	}
	ctx := r.Context()
	options, session, err := svc.webauthnOptions(ctx, r, s.UserID)
	if err != nil {
		return err
	}
	if _, err := svc.newChallenge(ctx, "reauth", s.UserID, s.Tenant, mfaChallengeData{WebAuthn: session}, reauthChallengeTTL); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"options": options})
	return nil
}

// PasskeyLoginOptions starts a passwordless sign-in: options without
// allowCredentials (the browser offers the person's discoverable passkeys
// for this site) that require user verification (the passkey stands for
// the password and a second factor at once).
func (svc *Service) PasskeyLoginOptions(w http.ResponseWriter, r *http.Request) error {
	if err := web.DecodeJSON(w, r, identityBodyLimit, &emptyBody{}); err != nil {
		return err
	}
	// Each call stores a ceremony (kept a day after it expires): anyone
	// may ask, so an address asks as often as it may sign in.
	if err := web.Shed(r, svc.p.Limiter, storage.LimitLogin, "passkey-options "+web.ClientIP(r), "too many passkey sign-ins from this address; slow down"); err != nil {
		return err
	}
	rp, err := svc.relyingParty(r)
	if err != nil {
		return err
	}
	sess := webauthnSession{Challenge: newWebAuthnChallenge(), RPID: rp.ID, Origins: rp.Origins, UV: true}
	token, err := svc.newChallenge(r.Context(), "passkey_login", "", "", mfaChallengeData{WebAuthn: mustJSON(sess)}, webauthnTimeout)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"challenge_token": token,
		"options":         requestOptions(rp, sess.Challenge, nil, "required"),
		"expires_at":      web.Millis(svc.now().Add(webauthnTimeout).UnixMilli()),
	})
	return nil
}

type passkeyLoginRequest struct {
	ChallengeToken string          `json:"challenge_token"`
	Credential     json.RawMessage `json:"credential"`
	Tenant         string          `json:"tenant"`
}

// errPasskeyRefused is the one answer to a passwordless sign-in that does
// not check out, whatever the reason: whether a passkey is known here is
// not told.
var errPasskeyRefused = web.Errorf(http.StatusUnauthorized, "invalid_credentials", "that passkey could not sign you in here")

// PasskeyLogin finishes a passwordless sign-in: the credential names the
// person; the session's methods are "passkey". Throttled per address and
// per credential.
func (svc *Service) PasskeyLogin(w http.ResponseWriter, r *http.Request) error {
	var req passkeyLoginRequest
	if err := web.DecodeJSON(w, r, maxCredentialJSON+1024, &req); err != nil {
		return err
	}
	if req.Tenant != "" && !web.ValidID("t", req.Tenant) {
		return web.Errorf(http.StatusBadRequest, "invalid_tenant", "tenant must be a tenant id (t_…)")
	}
	ip := web.ClientIP(r)
	if err := web.Shed(r, svc.p.Limiter, storage.LimitLogin, "passkey "+ip, "too many passkey sign-ins from this address; slow down"); err != nil {
		return err
	}
	ctx := r.Context()
	c, err := svc.loadChallenge(ctx, req.ChallengeToken, "passkey_login")
	if err != nil {
		return err
	}
	pc, id, err := parseAssertion(req.Credential)
	if err != nil {
		return err
	}
	h := sha256.Sum256(id)
	if err := web.Shed(r, svc.p.Limiter, storage.LimitLogin, "passkey-credential "+base64.RawURLEncoding.EncodeToString(h[:16]),
		"too many sign-ins with this passkey; slow down"); err != nil {
		return err
	}
	var sess webauthnSession
	if err := json.Unmarshal(c.webauthnSession(), &sess); err != nil {
		return err
	}
	row, err := svc.credentialByID(ctx, id)
	if err != nil {
		return err
	}
	if row == nil {
		return svc.failChallenge(ctx, c, errPasskeyRefused)
	}
	a, err := verifyAssertion(pc, id, &sess, row.rec)
	if err != nil {
		var we *web.Error
		if errors.As(err, &we) {
			if err := svc.recordLoginFailure(r, row.user, req.Tenant, "passkey_refused"); err != nil {
				return err
			}
			return svc.failChallenge(ctx, c, errPasskeyRefused)
		}
		return err
	}
	// A discoverable credential names its person: the handle must be the
	// one we gave it.
	if string(a.userHandle) != row.user {
		return svc.failChallenge(ctx, c, errPasskeyRefused)
	}
	if !signCountOK(row.signCount, a.signCount) {
		if err := svc.cloneSuspected(r, row, a.signCount); err != nil {
			return err
		}
		return svc.failChallenge(ctx, c, errPasskeyRefused)
	}
	u, err := svc.userByID(ctx, row.user)
	if err != nil {
		return err
	}
	use, err := svc.useChallenge(ctx, c)
	if err != nil {
		return err
	}
	return svc.finishSignIn(w, r, u, req.Tenant, []string{methodPasskey}, use, svc.credentialUsed(row, a))
}
