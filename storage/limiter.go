package storage

import (
	"context"
	"time"
)

// Limiter is the approximate, fast rate limiter of a home: the Workers
// rate-limit binding at the edge (counted per location, over 10 s or 60 s
// windows), an in-process limiter in the host. Use it to shed abuse cheaply
// (per IP, per widget token). Where a limit must be exact and global (login
// throttling, per-API-key quotas, spending), count in SQL instead.
type Limiter interface {
	// Allow counts one event for key against the named limit and reports
	// whether it is within the limit. Names are configured per home (at the
	// edge, one binding per name in wrangler.toml); an unknown name is an
	// error wrapping ErrInvalid.
	Allow(ctx context.Context, name, key string) (LimitDecision, error)
}

// LimitDecision is a Limiter's answer.
type LimitDecision struct {
	Allowed bool
	// RetryAfter, when not allowed, is how long until the window that
	// refused the event has passed (an upper bound at the edge).
	RetryAfter time.Duration
}
