// Package limiter is the local host's storage.Limiter: in-process
// sliding-window counters, one table per configured name, with bounded
// memory.
//
// Each key keeps two counts: events in the current fixed window and in the
// one before. An event is allowed while
//
//	previous × (time left of the previous window's weight) + current < limit
//
// which is the sliding-window estimate Cloudflare describes for its own
// rate limiting: it smooths the burst at a window edge that a plain fixed
// window allows (up to twice the limit) without keeping a log of events.
// Refused events are not counted, so a client that backs off for
// RetryAfter is let through.
//
// Memory: each name holds at most MaxKeys keys (a few dozen bytes plus the
// key each). When a name is full, keys idle for two periods are dropped; if
// none are, arbitrary keys are evicted, which forgets (fails open for) those
// keys rather than refusing everyone. The counts live in one process: a
// host restart forgets them, as the edge's per-location counters are
// forgotten when traffic moves. Exact, durable limits belong in SQL.
package limiter

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"pommy.ai/edge/storage"
)

// DefaultMaxKeys bounds each name's table when Options.MaxKeys is 0.
const DefaultMaxKeys = 100_000

// Options configure a Limiter.
type Options struct {
	// Limits are the names and their limits; storage.Limits when nil.
	Limits map[string]storage.Limit
	// MaxKeys bounds the keys each name tracks; DefaultMaxKeys when 0.
	MaxKeys int
	// Clock is the time source; the system clock when nil.
	Clock storage.Clock
}

// Limiter implements storage.Limiter.
type Limiter struct {
	clock storage.Clock
	names map[string]*table
}

type table struct {
	limit   int
	period  time.Duration
	maxKeys int

	mu        sync.Mutex
	keys      map[string]*counter
	lastSweep time.Time
}

type counter struct {
	window     int64 // index of the window curr counts: unix ns / period
	curr, prev int   // events in that window and in the one before it
}

// New returns a Limiter for the configured names.
func New(o Options) (*Limiter, error) {
	limits := o.Limits
	if limits == nil {
		limits = storage.Limits
	}
	max := o.MaxKeys
	if max <= 0 {
		max = DefaultMaxKeys
	}
	l := &Limiter{clock: o.Clock, names: map[string]*table{}}
	if l.clock == nil {
		l.clock = storage.SystemClock{}
	}
	for name, lim := range limits {
		if name == "" || lim.Limit < 1 || lim.Period < time.Millisecond {
			return nil, fmt.Errorf("limiter: limit %q: %d per %v is not a limit", name, lim.Limit, lim.Period)
		}
		l.names[name] = &table{limit: lim.Limit, period: lim.Period, maxKeys: max, keys: map[string]*counter{}}
	}
	return l, nil
}

// Allow counts one event for key under name.
func (l *Limiter) Allow(ctx context.Context, name, key string) (storage.LimitDecision, error) {
	t, ok := l.names[name]
	if !ok {
		return storage.LimitDecision{}, fmt.Errorf("%w: no limit named %q", storage.ErrInvalid, name)
	}
	if key == "" || len(key) > storage.MaxLimitKey {
		return storage.LimitDecision{}, fmt.Errorf("%w: limiter key of %d bytes (1..%d)", storage.ErrInvalid, len(key), storage.MaxLimitKey)
	}
	if err := ctx.Err(); err != nil {
		return storage.LimitDecision{}, err
	}
	return t.allow(l.clock.Now(), key), nil
}

func (t *table) allow(now time.Time, key string) storage.LimitDecision {
	p := int64(t.period)
	ns := now.UnixNano()
	w := floorDiv(ns, p)
	elapsed := ns - w*p // into the current window, [0, p)

	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.keys[key]
	if !ok {
		t.makeRoom(now, w)
		c = &counter{window: w}
		t.keys[string([]byte(key))] = c // own the key's bytes
	}
	switch {
	case c.window == w:
	case c.window == w-1:
		c.prev, c.curr, c.window = c.curr, 0, w
	default: // two windows or more ago, or the clock went back
		c.prev, c.curr, c.window = 0, 0, w
	}
	weight := float64(p-elapsed) / float64(p) // of the previous window
	if float64(c.prev)*weight+float64(c.curr)+1 <= float64(t.limit) {
		c.curr++
		return storage.LimitDecision{Allowed: true}
	}
	return storage.LimitDecision{RetryAfter: t.retryAfter(c, elapsed)}
}

// retryAfter is how long until one more event fits, if none come before.
func (t *table) retryAfter(c *counter, elapsed int64) time.Duration {
	p := float64(t.period)
	room := float64(t.limit - 1) // the estimate must fall to this
	var wait float64
	switch {
	case float64(c.curr) <= room && c.prev > 0:
		// Still in this window, once enough of the previous one has slid
		// out: prev × (p − e)/p + curr ≤ room.
		e := p * (1 - (room-float64(c.curr))/float64(c.prev))
		wait = e - float64(elapsed)
	case float64(c.curr) <= room:
		wait = 0 // cannot happen: the event would have been allowed
	default:
		// In the next window, once enough of this one has slid out:
		// curr × (p − e)/p ≤ room.
		e := p * (1 - room/float64(c.curr))
		wait = p - float64(elapsed) + e
	}
	d := time.Duration(math.Ceil(wait))
	// Round up to a whole millisecond (Retry-After is whole seconds at
	// the HTTP layer) and never answer 0 for a refusal.
	d = (d + time.Millisecond - 1).Truncate(time.Millisecond)
	return max(d, time.Millisecond)
}

// makeRoom keeps the table under maxKeys before a new key is added.
func (t *table) makeRoom(now time.Time, w int64) {
	if len(t.keys) < t.maxKeys {
		return
	}
	// Drop keys idle for two windows (their counts no longer count), at
	// most once a second so that a flood of new keys does not make every
	// call walk the table.
	if now.Sub(t.lastSweep) >= time.Second || now.Before(t.lastSweep) {
		t.lastSweep = now
		for k, c := range t.keys {
			if c.window < w-1 {
				delete(t.keys, k)
			}
		}
	}
	// Still full: forget arbitrary keys (map order), a small batch so the
	// next new keys find room too.
	for k := range t.keys {
		if len(t.keys) < t.maxKeys-t.maxKeys/64 {
			break
		}
		delete(t.keys, k)
	}
}

// Len returns how many keys name tracks (tests, metrics).
func (l *Limiter) Len(name string) int {
	t, ok := l.names[name]
	if !ok {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

var _ storage.Limiter = (*Limiter)(nil)
