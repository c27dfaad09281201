// Package envelope seals tenant data at rest: one data key per tenant,
// wrapped by the home's master key (storage.Keys), stored in SQL. Every
// ciphertext is AES-256-GCM with associated data that binds it to its tenant,
// kind and id, so a ciphertext moved to another row, tenant or field fails to
// open. Deleting a tenant's wrapped key (Shred) makes all of its data
// unreadable at once.
package envelope

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"pommy.ai/edge/storage"
)

// Format bytes that open every sealed value, so formats can evolve.
const (
	formatValue  = 0x01
	formatStream = 0x02
)

// ErrShredded means the tenant's data key was deleted: its data is gone.
var ErrShredded = errors.New("envelope: tenant data key has been destroyed")

// ErrCorrupt means a ciphertext failed to authenticate or is malformed.
var ErrCorrupt = errors.New("envelope: ciphertext is corrupt or does not belong here")

// Keyring hands out tenants' data keys. It caches opened keys for its own
// lifetime, which is meant to be one request: the edge keeps nothing longer.
type Keyring struct {
	sql   storage.SQL
	keys  storage.Keys
	clock storage.Clock
	cache map[string]storage.DataKey
}

// New returns a request-scoped keyring.
func New(p storage.Platform) *Keyring {
	return &Keyring{sql: p.SQL, keys: p.Keys, clock: p.Clock, cache: map[string]storage.DataKey{}}
}

func keyAD(tenant string) []byte { return appendAD(nil, "tenant-key", tenant, "", "") }

// appendAD encodes the binding of a ciphertext unambiguously (length
// prefixes, so "a|b" + "c" never equals "a" + "b|c").
func appendAD(dst []byte, purpose, tenant, kind, id string) []byte {
	dst = append(dst, "pommy/v1"...)
	for _, s := range []string{purpose, tenant, kind, id} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// Ensure creates the tenant's data key if it has none. Calling it when a
// tenant is created keeps a later Shred final: a shredded tenant never gets a
// fresh key by accident, because key lookups for existing data do not create.
func (k *Keyring) Ensure(ctx context.Context, tenant string) error {
	_, err := k.key(ctx, tenant, true)
	return err
}

func (k *Keyring) key(ctx context.Context, tenant string, create bool) (storage.DataKey, error) {
	if tenant == "" {
		return nil, fmt.Errorf("envelope: empty tenant: %w", storage.ErrInvalid)
	}
	if dk, ok := k.cache[tenant]; ok {
		return dk, nil
	}
	rows, err := k.sql.Query(ctx, `SELECT wrapped FROM tenant_keys WHERE tenant_id = ?`, tenant)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		if !create {
			return nil, ErrShredded
		}
		dk, wrapped, err := k.keys.NewDataKey(ctx, keyAD(tenant))
		if err != nil {
			return nil, err
		}
		// Two requests may race to create the key; the first insert wins and
		// the loser re-reads, so both end with the same key.
		res, err := k.sql.Exec(ctx, `INSERT INTO tenant_keys (tenant_id, wrapped, created_at) VALUES (?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`,
			tenant, wrapped, k.clock.Now().UnixMilli())
		if err != nil {
			return nil, err
		}
		if res.RowsAffected == 1 {
			k.cache[tenant] = dk
			return dk, nil
		}
		return k.key(ctx, tenant, false)
	}
	var wrapped []byte
	if err := rows.Scan(0, &wrapped); err != nil {
		return nil, err
	}
	dk, err := k.keys.OpenDataKey(ctx, wrapped, keyAD(tenant))
	if err != nil {
		return nil, fmt.Errorf("envelope: tenant %s: %w", tenant, err)
	}
	k.cache[tenant] = dk
	return dk, nil
}

// Shred deletes the tenant's data key. Everything sealed for the tenant is
// unreadable from this moment, in every home, because the key lives in SQL
// (strongly consistent), not in a cache that outlives the request.
func (k *Keyring) Shred(ctx context.Context, tenant string) error {
	delete(k.cache, tenant)
	_, err := k.sql.Exec(ctx, `DELETE FROM tenant_keys WHERE tenant_id = ?`, tenant)
	return err
}

// Seal encrypts a value of the given kind and id for tenant.
func (k *Keyring) Seal(ctx context.Context, tenant, kind, id string, plaintext []byte) ([]byte, error) {
	dk, err := k.key(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+storage.NonceSize, 1+storage.NonceSize+len(plaintext)+storage.Overhead)
	out[0] = formatValue
	nonce := out[1 : 1+storage.NonceSize]
	rand.Read(nonce)
	return dk.Seal(out, nonce, plaintext, appendAD(nil, "value", tenant, kind, id))
}

// Open decrypts a value sealed by Seal with the same tenant, kind and id.
func (k *Keyring) Open(ctx context.Context, tenant, kind, id string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+storage.NonceSize+storage.Overhead || sealed[0] != formatValue {
		return nil, ErrCorrupt
	}
	dk, err := k.key(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	pt, err := dk.Open(nil, sealed[1:1+storage.NonceSize], sealed[1+storage.NonceSize:], appendAD(nil, "value", tenant, kind, id))
	if err != nil {
		if errors.Is(err, storage.ErrUnavailable) {
			return nil, err
		}
		return nil, ErrCorrupt
	}
	return pt, nil
}
