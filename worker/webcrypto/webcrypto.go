//go:build js && wasm

// Package webcrypto is the edge worker's storage.DataKey: AES-256-GCM that
// runs through the runtime's WebCrypto (crypto.subtle) for large messages and
// through Go's crypto/cipher for small ones.
//
// In the worker Go's AES is software AES compiled to Wasm (about 30 MB/s),
// while WebCrypto is the runtime's native AES-GCM (hundreds of MB/s) behind a
// promise round trip and two copies that cost tens of microseconds per call.
// So small messages (fields, titles) stay in Go and large ones (64 KiB stream
// chunks of attachments and exports) go to WebCrypto; the crossovers,
// Threshold and ImportThreshold, were measured in workerd (docs/edge.md).
//
// Both paths produce the same bytes (AES-GCM ciphertext||16-byte tag, 12-byte
// nonce), so what one seals the other opens, and data sealed here opens in
// every other home. The key custodian (storage/keyring) still wraps and
// unwraps data keys and computes MACs in Go; this package only supplies the
// data keys, through keyring.Options.NewDataKey:
//
//	keyring.NewWith(master, keyring.Options{NewDataKey: webcrypto.NewDataKey})
//
// Seal and Open of a large message wait for a promise, so, like every
// binding call in the worker, they must run on a goroutine, never
// synchronously inside a JavaScript callback.
package webcrypto

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// The measured crossovers (docs/edge.md; workerd, 2 cores). A WebCrypto
// call costs about 60 µs however small the message, Go about 33 µs per KiB,
// and importing a key into WebCrypto about 150–250 µs once per DataKey, that
// is once per request, since the worker starts a fresh runtime per event.
const (
	// Threshold is the plaintext size from which a key already imported
	// into WebCrypto uses it: Go and WebCrypto are even at about 2.5 KiB.
	Threshold = 3 << 10
	// ImportThreshold is the plaintext size from which a message imports
	// the key into WebCrypto: with the import counted, one message breaks
	// even at about 6 KiB. Until a message this large comes, messages
	// between Threshold and ImportThreshold stay in Go.
	ImportThreshold = 8 << 10
)

// Never as a threshold keeps every message in Go; 0 sends every message to
// WebCrypto. Both are for tests and measurements.
const Never = math.MaxInt

// NewDataKey is the worker's data key for 32 raw key bytes, with the
// measured thresholds. It copies raw; the caller may clear it on return.
func NewDataKey(raw []byte) (storage.DataKey, error) {
	return newDataKey(raw, Threshold, ImportThreshold)
}

// WithThreshold returns a NewDataKey that uses WebCrypto for every message
// of at least threshold bytes (0: all of them; Never: none), importing the
// key on the first such message.
func WithThreshold(threshold int) func(raw []byte) (storage.DataKey, error) {
	return WithThresholds(threshold, threshold)
}

// WithThresholds returns a NewDataKey that uses WebCrypto for messages of at
// least threshold bytes once the key is imported, and imports it on the
// first message of at least importAt bytes (raised to threshold if lower).
func WithThresholds(threshold, importAt int) func(raw []byte) (storage.DataKey, error) {
	return func(raw []byte) (storage.DataKey, error) { return newDataKey(raw, threshold, importAt) }
}

// DataKey is an AES-256-GCM key held by Go (a cipher.AEAD) and, from its
// first large message on, by WebCrypto (a non-extractable CryptoKey).
type DataKey struct {
	small               *keyring.DataKey
	threshold, importAt int

	imported atomic.Bool // key is set
	mu       sync.Mutex  // guards raw and key: importing waits for a promise
	raw      []byte      // the key bytes until imported, then nil (cleared)
	key      js.Value    // the CryptoKey once imported

	webCalls atomic.Int64 // messages sealed or opened by WebCrypto (tests)
}

var _ storage.DataKey = (*DataKey)(nil)

var (
	subtle     = js.Global().Get("crypto").Get("subtle")
	uint8Array = js.Global().Get("Uint8Array")
)

func newDataKey(raw []byte, threshold, importAt int) (*DataKey, error) {
	small, err := keyring.NewDataKey(raw)
	if err != nil {
		return nil, err
	}
	threshold = max(threshold, 0)
	k := &DataKey{small: small, threshold: threshold, importAt: max(importAt, threshold)}
	if k.importAt != Never {
		if jsbridge.IsNullish(subtle) {
			return nil, fmt.Errorf("webcrypto: crypto.subtle is not available in this runtime")
		}
		k.raw = append([]byte(nil), raw...)
	}
	return k, nil
}

// cryptoKey imports the key into WebCrypto the first time it is needed, then
// clears the Go copy of the raw bytes and the JavaScript one.
func (k *DataKey) cryptoKey() (js.Value, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.raw == nil {
		return k.key, nil
	}
	rawJS := jsbridge.Uint8Array(k.raw)
	// importKey copies the bytes before it returns its promise
	// (WebCrypto: "get a copy of the buffer source"), so both copies can be
	// cleared at once, whatever the outcome.
	p, err := jsbridge.Call(subtle, "importKey", "raw", rawJS, "AES-GCM", false, jsbridge.NewArray("encrypt", "decrypt"))
	rawJS.Call("fill", 0)
	if err != nil {
		return js.Value{}, fmt.Errorf("webcrypto: importKey: %w", err)
	}
	key, err := jsbridge.Await(context.Background(), p)
	if err != nil {
		return js.Value{}, fmt.Errorf("webcrypto: importKey: %w", err)
	}
	clear(k.raw)
	k.raw = nil
	k.key = key
	k.imported.Store(true)
	return key, nil
}

// web reports whether a message of n plaintext bytes goes to WebCrypto.
func (k *DataKey) web(n int) bool {
	return n >= k.threshold && (n >= k.importAt || k.imported.Load())
}

func (k *DataKey) params(nonce, ad []byte) js.Value {
	p := jsbridge.NewObject()
	p.Set("name", "AES-GCM")
	p.Set("iv", jsbridge.Uint8Array(nonce))
	p.Set("additionalData", jsbridge.Uint8Array(ad)) // empty is the same as none
	p.Set("tagLength", 8*storage.Overhead)
	return p
}

func checkNonce(nonce []byte) error {
	if len(nonce) != storage.NonceSize {
		return fmt.Errorf("webcrypto: nonce must be %d bytes: %w", storage.NonceSize, storage.ErrInvalid)
	}
	return nil
}

// Seal encrypts plaintext and appends ciphertext||tag to dst, like
// cipher.AEAD's Seal (dst may be plaintext[:0]).
func (k *DataKey) Seal(dst, nonce, plaintext, ad []byte) ([]byte, error) {
	if !k.web(len(plaintext)) {
		return k.small.Seal(dst, nonce, plaintext, ad)
	}
	if err := checkNonce(nonce); err != nil {
		return nil, err
	}
	key, err := k.cryptoKey()
	if err != nil {
		return nil, err
	}
	// The plaintext is copied into JavaScript before any output is written,
	// so dst may overlap it.
	k.webCalls.Add(1)
	res, err := jsbridge.CallAwait(context.Background(), subtle, "encrypt", k.params(nonce, ad), key, jsbridge.Uint8Array(plaintext))
	if err != nil {
		return nil, fmt.Errorf("webcrypto: encrypt: %w", err)
	}
	return appendResult(dst, res, len(plaintext)+storage.Overhead)
}

// Open authenticates and decrypts ciphertext||tag and appends the plaintext
// to dst, like cipher.AEAD's Open (dst may be ciphertext[:0]). Any failure to
// authenticate is keyring.ErrOpen, as from Go's path.
func (k *DataKey) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if !k.web(len(ciphertext) - storage.Overhead) {
		return k.small.Open(dst, nonce, ciphertext, ad)
	}
	if err := checkNonce(nonce); err != nil {
		return nil, err
	}
	key, err := k.cryptoKey()
	if err != nil {
		return nil, err
	}
	k.webCalls.Add(1)
	res, err := jsbridge.CallAwait(context.Background(), subtle, "decrypt", k.params(nonce, ad), key, jsbridge.Uint8Array(ciphertext))
	if err != nil {
		if je, ok := err.(*jsbridge.Error); ok && je.Name == "OperationError" {
			return nil, keyring.ErrOpen
		}
		return nil, fmt.Errorf("webcrypto: decrypt: %w", err)
	}
	return appendResult(dst, res, len(ciphertext)-storage.Overhead)
}

// appendResult copies an ArrayBuffer of want bytes onto the end of dst.
func appendResult(dst []byte, buf js.Value, want int) ([]byte, error) {
	u := uint8Array.New(buf)
	if n := u.Get("byteLength").Int(); n != want {
		return nil, fmt.Errorf("webcrypto: got %d bytes from WebCrypto, want %d", n, want)
	}
	out := slices.Grow(dst, want)[:len(dst)+want]
	if want > 0 {
		js.CopyBytesToGo(out[len(dst):], u)
	}
	return out, nil
}
