package identity

import (
	"context"
	"crypto/sha256"
	"net/http"
	"time"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Login throttling, counted exactly in SQL (never KV: a counter that takes a
// minute to reach other locations is no limit). Only verified failures
// count; a refused (throttled) attempt neither verifies the password nor
// counts. Three counters, each with a threshold of free failures after which
// every further attempt must wait a delay that doubles per failure up to a
// cap:
//
//	account+IP : 5 free, then 30 s doubling to 15 min.  Reset by a success
//	             from that IP. The strong, targeted brake: it stops one
//	             source guessing one account and touches no one else.
//	IP         : 50 free, then 60 s doubling to 1 h. Catches one source
//	             spraying many accounts. Never reset by a success (an
//	             attacker with one real account must not clear it).
//	account    : 20 free, then 5 s doubling to 60 s (mild, capped). Catches
//	             a distributed attack on one account, but does not apply
//	             from an IP the person has signed in from in the last 30
//	             days: an attacker can at worst make the real user wait a
//	             minute on a new device, never lock them out.
//
// A sign-in from a trusted device (one that holds a device cookie from an
// earlier sign-in to the same account, devices.go) is exempt from all
// three and counted on its own counter instead:
//
//	device     : 10 free, then 30 s doubling to 15 min. Reset by a success.
//
// so that someone who shares the person's address (an office, a carrier's
// NAT) and trips the address's or the account's brake cannot lock them out
// of a browser they have used before.
//
// A second factor (a TOTP code or a recovery code, at sign-in, at step-up
// or confirming an enrolment) has its own counter per account, whatever
// the address or device:
//
//	second factor : 5 free, then 30 s doubling to 15 min. Reset only by a
//	                right second factor.
//
// A password success must not reset it: whoever holds the password could
// otherwise start a fresh challenge every five guesses and try the
// million TOTP codes at the speed of sign-ins. It is per account, not per
// address, since the password already narrowed the attacker to one
// account; its cap means that at worst someone who knows the password
// slows the real person's second step to one try per 15 minutes.
//
// Counters forget after 24 h without a failure.
type throttleRule struct {
	kind      string
	free      int64
	base, max time.Duration
}

var (
	throttleAccountIP = throttleRule{"account-ip", 5, 30 * time.Second, 15 * time.Minute}
	throttleIP        = throttleRule{"ip", 50, time.Minute, time.Hour}
	throttleAccount   = throttleRule{"account", 20, 5 * time.Second, time.Minute}
	throttleDevice    = throttleRule{"device", 10, 30 * time.Second, 15 * time.Minute}
	throttleMFA       = throttleRule{"second-factor", 5, 30 * time.Second, 15 * time.Minute}
	throttleForget    = 24 * time.Hour
	knownIPWindow     = 30 * 24 * time.Hour
)

func (t throttleRule) delay(failures int64) time.Duration {
	if failures < t.free {
		return 0
	}
	d := t.base
	for i := t.free; i < failures && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

func throttleKey(rule throttleRule, parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte(rule.kind))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

type loginThrottle struct {
	email, ip string
	knownIP   bool // the person has signed in from this IP before
	// device is the hash of a trusted device cookie of this account, or
	// nil.
	device []byte
	// mfaUser, when set, makes this the second-factor counter of that
	// account (and nothing else).
	mfaUser string
}

// mfaThrottle is the second-factor counter of a person's account.
func mfaThrottle(user string) loginThrottle { return loginThrottle{mfaUser: user} }

type throttleCounter struct {
	rule throttleRule
	key  []byte
}

func (lt loginThrottle) keys() []throttleCounter {
	if lt.mfaUser != "" {
		return []throttleCounter{{throttleMFA, throttleKey(throttleMFA, lt.mfaUser)}}
	}
	if lt.device != nil {
		return []throttleCounter{{throttleDevice, throttleKey(throttleDevice, string(lt.device))}}
	}
	out := []throttleCounter{
		{throttleAccountIP, throttleKey(throttleAccountIP, lt.email, lt.ip)},
		{throttleIP, throttleKey(throttleIP, lt.ip)},
	}
	if !lt.knownIP {
		out = append(out, throttleCounter{throttleAccount, throttleKey(throttleAccount, lt.email)})
	}
	return out
}

// check refuses the attempt with 429 and Retry-After while any counter's
// delay has not passed.
func (svc *Service) throttleCheck(ctx context.Context, lt loginThrottle) error {
	now := svc.now()
	var wait time.Duration
	for _, k := range lt.keys() {
		// tenant-lookup: login throttling is per account and IP, before any tenant is known.
		rows, err := svc.p.SQL.Query(ctx, `SELECT failures, last_failure_at FROM login_throttle WHERE key = ?`, k.key)
		if err != nil {
			return err
		}
		if rows.Len() == 0 {
			continue
		}
		var failures, last int64
		if err := rows.Scan(0, &failures, &last); err != nil {
			return err
		}
		lastAt := time.UnixMilli(last)
		if now.Sub(lastAt) >= throttleForget {
			continue
		}
		if until := lastAt.Add(k.rule.delay(failures)); until.After(now) {
			wait = max(wait, until.Sub(now))
		}
	}
	if wait > 0 {
		e := web.Errorf(http.StatusTooManyRequests, "too_many_attempts", "too many failed sign-ins; try again in %d seconds", web.RetrySeconds(wait))
		e.RetryAfter = web.RetrySeconds(wait)
		return e
	}
	return nil
}

// throttleFail counts one verified failure on every counter, atomically
// per counter (one upsert each, in one batch).
func (svc *Service) throttleFail(ctx context.Context, lt loginThrottle) error {
	now := svc.now().UnixMilli()
	forget := now - throttleForget.Milliseconds()
	var stmts []stmt
	for _, k := range lt.keys() {
		stmts = append(stmts, stmt{
			// tenant-lookup: login throttling is per account and IP, before any tenant is known.
			Query: `INSERT INTO login_throttle (key, failures, last_failure_at) VALUES (?, 1, ?)
			ON CONFLICT (key) DO UPDATE SET failures = CASE WHEN last_failure_at < ? THEN 1 ELSE failures + 1 END, last_failure_at = excluded.last_failure_at`,
			Args: []any{k.key, now, forget}})
	}
	return svc.batch(ctx, stmts)
}

// throttleSuccess clears the account+IP, account and device counters: the
// person proved they know the password from here. The IP counter stays.
func (svc *Service) throttleSuccess(ctx context.Context, lt loginThrottle) error {
	if lt.mfaUser != "" {
		return svc.batch(ctx, []stmt{
			// tenant-lookup: login throttling is per account, across tenants.
			{Query: `DELETE FROM login_throttle WHERE key = ?`, Args: []any{throttleKey(throttleMFA, lt.mfaUser)}},
		})
	}
	return svc.batch(ctx, []stmt{
		// tenant-lookup: login throttling is per account and IP, before any tenant is known.
		{Query: `DELETE FROM login_throttle WHERE key = ? OR key = ? OR key = ?`, Args: []any{throttleKey(throttleAccountIP, lt.email, lt.ip),
			throttleKey(throttleAccount, lt.email), throttleKey(throttleDevice, string(lt.device))}},
	})
}

// checkPassword is the one way a password is checked against an existing
// account (sign-in, sign-up with an email that has an account, accepting an
// invitation): under the approximate per-account-and-address limit, then
// the exact throttles, with every failure counted and audited. u may be nil
// (no such account): the same work is done against a dummy hash, so the
// answer and its timing do not tell whether the account exists. tenant
// narrows where failures are audited ("" for all the person's tenants).
// wrong is the error for a wrong password.
func (svc *Service) checkPassword(r *http.Request, u *userRow, email, password, tenant string, wrong error) error {
	ctx := r.Context()
	ip := web.ClientIP(r)
	// Every attempt counts here, success or not, keyed by account and
	// address together: one person's attempts never use up anyone else's.
	if err := web.Shed(r, svc.p.Limiter, storage.LimitLogin, ip+" "+email, "too many sign-in attempts for this account from this address; slow down"); err != nil {
		return err
	}
	lt := loginThrottle{email: email, ip: ip}
	if u != nil {
		// tenant-lookup: is this IP one the person has signed in from before (any tenant)? Exempts them from the per-account brake.
		rows, err := svc.p.SQL.Query(ctx, `SELECT 1 FROM sessions WHERE user_id = ? AND ip = ? AND created_at > ? LIMIT 1`,
			u.id, ip, svc.now().Add(-knownIPWindow).UnixMilli())
		if err != nil {
			return err
		}
		lt.knownIP = rows.Len() > 0
		if lt.device, err = svc.trustedDevice(r, u.id); err != nil {
			return err
		}
	}
	if err := svc.throttleCheck(ctx, lt); err != nil {
		if u != nil {
			if aerr := svc.recordLoginFailure(r, u.id, tenant, "throttled"); aerr != nil {
				return aerr
			}
		}
		return err
	}
	hash := dummyHash
	if u != nil {
		hash = u.hash
	}
	ok, err := svc.p.Passwords.Verify(ctx, hash, []byte(password))
	if err != nil {
		return err
	}
	if !ok || u == nil {
		if err := svc.throttleFail(ctx, lt); err != nil {
			return err
		}
		if u != nil {
			if err := svc.recordLoginFailure(r, u.id, tenant, "bad_password"); err != nil {
				return err
			}
		}
		return wrong
	}
	return svc.throttleSuccess(ctx, lt)
}
