package storagetest

import (
	"fmt"

	"pommy.ai/edge/storage"
)

// LimiterSuite is the contract of storage.Limiter, run against the named
// limit storage.LimitLogin as configured in storage.Limits (the smallest,
// so the suite makes the fewest calls).
//
// The edge's limiter (the Workers rate-limit binding) counts approximately
// and per location, so the cases assert only what such a counter still
// guarantees: a fresh key is let through, hammering one key well past its
// limit is refused at some point, and a refused key does not refuse others.
// They make no timing assertions and never wait for a window to pass. Each
// case uses fresh random keys, so repeated runs do not see each other.
func LimiterSuite(l storage.Limiter) Suite {
	return LimiterSuiteFor(l, storage.LimitLogin, storage.Limits[storage.LimitLogin].Limit)
}

// LimiterSuiteFor is LimiterSuite against another configured name whose
// limit is limit events per period.
func LimiterSuiteFor(l storage.Limiter, name string, limit int) Suite {
	s := &limiterSuite{l: l, name: name, limit: limit}
	return Suite{Name: "Limiter", Cases: []Case{
		{"FreshKeyAllowedUpToLimit", s.freshKey},
		{"RefusesWellPastLimit", s.refuses},
		{"KeysIndependent", s.independent},
		{"UnknownNameInvalid", s.unknownName},
		{"EmptyOrOversizeKeyInvalid", s.badKey},
	}}
}

type limiterSuite struct {
	l     storage.Limiter
	name  string
	limit int
}

func (s *limiterSuite) key() string { return "storagetest-" + randomHex(12) }

// freshKey: the first limit events of a fresh key are all allowed. An
// approximate counter errs by letting more through, not fewer.
func (s *limiterSuite) freshKey(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	key := s.key()
	for i := range s.limit {
		d, err := s.l.Allow(ctx, s.name, key)
		must(t, err, fmt.Sprintf("Allow #%d", i+1))
		if !d.Allowed {
			t.Fatalf("event %d of a fresh key refused (limit %d)", i+1, s.limit)
		}
		if d.RetryAfter != 0 {
			t.Errorf("an allowed event has RetryAfter %v", d.RetryAfter)
		}
	}
}

// exhaust counts events for key until one is refused, at most 10× the
// limit, and returns the refusal.
func (s *limiterSuite) exhaust(t T, key string) storage.LimitDecision {
	t.Helper()
	ctx, cancel := testCtx()
	defer cancel()
	for i := range 10 * s.limit {
		d, err := s.l.Allow(ctx, s.name, key)
		must(t, err, fmt.Sprintf("Allow #%d", i+1))
		if !d.Allowed {
			t.Logf("first refusal at event %d (limit %d), RetryAfter %v", i+1, s.limit, d.RetryAfter)
			return d
		}
	}
	t.Fatalf("%d events of one key were all allowed (limit %d)", 10*s.limit, s.limit)
	return storage.LimitDecision{}
}

// refuses: well past the limit, the key is refused with a RetryAfter.
func (s *limiterSuite) refuses(t T) {
	d := s.exhaust(t, s.key())
	if d.RetryAfter <= 0 {
		t.Errorf("a refusal has RetryAfter %v, want > 0", d.RetryAfter)
	}
}

// independent: refusing one key leaves another untouched.
func (s *limiterSuite) independent(t T) {
	a, b := s.key(), s.key()
	s.exhaust(t, a)
	ctx, cancel := testCtx()
	defer cancel()
	d, err := s.l.Allow(ctx, s.name, b)
	must(t, err, "Allow for a second key")
	if !d.Allowed {
		t.Errorf("a fresh key is refused after another key was exhausted")
	}
	// The same key under another name is another counter too, when the
	// home has another name.
	for other := range storage.Limits {
		if other == s.name {
			continue
		}
		d, err := s.l.Allow(ctx, other, a)
		must(t, err, "Allow under "+other)
		if !d.Allowed {
			t.Errorf("key exhausted under %q is refused under %q", s.name, other)
		}
		break
	}
}

func (s *limiterSuite) unknownName(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	for _, name := range []string{"no-such-limit-" + randomHex(4), "", s.name + " "} {
		_, err := s.l.Allow(ctx, name, s.key())
		wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("Allow(%q)", name))
	}
}

func (s *limiterSuite) badKey(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	_, err := s.l.Allow(ctx, s.name, "")
	wantErrIs(t, err, storage.ErrInvalid, "Allow with an empty key")
	long := s.key()
	for len(long) <= storage.MaxLimitKey {
		long += "x"
	}
	_, err = s.l.Allow(ctx, s.name, long)
	wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("Allow with a %d-byte key", len(long)))
	d, err := s.l.Allow(ctx, s.name, long[:storage.MaxLimitKey])
	must(t, err, fmt.Sprintf("Allow with a %d-byte key", storage.MaxLimitKey))
	if !d.Allowed {
		t.Errorf("a fresh %d-byte key is refused", storage.MaxLimitKey)
	}
}
