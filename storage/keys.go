package storage

import "context"

// Keys is the home's key custodian. It holds the master key and never hands
// out key material: a data key is created or unwrapped into an opaque
// DataKey, and only its wrapped (sealed) form is stored by the application.
// In the host the custodian runs natively (AES-NI), outside the guest's
// memory; at the edge it runs inside the worker with the master key from a
// secret.
type Keys interface {
	// NewDataKey makes a fresh 256-bit data key and returns it with its
	// wrapped form, sealed under the master key with ad as associated data.
	NewDataKey(ctx context.Context, ad []byte) (DataKey, []byte, error)
	// OpenDataKey unwraps a data key made by NewDataKey with the same ad.
	OpenDataKey(ctx context.Context, wrapped, ad []byte) (DataKey, error)
	// MAC returns HMAC-SHA256 of msg under a key derived from the master key
	// for purpose (for example "api-key"): a server-side pepper for hashing
	// secrets that never leaves the custodian.
	MAC(ctx context.Context, purpose string, msg []byte) ([]byte, error)
}

// DataKey is an AES-256-GCM key held by the custodian.
type DataKey interface {
	// Seal encrypts and authenticates plaintext with a 12-byte nonce and
	// associated data, appending to dst.
	Seal(dst, nonce, plaintext, ad []byte) ([]byte, error)
	// Open reverses Seal; it fails if anything was altered.
	Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}

// NonceSize and Overhead are AES-GCM's.
const (
	NonceSize = 12
	Overhead  = 16
)
