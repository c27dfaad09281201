package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/web"
)

// Sign-in challenges (auth_challenges): the state between two steps of an
// authentication that the client carries as a token. A password accepted
// and a second factor awaited ('mfa'), a passwordless passkey sign-in
// ('passkey_login'), a passkey being registered ('webauthn_register'), a
// step-up's WebAuthn challenge ('reauth').
//
// The token is 256 random bits (43 base64url characters, the session
// token's shape); only its SHA-256 is stored, so the table alone cannot
// finish anyone's sign-in. A challenge is answered wrongly at most
// maxChallengeAttempts times (counted by a conditional UPDATE, so
// concurrent wrong answers cannot exceed it), used at most once (a
// conditional UPDATE of used_at that the finishing step checks before it
// grants anything), and refused after expires_at. Sweep deletes old rows.

const (
	// mfaChallengeTTL is how long a person has between the password and
	// the second factor.
	mfaChallengeTTL = 5 * time.Minute
	// maxChallengeAttempts is how many wrong answers end a challenge.
	maxChallengeAttempts = 5
	// challengeKeep is how long an expired challenge stays (an answer
	// after expiry is told challenge_expired, not invalid_challenge).
	challengeKeep = 24 * time.Hour
)

// challenge is one auth_challenges row.
type challenge struct {
	ID, Kind, UserID, Tenant string
	Data                     json.RawMessage
	Attempts                 int
	ExpiresAt                time.Time
}

var (
	errInvalidChallenge = web.Errorf(http.StatusUnauthorized, "invalid_challenge",
		"this sign-in step is unknown, was already used or had too many wrong answers; start again")
	errChallengeExpired = web.Errorf(http.StatusUnauthorized, "challenge_expired",
		"this sign-in step took too long; start again")
)

// newChallenge stores a challenge of kind for user (may be "") and tenant
// (may be ""), with data marshalled as JSON, valid for ttl, and returns the
// token the client holds.
func (svc *Service) newChallenge(ctx context.Context, kind, user, tenant string, data any, ttl time.Duration) (string, error) {
	raw := []byte("{}")
	if data != nil {
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return "", err
		}
	}
	token := newToken()
	now := svc.now()
	_, err := svc.p.SQL.Exec(ctx,
		// tenant-lookup: a challenge belongs to a person's sign-in, before (or across) tenants; tenant_id is data here.
		`INSERT INTO auth_challenges (id, token_hash, kind, user_id, tenant_id, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		web.NewID("ach"), tokenHash(token), kind, nullable(user), nullable(tenant), string(raw), now.UnixMilli(), now.Add(ttl).UnixMilli())
	if err != nil {
		return "", err
	}
	return token, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// loadChallenge finds the open challenge of kind that token names: 401
// invalid_challenge when it is malformed, unknown, of another kind, used or
// out of attempts; 401 challenge_expired when its time is up.
func (svc *Service) loadChallenge(ctx context.Context, token, kind string) (*challenge, error) {
	if !validToken(token) {
		return nil, errInvalidChallenge
	}
	// tenant-lookup: the challenge token is the credential that names the person and the tenant.
	rows, err := svc.p.SQL.Query(ctx, `SELECT id, kind, COALESCE(user_id, ''), COALESCE(tenant_id, ''), data, attempts, expires_at, used_at IS NOT NULL
		FROM auth_challenges WHERE token_hash = ?`, tokenHash(token))
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, errInvalidChallenge
	}
	c := &challenge{}
	var data string
	var expires int64
	var used bool
	if err := rows.Scan(0, &c.ID, &c.Kind, &c.UserID, &c.Tenant, &data, &c.Attempts, &expires, &used); err != nil {
		return nil, err
	}
	c.Data, c.ExpiresAt = json.RawMessage(data), time.UnixMilli(expires).UTC()
	switch {
	case c.Kind != kind, used, c.Attempts >= maxChallengeAttempts:
		return nil, errInvalidChallenge
	case !svc.now().Before(c.ExpiresAt):
		return nil, errChallengeExpired
	}
	return c, nil
}

// useChallenge is the statement that marks c used, on the condition that it
// is still open. The finishing step runs it (finishSignIn's extra
// statements) and grants nothing unless it changed a row.
func (svc *Service) useChallenge(ctx context.Context, c *challenge) (stmt, error) {
	now := svc.now().UnixMilli()
	return stmt{
		// tenant-lookup: the challenge is found by its own id, which only its token's holder learned.
		Query: `UPDATE auth_challenges SET used_at = ? WHERE id = ? AND used_at IS NULL AND attempts < ? AND expires_at > ?`,
		Args:  []any{now, c.ID, maxChallengeAttempts, now},
	}, nil
}

// failChallenge counts one wrong answer to c and returns the error to
// answer with: wrong, or invalid_challenge once the answers are used up
// (the challenge is then dead: loadChallenge refuses it).
func (svc *Service) failChallenge(ctx context.Context, c *challenge, wrong *web.Error) error {
	res, err := svc.p.SQL.Exec(ctx,
		// tenant-lookup: the challenge is found by its own id, which only its token's holder learned.
		`UPDATE auth_challenges SET attempts = attempts + 1 WHERE id = ? AND used_at IS NULL AND attempts < ?`, c.ID, maxChallengeAttempts)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 || c.Attempts+1 >= maxChallengeAttempts {
		e := *errInvalidChallenge
		e.Message = wrong.Message + "; that was the last try for this sign-in, start again"
		return &e
	}
	return wrong
}

// runGuarded runs stmts (each conditional: a challenge used, a TOTP step
// or a recovery code taken) as one batch and reports whether every one of
// them changed a row. When one did not, a concurrent request won the race
// and the caller must grant nothing.
func (svc *Service) runGuarded(ctx context.Context, stmts []stmt) (bool, error) {
	if len(stmts) == 0 {
		return true, nil
	}
	res, err := svc.p.SQL.Batch(ctx, stmts)
	if err != nil {
		return false, err
	}
	for _, r := range res {
		if r.RowsAffected == 0 {
			return false, nil
		}
	}
	return true, nil
}
