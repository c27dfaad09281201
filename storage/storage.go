// Package storage defines the ports through which the application reaches its
// platform: SQL, KV, blobs, keys, clock, randomness and outbound HTTP.
//
// Every port is a small interface with one adapter per home (the edge worker,
// the wazero host, and the guest side of the host ABI). All adapters pass the
// shared contract suites in storagetest. The ports are shaped by the edge's
// constraints so that code that works locally also works at the edge:
//
//   - SQL has no interactive transactions (D1 has none): atomic work is a Batch.
//   - KV is eventually consistent; use SQL for anything that must take effect
//     at once (revocation, counters, ledgers, approvals).
//   - Blobs stream in both directions; a Put is all-or-nothing.
//   - Key material stays with the home's key custodian; callers hold handles.
//
// This package imports neither syumai/workers nor wazero and builds for
// GOOS=js, GOOS=wasip1 and native targets.
package storage

import (
	"errors"
	"net/http"
	"time"
)

// Errors shared by all adapters. Adapters wrap their own errors around these
// so that callers can test with errors.Is.
var (
	// ErrNotFound: the key, blob or row does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrUnavailable: the backing store cannot serve now (network, disk full,
	// host shutting down). Nothing was written; the caller may retry later.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrInvalid: the caller passed something the store refuses (bad key, too large).
	ErrInvalid = errors.New("storage: invalid argument")
	// ErrConflict: a uniqueness or conditional-write check failed.
	ErrConflict = errors.New("storage: conflict")
)

// Clock tells the time. Handlers never call time.Now directly so that tests
// can move time (session timeouts, TTLs) without sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now().UTC() }

// HTTPDoer sends outbound requests (AI providers, tenant tools, webhooks).
// Each home enforces its own egress policy; the host's adapter refuses
// destinations outside its allow-list with ErrInvalid.
type HTTPDoer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Platform is everything a home provides to the application.
type Platform struct {
	Home  string // "edge", "local" or "native" (benchmark baseline)
	SQL   SQL
	KV    KV
	Blobs Blobs
	Keys  Keys
	Clock Clock
	HTTP  HTTPDoer
	// Passwords hashes people's passwords (argon2id).
	Passwords Passwords
	// Limiter sheds abuse approximately; exact limits are counted in SQL.
	Limiter Limiter
	// Realtime wakes stream watchers after a write; nil means no wake-ups
	// (the native benchmark baseline), which costs latency, never events.
	Realtime Realtime
	// Mail sends mail for the application's mail jobs (handlers/mail).
	// nil means this home has no mail service: mail jobs wait, visibly
	// failing, until one is configured.
	Mail Mailer
}
