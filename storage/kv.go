package storage

import (
	"context"
	"time"
)

// KV is a key-value store with optional expiry. At the edge it is Workers KV:
// eventually consistent (about 60 s between locations), one write per second
// per key, TTLs of at least 60 s. Use it for caches and derived data only.
type KV interface {
	// Get returns ErrNotFound for a missing or expired key.
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, value []byte, opts KVPutOptions) error
	// Delete of a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns keys with the prefix in lexical order, at most limit
	// (the adapter's maximum when limit <= 0), and a cursor for the next page
	// ("" when there is none).
	List(ctx context.Context, prefix, cursor string, limit int) (KVList, error)
}

// KVPutOptions tune a Put.
type KVPutOptions struct {
	// TTL, when non-zero, makes the key expire; it is raised to MinKVTTL.
	TTL time.Duration
}

// MinKVTTL is the shortest expiry Workers KV accepts.
const MinKVTTL = 60 * time.Second

// MaxKVKey and MaxKVValue are Workers KV's limits, enforced by every adapter
// so that nothing that works locally fails at the edge.
const (
	MaxKVKey   = 512
	MaxKVValue = 25 << 20
)

// KVList is one page of keys.
type KVList struct {
	Keys   []string
	Cursor string
}
