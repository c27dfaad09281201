package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// TOTP (RFC 6238): SHA-1, 6 digits, 30-second steps, a 160-bit secret, the
// parameters every authenticator app reads from an otpauth:// URL. A code
// is accepted for the current step and one step either side (clock drift),
// and only for a step later than the last one accepted (mfa_totp.last_step,
// raised by a conditional UPDATE): a code is never accepted twice, nor an
// older one after a newer.
const (
	totpPeriod     = 30
	totpDigits     = 6
	totpSecretSize = 20
	totpSkew       = 1
	totpIssuer     = "Pommy"
)

// Authentication methods, as sessions.auth_methods records them.
const (
	methodPassword     = "password"
	methodTOTP         = "totp"
	methodRecoveryCode = "recovery_code"
	methodWebAuthn     = "webauthn"
	methodPasskey      = "passkey"
)

var errInvalidCode = web.Errorf(http.StatusBadRequest, "invalid_code", "code must be the 6 digits your authenticator app shows")

// normalizeTOTPCode accepts the 6 digits, with spaces (apps show "123 456").
func normalizeTOTPCode(s string) (string, error) {
	if len(s) > 16 {
		return "", errInvalidCode
	}
	c := strings.ReplaceAll(s, " ", "")
	if len(c) != totpDigits {
		return "", errInvalidCode
	}
	for i := 0; i < len(c); i++ {
		if c[i] < '0' || c[i] > '9' {
			return "", errInvalidCode
		}
	}
	return c, nil
}

// totpStep is the time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// totpMatch returns the step within the skew of now whose code is code,
// preferring the latest, and only one after lastStep; 0 when none is.
func totpMatch(secret, code string, now time.Time, lastStep int64) (int64, error) {
	cur := totpStep(now)
	for step := cur + totpSkew; step >= cur-totpSkew; step-- {
		if step <= lastStep {
			break
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, nil
		}
	}
	return 0, nil
}

// totpRow is a person's TOTP authenticator.
type totpRow struct {
	secret    string // base32, opened
	sealed    []byte
	confirmed bool
	lastStep  int64
}

// userTOTP reads and opens a person's TOTP secret; nil when they have none.
func (svc *Service) userTOTP(ctx context.Context, user string) (*totpRow, error) {
	// tenant-lookup: a second factor is the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT secret_sealed, confirmed_at IS NOT NULL, last_step FROM mfa_totp WHERE user_id = ?`, user)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	t := &totpRow{}
	if err := rows.Scan(0, &t.sealed, &t.confirmed, &t.lastStep); err != nil {
		return nil, err
	}
	dk, err := svc.userKey(ctx, user, false)
	if err != nil {
		return nil, err
	}
	secret, err := openUserValue(dk, t.sealed, "totp:"+user)
	if err != nil {
		return nil, err
	}
	t.secret = string(secret)
	return t, nil
}

// userKey is the person's own data key (users.key_wrapped), which seals
// their TOTP secret: an account spans tenants, so no tenant's key may hold
// it, and deleting one tenant must not lose it. create makes it on first
// use; two requests racing to make it settle on the first written (a
// conditional UPDATE, the loser re-reads).
func (svc *Service) userKey(ctx context.Context, user string, create bool) (storage.DataKey, error) {
	ad := []byte("user:" + user)
	for range 2 {
		// tenant-lookup: the person's data key belongs to their account, across tenants.
		rows, err := svc.p.SQL.Query(ctx, `SELECT key_wrapped FROM users WHERE id = ?`, user)
		if err != nil {
			return nil, err
		}
		if rows.Len() != 1 {
			return nil, fmt.Errorf("identity: no account %s: %w", user, storage.ErrNotFound)
		}
		var wrapped []byte
		if err := rows.Scan(0, &wrapped); err != nil {
			return nil, err
		}
		if len(wrapped) > 0 {
			return svc.p.Keys.OpenDataKey(ctx, wrapped, ad)
		}
		if !create {
			return nil, fmt.Errorf("identity: account %s has no data key: %w", user, storage.ErrNotFound)
		}
		dk, wrapped, err := svc.p.Keys.NewDataKey(ctx, ad)
		if err != nil {
			return nil, err
		}
		// tenant-lookup: the person's data key belongs to their account, across tenants.
		res, err := svc.p.SQL.Exec(ctx, `UPDATE users SET key_wrapped = ? WHERE id = ? AND key_wrapped IS NULL`, wrapped, user)
		if err != nil {
			return nil, err
		}
		if res.RowsAffected == 1 {
			return dk, nil
		}
	}
	return nil, errors.New("identity: the person's data key changed twice meanwhile")
}

// sealUserValue seals plaintext under dk, bound to ad: nonce, then the
// ciphertext and tag.
func sealUserValue(dk storage.DataKey, plaintext []byte, ad string) ([]byte, error) {
	out := make([]byte, storage.NonceSize, storage.NonceSize+len(plaintext)+storage.Overhead)
	rand.Read(out)
	return dk.Seal(out, out[:storage.NonceSize], plaintext, []byte(ad))
}

func openUserValue(dk storage.DataKey, sealed []byte, ad string) ([]byte, error) {
	if len(sealed) < storage.NonceSize+storage.Overhead {
		return nil, errors.New("identity: sealed value too short")
	}
	return dk.Open(nil, sealed[:storage.NonceSize], sealed[storage.NonceSize:], []byte(ad))
}

// EnrolTOTP starts (or restarts) setting up an authenticator app: a new
// secret, sealed, pending until a first code confirms it. The secret is
// shown once here, as text, as an otpauth:// URL and as a QR code.
func (svc *Service) EnrolTOTP(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	u, err := svc.userByID(ctx, s.UserID)
	if err != nil {
		return err
	}
	existing, err := svc.totpConfirmed(ctx, s.UserID)
	if err != nil {
		return err
	}
	if existing {
		return errTOTPExists
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: u.email, Period: totpPeriod, SecretSize: totpSecretSize,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return err
	}
	dk, err := svc.userKey(ctx, s.UserID, true)
	if err != nil {
		return err
	}
	sealed, err := sealUserValue(dk, []byte(key.Secret()), "totp:"+s.UserID)
	if err != nil {
		return err
	}
	qrCode, err := qrPNG(key.URL())
	if err != nil {
		return err
	}
	now := svc.now().UnixMilli()
	// A pending secret is replaced; a confirmed one is not (the condition).
	res, err := svc.p.SQL.Exec(ctx,
		// tenant-lookup: a second factor is the person's, across tenants.
		`INSERT INTO mfa_totp (user_id, secret_sealed, created_at, confirmed_at, last_step) VALUES (?, ?, ?, NULL, 0)
		ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, last_step = 0
		WHERE mfa_totp.confirmed_at IS NULL`, s.UserID, sealed, now)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return errTOTPExists
	}
	if err := s.Record(r, "user.mfa.totp.pending", "user:"+s.UserID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, map[string]any{
		"secret":      key.Secret(),
		"otpauth_url": key.URL(),
		"qr_png":      "data:image/png;base64," + base64.StdEncoding.EncodeToString(qrCode),
	})
	return nil
}

var errTOTPExists = web.Errorf(http.StatusConflict, "totp_exists", "an authenticator app is already set up; remove it first to set up another")

func (svc *Service) totpConfirmed(ctx context.Context, user string) (bool, error) {
	// tenant-lookup: a second factor is the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM mfa_totp WHERE user_id = ? AND confirmed_at IS NOT NULL`, user)
	if err != nil {
		return false, err
	}
	return rows.Len() > 0, nil
}

type codeRequest struct {
	Code string `json:"code"`
}

// ConfirmTOTP proves the enrolment with a first code. The first second
// factor also makes the person's recovery codes (shown once, here). The
// session that confirmed gains "totp": it has just proved the factor, so a
// tenant policy requiring one stops holding it back.
func (svc *Service) ConfirmTOTP(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req codeRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	code, err := normalizeTOTPCode(req.Code)
	if err != nil {
		return err
	}
	ctx := r.Context()
	t, err := svc.userTOTP(ctx, s.UserID)
	if err != nil {
		return err
	}
	if t == nil {
		return web.Errorf(http.StatusNotFound, "no_pending_totp", "start with POST /v1/me/mfa/totp, then confirm with a code from the app")
	}
	if t.confirmed {
		return errTOTPExists
	}
	lt := mfaThrottle(s.UserID)
	if err := svc.throttleCheck(ctx, lt); err != nil {
		return err
	}
	now := svc.now()
	step, err := totpMatch(t.secret, code, now, t.lastStep)
	if err != nil {
		return err
	}
	if step == 0 {
		if err := svc.throttleFail(ctx, lt); err != nil {
			return err
		}
		return web.Errorf(http.StatusBadRequest, "wrong_code", "that code is not the one the app shows now; check the phone's clock and try the next code")
	}
	codes, codeStmts, err := svc.recoveryCodesIfFirst(ctx, s.UserID)
	if err != nil {
		return err
	}
	ms := now.UnixMilli()
	// The confirmation alone first: of two racing confirmations one wins,
	// and only the winner writes the recovery codes it shows (the loser's
	// would otherwise replace them). A crash between the two leaves the app
	// set up without codes: POST /v1/me/mfa/recovery-codes makes them.
	ok, err := svc.runGuarded(ctx, []stmt{{
		// tenant-lookup: a second factor is the person's, across tenants; the sealed secret pins the one this code proves.
		Query: `UPDATE mfa_totp SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at IS NULL AND secret_sealed = ? AND last_step < ?`,
		Args:  []any{ms, step, s.UserID, t.sealed, step},
	}})
	if err != nil {
		return err
	}
	if !ok {
		return web.Errorf(http.StatusConflict, "conflict", "the authenticator app was replaced or confirmed meanwhile; start again")
	}
	stmts := append([]stmt{svc.sessionProvedStmt(s, methodTOTP, ms)}, codeStmts...)
	notice, err := svc.factorNotice(ctx, s, mail.MFATOTPAdded)
	if err != nil {
		return err
	}
	if err := svc.batch(ctx, append(stmts, notice...)); err != nil {
		return err
	}
	if err := svc.throttleSuccess(ctx, lt); err != nil {
		return err
	}
	if err := s.Record(r, "user.mfa.totp.enabled", "user:"+s.UserID, nil); err != nil {
		return err
	}
	body := map[string]any{}
	if codes != nil {
		body["recovery_codes"] = codes
	}
	web.WriteJSON(w, http.StatusOK, body)
	return nil
}

// DisableTOTP removes the person's authenticator app (a dangerous action:
// step-up). A tenant policy that requires a second factor of the person
// keeps their last one (409 mfa_required_by_policy).
func (svc *Service) DisableTOTP(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	t, err := svc.userTOTP(ctx, s.UserID)
	if err != nil {
		return err
	}
	if t == nil {
		return web.Errorf(http.StatusNotFound, "not_found", "no authenticator app is set up")
	}
	stmts := []stmt{{
		// tenant-lookup: a second factor is the person's, across tenants.
		Query: `DELETE FROM mfa_totp WHERE user_id = ? AND secret_sealed = ?`, Args: []any{s.UserID, t.sealed}}}
	if t.confirmed {
		more, err := svc.removeFactorStmts(ctx, s.UserID, 1)
		if err != nil {
			return err
		}
		stmts = append(stmts, more...)
		notice, err := svc.factorNotice(ctx, s, mail.MFATOTPRemoved)
		if err != nil {
			return err
		}
		stmts = append(stmts, notice...)
	}
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "conflict", "the authenticator app changed meanwhile; look again")
	}
	if t.confirmed {
		if err := s.Record(r, "user.mfa.totp.disabled", "user:"+s.UserID, nil); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
