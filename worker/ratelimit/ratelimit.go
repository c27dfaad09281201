//go:build js && wasm

// Package ratelimit is the edge adapter of storage.Limiter on the Workers
// rate-limit binding: one [[ratelimits]] binding per named limit in
// wrangler.toml, bound as RL_<NAME> (RL_LOGIN for "login"), whose
// `simple = { limit, period }` must equal storage.Limits (tests/workerd
// checks the file).
//
// The binding counts per Cloudflare location and approximately (it is
// eventually consistent and may let a few more events through), over a
// window of 10 or 60 seconds. It answers only {success}, so RetryAfter is
// the limit's whole period: an upper bound on when the window that refused
// the event has passed. Locally, wrangler dev (miniflare) counts exactly in
// fixed windows aligned to the period.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall/js"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// BindingName is the binding of the named limit: "RL_" and the name in
// upper case.
func BindingName(name string) string { return "RL_" + strings.ToUpper(name) }

type limit struct {
	binding js.Value
	period  time.Duration
}

// Limiter implements storage.Limiter on rate-limit bindings.
type Limiter struct{ limits map[string]limit }

var _ storage.Limiter = (*Limiter)(nil)

// New binds one rate-limit binding per name in limits. It reports every
// missing binding at once.
func New(limits map[string]storage.Limit) (*Limiter, error) {
	l := &Limiter{limits: map[string]limit{}}
	var missing []string
	for name, lim := range limits {
		if lim.Period != 10*time.Second && lim.Period != time.Minute {
			return nil, fmt.Errorf("ratelimit: limit %q has period %v; the edge allows 10s or 1m", name, lim.Period)
		}
		b := jsbridge.Binding(BindingName(name))
		if b.Type() != js.TypeObject || b.Get("limit").Type() != js.TypeFunction {
			missing = append(missing, BindingName(name))
			continue
		}
		l.limits[name] = limit{binding: b, period: lim.Period}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("ratelimit: bindings %s are not configured (add [[ratelimits]] entries to wrangler.toml)", strings.Join(missing, ", "))
	}
	return l, nil
}

// Allow asks the binding about one event for key.
func (l *Limiter) Allow(ctx context.Context, name, key string) (storage.LimitDecision, error) {
	lim, ok := l.limits[name]
	if !ok {
		return storage.LimitDecision{}, fmt.Errorf("%w: no limit named %q", storage.ErrInvalid, name)
	}
	if key == "" || len(key) > storage.MaxLimitKey {
		return storage.LimitDecision{}, fmt.Errorf("%w: limiter key of %d bytes (1..%d)", storage.ErrInvalid, len(key), storage.MaxLimitKey)
	}
	opts := jsbridge.NewObject()
	opts.Set("key", key)
	v, err := jsbridge.CallAwait(ctx, lim.binding, "limit", opts)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return storage.LimitDecision{}, err
		}
		return storage.LimitDecision{}, fmt.Errorf("ratelimit: %s: %w: %w", name, storage.ErrUnavailable, err)
	}
	if v.Type() != js.TypeObject || v.Get("success").Type() != js.TypeBoolean {
		return storage.LimitDecision{}, fmt.Errorf("ratelimit: %s: %w: the binding answered without success", name, storage.ErrUnavailable)
	}
	if v.Get("success").Bool() {
		return storage.LimitDecision{Allowed: true}, nil
	}
	return storage.LimitDecision{RetryAfter: lim.period}, nil
}
