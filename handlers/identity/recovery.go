package identity

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/web"
)

// Recovery codes: ten per person, made with their first second factor and
// shown once; each signs in (or steps up) once in place of the factor.
// A code is 10 characters from a 32-letter alphabet (RFC 4648 base32,
// lowercase: no 0, 1, 8 or 9 to confuse with o, l, b or g), 50 bits, shown
// as "abcde-fghij"; case, spaces and hyphens do not matter when typed.
// Only Keys.MAC("recovery-code", user, code) is stored: the master key's
// custodian is needed to test a guess, and the same code of two people
// never has the same hash.
const (
	recoveryCodeCount    = 10
	recoveryCodeLen      = 10
	recoveryCodeAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
)

var errInvalidRecoveryCode = web.Errorf(http.StatusBadRequest, "invalid_recovery_code", "a recovery code is 10 letters and digits, like abcde-fghij")

func newRecoveryCode() string {
	var b [recoveryCodeLen]byte
	rand.Read(b[:])
	out := make([]byte, 0, recoveryCodeLen+1)
	for i, c := range b {
		if i == recoveryCodeLen/2 {
			out = append(out, '-')
		}
		out = append(out, recoveryCodeAlphabet[c&31])
	}
	return string(out)
}

// normalizeRecoveryCode is the code as stored: lowercase, without spaces
// and hyphens.
func normalizeRecoveryCode(s string) (string, error) {
	if len(s) > 32 {
		return "", errInvalidRecoveryCode
	}
	c := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, s)
	if len(c) != recoveryCodeLen {
		return "", errInvalidRecoveryCode
	}
	for i := 0; i < len(c); i++ {
		if !strings.ContainsRune(recoveryCodeAlphabet, rune(c[i])) {
			return "", errInvalidRecoveryCode
		}
	}
	return c, nil
}

func (svc *Service) recoveryCodeHash(ctx context.Context, user, normalized string) ([]byte, error) {
	return svc.p.Keys.MAC(ctx, "recovery-code", []byte(user+"\x00"+normalized))
}

// newRecoveryCodes makes a person's ten codes: the codes to show once, and
// the statements that replace their old ones.
func (svc *Service) newRecoveryCodes(ctx context.Context, user string) ([]string, []stmt, error) {
	now := svc.now().UnixMilli()
	codes := make([]string, recoveryCodeCount)
	insert := stmt{
		// tenant-lookup: recovery codes are the person's, across tenants.
		Query: `INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", recoveryCodeCount), ", "),
	}
	for i := range codes {
		codes[i] = newRecoveryCode()
		norm, _ := normalizeRecoveryCode(codes[i])
		h, err := svc.recoveryCodeHash(ctx, user, norm)
		if err != nil {
			return nil, nil, err
		}
		insert.Args = append(insert.Args, user, h, now)
	}
	return codes, []stmt{
		// tenant-lookup: recovery codes are the person's, across tenants.
		{Query: `DELETE FROM mfa_recovery_codes WHERE user_id = ?`, Args: []any{user}},
		insert,
	}, nil
}

// recoveryCodesIfFirst makes the person's recovery codes when they have
// no second factor yet (the one being added is their first): the codes to
// show once and the statements for the batch that adds the factor. With a
// factor already, it returns nothing: their codes stay.
func (svc *Service) recoveryCodesIfFirst(ctx context.Context, user string) ([]string, []stmt, error) {
	n, err := svc.factorCount(ctx, user)
	if err != nil || n > 0 {
		return nil, nil, err
	}
	return svc.newRecoveryCodes(ctx, user)
}

// factorCount is how many second factors the person has (a confirmed TOTP
// authenticator, and each WebAuthn credential).
func (svc *Service) factorCount(ctx context.Context, user string) (int, error) {
	hasTOTP, err := svc.totpConfirmed(ctx, user)
	if err != nil {
		return 0, err
	}
	n, err := svc.webauthnCount(ctx, user)
	if err != nil {
		return 0, err
	}
	if hasTOTP {
		n++
	}
	return n, nil
}

// recoveryCodeProof finds an unused code of the person; the statement
// spends it, on the condition that it is still unused.
func (svc *Service) recoveryCodeProof(ctx context.Context, user, code string) ([]stmt, error) {
	h, err := svc.recoveryCodeHash(ctx, user, code)
	if err != nil {
		return nil, err
	}
	// tenant-lookup: recovery codes are the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM mfa_recovery_codes WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`, user, h)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	return []stmt{{
		// tenant-lookup: recovery codes are the person's, across tenants.
		Query: `UPDATE mfa_recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`,
		Args:  []any{svc.now().UnixMilli(), user, h},
	}}, nil
}

// recoveryCodesLeft is how many unused codes the person has.
func (svc *Service) recoveryCodesLeft(ctx context.Context, user string) (int64, error) {
	// tenant-lookup: recovery codes are the person's, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL`, user)
	if err != nil {
		return 0, err
	}
	var n int64
	return n, rows.Scan(0, &n)
}

// RegenerateRecoveryCodes replaces the person's recovery codes (step-up):
// the old ones stop working at once.
func (svc *Service) RegenerateRecoveryCodes(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	n, err := svc.factorCount(ctx, s.UserID)
	if err != nil {
		return err
	}
	if n == 0 {
		return web.Errorf(http.StatusConflict, "no_second_factor", "recovery codes stand in for a second factor; set one up first")
	}
	codes, stmts, err := svc.newRecoveryCodes(ctx, s.UserID)
	if err != nil {
		return err
	}
	notice, err := svc.factorNotice(ctx, s, mail.MFARecoveryCodesReset)
	if err != nil {
		return err
	}
	if err := svc.batch(ctx, append(stmts, notice...)); err != nil {
		return err
	}
	if err := s.Record(r, "user.mfa.recovery_codes.regenerated", "user:"+s.UserID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
	return nil
}

// removeFactorStmts is the rule for removing removing of a person's second
// factors (their TOTP authenticator, a passkey): when none would be left,
// it is refused (409 mfa_required_by_policy) if a tenant where they are an
// active member requires a second factor of their role; otherwise the
// statements returned (for the removal's batch) delete their recovery
// codes, which stand in for a factor they no longer have.
func (svc *Service) removeFactorStmts(ctx context.Context, user string, removing int) ([]stmt, error) {
	n, err := svc.factorCount(ctx, user)
	if err != nil {
		return nil, err
	}
	if n-removing > 0 {
		return nil, nil
	}
	ms, err := svc.memberships(ctx, user, "")
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if MFARequired(m.mfaPolicy, m.role) {
			return nil, web.Errorf(http.StatusConflict, "mfa_required_by_policy",
				"%s requires a second factor of its %ss; add another (an authenticator app or a passkey) before removing this one", m.name, m.role)
		}
	}
	return []stmt{{
		// tenant-lookup: recovery codes are the person's, across tenants.
		Query: `DELETE FROM mfa_recovery_codes WHERE user_id = ?`, Args: []any{user}}}, nil
}

// factorNotice is the mail that tells the person a second factor of theirs
// was added or removed, or their recovery codes replaced (what: one of
// mail.MFA*: "totp_added", "totp_removed", "passkey_added",
// "passkey_removed", "recovery_codes_regenerated"), for the change's batch:
// someone who took over a session cannot quietly add their own factor or
// remove the person's. It is mail about the account (mail.AccountTenant),
// which no organization lists.
func (svc *Service) factorNotice(ctx context.Context, s *web.Scope, what string) ([]stmt, error) {
	// tenant-lookup: a person's address and language belong to their account, across tenants.
	rows, err := svc.p.SQL.Query(ctx, `SELECT email, locale FROM users WHERE id = ?`, s.UserID)
	if err != nil || rows.Len() != 1 {
		return nil, err
	}
	var email, locale string
	if err := rows.Scan(0, &email, &locale); err != nil {
		return nil, err
	}
	st, err := mail.Enqueue(mail.Message{Tenant: mail.AccountTenant, Event: "mfa:" + what + ":" + s.UserID + ":" + web.NewID("ev"), To: email,
		Locale: mailLocale(locale), Template: mail.TemplateMFAChanged, Vars: map[string]string{"what": what}}, svc.now())
	if err != nil {
		// An address that cannot receive mail (an account made before
		// addresses were checked this strictly) must not keep the person
		// from securing their account.
		return nil, nil
	}
	return st, nil
}
