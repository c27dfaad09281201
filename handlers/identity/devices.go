package identity

import (
	"net/http"
	"time"

	"pommy.ai/edge/storage"
)

// Device cookies: a browser that signs in to an account is given a random
// token that marks it as a device the account has used. A later sign-in to
// that account that presents it is throttled per device instead of per
// address and account (throttle.go), so a person is never locked out of
// their own browser by someone guessing from behind the same address. The
// token only changes how attempts are counted; it authenticates nothing.

const (
	deviceCookie   = "__Host-pommy_device"
	deviceLifetime = 180 * 24 * time.Hour
)

// deviceToken is the request's one device cookie, or "" when there is none,
// it is malformed, or there are several (then none is trusted).
func deviceToken(r *http.Request) string {
	vs := cookieValues(r.Header, deviceCookie)
	if len(vs) != 1 || !validToken(vs[0]) {
		return ""
	}
	return vs[0]
}

// trustedDevice returns the hash of the request's device cookie when it
// was issued to user and has been used within its lifetime, else nil.
func (svc *Service) trustedDevice(r *http.Request, user string) ([]byte, error) {
	t := deviceToken(r)
	if t == "" {
		return nil, nil
	}
	h := tokenHash(t)
	// tenant-lookup: a device is trusted for a person's account, which spans tenants.
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT 1 FROM trusted_devices WHERE token_hash = ? AND user_id = ? AND last_used_at > ?`,
		h, user, svc.now().Add(-deviceLifetime).UnixMilli())
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	return h, nil
}

// trustDevice returns the statement that records the request's browser as
// a device of user, and the function that sets its cookie once the
// statement has run. The request's device cookie is kept (its last use
// moved) when it is already this user's; otherwise the browser gets a new
// token: one presented for another account is never taken over. fresh is
// the new token's hash when the browser got one (a device new to the
// account), else nil.
func (svc *Service) trustDevice(r *http.Request, user string) (st storage.Stmt, set func(http.ResponseWriter), fresh []byte, err error) {
	now := svc.now().UnixMilli()
	token := deviceToken(r)
	known, err := svc.trustedDevice(r, user)
	if err != nil {
		return storage.Stmt{}, nil, nil, err
	}
	if known == nil {
		token = newToken()
		fresh = tokenHash(token)
	}
	st = storage.Stmt{
		// tenant-lookup: a device is trusted for a person's account, which spans tenants.
		Query: `INSERT INTO trusted_devices (token_hash, user_id, created_at, last_used_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (token_hash) DO UPDATE SET last_used_at = excluded.last_used_at WHERE trusted_devices.user_id = excluded.user_id`,
		Args: []any{tokenHash(token), user, now, now},
	}
	return st, func(w http.ResponseWriter) {
		http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: token, Path: "/", HttpOnly: true, Secure: true,
			SameSite: http.SameSiteStrictMode, MaxAge: int(deviceLifetime / time.Second)})
	}, fresh, nil
}
