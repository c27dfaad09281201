// Package keyring is the native key custodian: it implements storage.Keys
// with a master key held in process memory and Go's AES-256-GCM (AES-NI on
// the host). The host runs it outside the guest, so a data key never enters
// guest memory; the edge worker runs it in-process with the master key from
// a secret.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"pommy.ai/edge/storage"
)

// MasterKeySize is the length of a master key in bytes.
const MasterKeySize = 32

// wrapVersion prefixes every wrapped data key so that the format can change.
const wrapVersion = 1

// Local is a custodian whose master key lives in this process.
type Local struct {
	master     cipher.AEAD
	macKey     []byte
	newDataKey func(raw []byte) (storage.DataKey, error)
}

var _ storage.Keys = (*Local)(nil)

// Options are a home's choices for a custodian made by NewWith.
type Options struct {
	// NewDataKey makes the storage.DataKey for 32 raw key bytes, fresh or
	// just unwrapped. The custodian clears raw when it returns, so an
	// implementation must copy what it keeps (and should clear its copy once
	// it no longer needs it). Its Seal output must be byte-identical to Go's
	// AES-256-GCM (ciphertext||16-byte tag), and its Open must fail with
	// ErrOpen when authentication fails, so that data moves between homes.
	// nil means NewDataKey below (Go's AES-GCM).
	NewDataKey func(raw []byte) (storage.DataKey, error)
}

// New returns a custodian for a 32-byte master key whose data keys use Go's
// AES-GCM.
func New(master []byte) (*Local, error) { return NewWith(master, Options{}) }

// NewWith is New with a home's options. Wrapping and unwrapping data keys
// and MAC always run here, in Go; only the data keys' Seal and Open may be
// supplied by the home (the edge worker uses WebCrypto for large messages).
func NewWith(master []byte, o Options) (*Local, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("keyring: master key must be %d bytes, got %d", MasterKeySize, len(master))
	}
	wrapKey, err := hkdf.Key(sha256.New, master, nil, "pommy/v1/wrap", 32)
	if err != nil {
		return nil, err
	}
	macKey, err := hkdf.Key(sha256.New, master, nil, "pommy/v1/mac", 32)
	if err != nil {
		return nil, err
	}
	a, err := newGCM(wrapKey)
	if err != nil {
		return nil, err
	}
	newKey := o.NewDataKey
	if newKey == nil {
		newKey = func(raw []byte) (storage.DataKey, error) { return NewDataKey(raw) }
	}
	return &Local{master: a, macKey: macKey, newDataKey: newKey}, nil
}

// NewMasterKey returns a fresh random master key.
func NewMasterKey() []byte {
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	return k
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (l *Local) NewDataKey(_ context.Context, ad []byte) (storage.DataKey, []byte, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	k, err := l.newDataKey(raw)
	if err != nil {
		clear(raw)
		return nil, nil, err
	}
	nonce := make([]byte, storage.NonceSize)
	rand.Read(nonce)
	wrapped := append([]byte{wrapVersion}, nonce...)
	wrapped = l.master.Seal(wrapped, nonce, raw, ad)
	clear(raw)
	return k, wrapped, nil
}

// ErrUnwrap means a wrapped key is corrupt, was wrapped under another master
// key, or is presented with the wrong associated data.
var ErrUnwrap = errors.New("keyring: cannot unwrap data key")

func (l *Local) OpenDataKey(_ context.Context, wrapped, ad []byte) (storage.DataKey, error) {
	if len(wrapped) != 1+storage.NonceSize+32+storage.Overhead || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	nonce := wrapped[1 : 1+storage.NonceSize]
	raw, err := l.master.Open(nil, nonce, wrapped[1+storage.NonceSize:], ad)
	if err != nil {
		return nil, ErrUnwrap
	}
	defer clear(raw)
	return l.newDataKey(raw)
}

func (l *Local) MAC(_ context.Context, purpose string, msg []byte) ([]byte, error) {
	if purpose == "" {
		return nil, fmt.Errorf("keyring: MAC needs a purpose: %w", storage.ErrInvalid)
	}
	k, err := hkdf.Key(sha256.New, l.macKey, nil, "pommy/v1/mac/"+purpose, 32)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, k)
	h.Write(msg)
	return h.Sum(nil), nil
}

// DataKey is an AES-256-GCM key in process memory.
type DataKey struct{ aead cipher.AEAD }

// NewDataKey wraps raw key bytes (32) as a storage.DataKey.
func NewDataKey(raw []byte) (*DataKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("keyring: data key must be 32 bytes")
	}
	a, err := newGCM(raw)
	if err != nil {
		return nil, err
	}
	return &DataKey{aead: a}, nil
}

func (k *DataKey) Seal(dst, nonce, plaintext, ad []byte) ([]byte, error) {
	if len(nonce) != storage.NonceSize {
		return nil, fmt.Errorf("keyring: nonce must be %d bytes: %w", storage.NonceSize, storage.ErrInvalid)
	}
	return k.aead.Seal(dst, nonce, plaintext, ad), nil
}

// ErrOpen means a ciphertext failed authentication.
var ErrOpen = errors.New("keyring: message authentication failed")

func (k *DataKey) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(nonce) != storage.NonceSize {
		return nil, fmt.Errorf("keyring: nonce must be %d bytes: %w", storage.NonceSize, storage.ErrInvalid)
	}
	out, err := k.aead.Open(dst, nonce, ciphertext, ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
