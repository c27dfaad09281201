// Package kvstore is the host's storage.KV: keys and values in a SQLite file
// of their own (table kv: key, value, expires_at), with Workers KV's limits
// enforced so that what works locally also works at the edge.
//
// Unlike Workers KV it is strongly consistent, which is allowed (stronger
// than the port promises) but must not be relied on: the application treats
// KV as eventually consistent everywhere.
//
// Durability is the sqlite package's: a Put or Delete is fsynced (WAL,
// synchronous=FULL) before it returns.
package kvstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/host/sqlite"
)

// MaxListLimit is the largest page List returns (Workers KV's).
const MaxListLimit = 1000

// Store is a storage.KV on SQLite.
type Store struct {
	db    *sqlite.DB
	clock storage.Clock
}

var _ storage.KV = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS kv (
	key        TEXT PRIMARY KEY NOT NULL,
	value      BLOB NOT NULL,
	expires_at INTEGER -- unix milliseconds; NULL never expires
);
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;
`

// Open opens (creating if needed) the store in the SQLite file at path.
// clock tells the time for TTLs; nil means the system clock.
func Open(path string, clock storage.Clock) (*Store, error) {
	db, err := sqlite.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kvstore: %w", err)
	}
	if _, err := db.Exec(context.Background(), schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("kvstore: create schema: %w", err)
	}
	if clock == nil {
		clock = storage.SystemClock{}
	}
	return &Store{db: db, clock: clock}, nil
}

// Close closes the store's database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) now() int64 { return s.clock.Now().UnixMilli() }

func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("kvstore: empty key: %w", storage.ErrInvalid)
	case key == "." || key == "..":
		return fmt.Errorf("kvstore: key %q is not allowed: %w", key, storage.ErrInvalid)
	case len(key) > storage.MaxKVKey:
		return fmt.Errorf("kvstore: key of %d bytes exceeds %d: %w", len(key), storage.MaxKVKey, storage.ErrInvalid)
	case !utf8.ValidString(key):
		return fmt.Errorf("kvstore: key is not valid UTF-8: %w", storage.ErrInvalid)
	}
	return nil
}

func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", key, s.now())
	if err != nil {
		return nil, fmt.Errorf("kvstore: get: %w", err)
	}
	if rows.Len() == 0 {
		return nil, fmt.Errorf("kvstore: %q: %w", key, storage.ErrNotFound)
	}
	var v []byte
	if err := rows.Scan(0, &v); err != nil {
		return nil, fmt.Errorf("kvstore: get: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (s *Store) Put(ctx context.Context, key string, value []byte, opts storage.KVPutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > storage.MaxKVValue {
		return fmt.Errorf("kvstore: value of %d bytes exceeds %d: %w", len(value), storage.MaxKVValue, storage.ErrInvalid)
	}
	var expires any // NULL
	switch ttl := opts.TTL; {
	case ttl < 0:
		return fmt.Errorf("kvstore: negative TTL %v: %w", ttl, storage.ErrInvalid)
	case ttl > 0:
		expires = s.clock.Now().Add(max(ttl, storage.MinKVTTL)).UnixMilli()
	}
	if value == nil {
		value = []byte{}
	}
	_, err := s.db.Exec(ctx, `INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`, key, value, expires)
	if err != nil {
		return fmt.Errorf("kvstore: put: %w", err)
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "DELETE FROM kv WHERE key = ?", key); err != nil {
		return fmt.Errorf("kvstore: delete: %w", err)
	}
	return nil
}

// List returns live keys with prefix in byte order after cursor. The cursor
// is opaque to callers (it encodes the last key returned).
func (s *Store) List(ctx context.Context, prefix, cursor string, limit int) (storage.KVList, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			return storage.KVList{}, fmt.Errorf("kvstore: bad cursor: %w", storage.ErrInvalid)
		}
		after = string(b)
	}
	// Keys with the prefix are one contiguous run in byte order starting at
	// the prefix, so the scan stops at the first key without it.
	rows, err := s.db.Query(ctx, `SELECT key FROM kv
		WHERE key >= ? AND key > ? AND (expires_at IS NULL OR expires_at > ?)
		ORDER BY key LIMIT ?`, prefix, after, s.now(), limit+1)
	if err != nil {
		return storage.KVList{}, fmt.Errorf("kvstore: list: %w", err)
	}
	out := storage.KVList{Keys: []string{}}
	for i := range rows.Values {
		var k string
		if err := rows.Scan(i, &k); err != nil {
			return storage.KVList{}, fmt.Errorf("kvstore: list: %w", err)
		}
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if len(out.Keys) == limit {
			out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(out.Keys[limit-1]))
			break
		}
		out.Keys = append(out.Keys, k)
	}
	return out, nil
}

// Sweep deletes expired keys (reads already ignore them) and reports how
// many went. The host calls it periodically.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	res, err := s.db.Exec(ctx, "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", s.now())
	if err != nil {
		return 0, fmt.Errorf("kvstore: sweep: %w", err)
	}
	return res.RowsAffected, nil
}

// ExpiresAt reports when key expires (zero time: never), for tests and
// diagnostics. It returns ErrNotFound for a missing or expired key.
func (s *Store) ExpiresAt(ctx context.Context, key string) (time.Time, error) {
	rows, err := s.db.Query(ctx, "SELECT expires_at FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", key, s.now())
	if err != nil {
		return time.Time{}, err
	}
	if rows.Len() == 0 {
		return time.Time{}, storage.ErrNotFound
	}
	if rows.Values[0][0] == nil {
		return time.Time{}, nil
	}
	var ms int64
	if err := rows.Scan(0, &ms); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}
