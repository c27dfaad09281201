//go:build js && wasm

// Package kv is the edge adapter of storage.KV on a Workers KV namespace
// binding.
//
// Workers KV is eventually consistent: a write can take about 60 s to reach
// other locations, and a key takes about one write per second. The port's
// rules (KV holds caches and derived data only) follow from that; this
// adapter adds nothing to hide it.
package kv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"syscall/js"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// MaxList is the most keys Workers KV returns from one list call.
const MaxList = 1000

// Namespace is a Workers KV namespace.
type Namespace struct{ ns js.Value }

var _ storage.KV = (*Namespace)(nil)

// New binds the KV namespace in the worker's environment under binding.
func New(binding string) (*Namespace, error) {
	v := jsbridge.Binding(binding)
	if v.Type() != js.TypeObject {
		return nil, fmt.Errorf("kv: binding %q is not configured (add a [[kv_namespaces]] entry to wrangler.toml)", binding)
	}
	return &Namespace{ns: v}, nil
}

// checkKey applies Workers KV's key rules everywhere, so a key that the edge
// would refuse is refused the same way (ErrInvalid) before any call.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("kv: empty key: %w", storage.ErrInvalid)
	case key == "." || key == "..":
		return fmt.Errorf("kv: key %q is not allowed: %w", key, storage.ErrInvalid)
	case len(key) > storage.MaxKVKey:
		return fmt.Errorf("kv: key of %d bytes exceeds %d: %w", len(key), storage.MaxKVKey, storage.ErrInvalid)
	}
	return nil
}

func wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("kv: %s %q: %w: %w", op, key, storage.ErrUnavailable, err)
}

func (n *Namespace) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	opts := jsbridge.NewObject()
	opts.Set("type", "arrayBuffer")
	v, err := jsbridge.CallAwait(ctx, n.ns, "get", key, opts)
	if err != nil {
		return nil, wrap("get", key, err)
	}
	if jsbridge.IsNullish(v) {
		return nil, fmt.Errorf("kv: get %q: %w", key, storage.ErrNotFound)
	}
	b, err := jsbridge.Bytes(v)
	if err != nil {
		return nil, fmt.Errorf("kv: get %q: %w", key, err)
	}
	return b, nil
}

func (n *Namespace) Put(ctx context.Context, key string, value []byte, o storage.KVPutOptions) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > storage.MaxKVValue {
		return fmt.Errorf("kv: value of %d bytes exceeds %d: %w", len(value), storage.MaxKVValue, storage.ErrInvalid)
	}
	if o.TTL < 0 {
		return fmt.Errorf("kv: negative TTL %v: %w", o.TTL, storage.ErrInvalid)
	}
	opts := jsbridge.NewObject()
	if o.TTL > 0 {
		ttl := max(o.TTL, storage.MinKVTTL)
		// Whole seconds, rounded up so a key never expires early.
		opts.Set("expirationTtl", math.Ceil(ttl.Seconds()))
	}
	if _, err := jsbridge.CallAwait(ctx, n.ns, "put", key, jsbridge.Uint8Array(value), opts); err != nil {
		return wrap("put", key, err)
	}
	return nil
}

func (n *Namespace) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if _, err := jsbridge.CallAwait(ctx, n.ns, "delete", key); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

func (n *Namespace) List(ctx context.Context, prefix, cursor string, limit int) (storage.KVList, error) {
	if len(prefix) > storage.MaxKVKey {
		return storage.KVList{}, fmt.Errorf("kv: prefix of %d bytes exceeds %d: %w", len(prefix), storage.MaxKVKey, storage.ErrInvalid)
	}
	if limit <= 0 || limit > MaxList {
		limit = MaxList
	}
	opts := jsbridge.ListOptions(prefix, cursor, limit)
	v, err := jsbridge.CallAwait(ctx, n.ns, "list", opts)
	if err != nil {
		// An unknown or stale cursor is the caller's mistake, but KV does
		// not tell the two apart from an outage; report it as unavailable.
		return storage.KVList{}, wrap("list", prefix, err)
	}
	keys := v.Get("keys")
	out := storage.KVList{Keys: make([]string, 0, keys.Length())}
	now := time.Now().Unix()
	for i := 0; i < keys.Length(); i++ {
		k := keys.Index(i)
		// Listing is eventually consistent as well; do not return keys
		// whose expiry has already passed.
		if exp := k.Get("expiration"); exp.Type() == js.TypeNumber && int64(exp.Float()) <= now {
			continue
		}
		out.Keys = append(out.Keys, k.Get("name").String())
	}
	if !v.Get("list_complete").Bool() {
		if c := v.Get("cursor"); c.Type() == js.TypeString {
			out.Cursor = c.String()
		}
	}
	return out, nil
}
