//go:build js && wasm

// These tests need a JavaScript runtime with WebCrypto. Run them in Node.js
// (≥ 20) with the Go distribution's wrapper:
//
//	GOOS=js GOARCH=wasm go test -exec="$(go env GOROOT)/lib/wasm/go_js_wasm_exec" ./worker/webcrypto/
package webcrypto

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"syscall/js"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/storage/storagetest"
)

func rawKey() []byte {
	raw := make([]byte, 32)
	rand.Read(raw)
	return raw
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// keys returns the same raw key as Go's data key, an all-WebCrypto one and
// the hybrid the worker uses.
func keys(t *testing.T) (goKey, wcKey, hybrid storage.DataKey) {
	t.Helper()
	raw := rawKey()
	g, err := keyring.NewDataKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	w, err := WithThreshold(0)(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewDataKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return g, w, h
}

var sizes = []int{0, 1, 15, 16, 17, 1000,
	Threshold - 17, Threshold - 16, Threshold - 1, Threshold, Threshold + 1, Threshold + 16,
	ImportThreshold - 1, ImportThreshold, ImportThreshold + 1, 64 << 10, 1 << 20}

// TestInterop: for the same key, nonce and associated data, WebCrypto, Go
// and the hybrid seal to the same bytes, and each opens what the others
// sealed.
func TestInterop(t *testing.T) {
	goKey, wcKey, hybrid := keys(t)
	impls := []struct {
		name string
		k    storage.DataKey
	}{{"go", goKey}, {"webcrypto", wcKey}, {"hybrid", hybrid}}
	for _, size := range sizes {
		for _, ad := range [][]byte{nil, {}, []byte("tenant:t1|stream|att|a_1")} {
			pt := randBytes(size)
			nonce := randBytes(storage.NonceSize)
			var want []byte
			for _, s := range impls {
				ct, err := s.k.Seal(nil, nonce, pt, ad)
				if err != nil {
					t.Fatalf("%d bytes, %s seal: %v", size, s.name, err)
				}
				if want == nil {
					want = ct
				} else if !bytes.Equal(ct, want) {
					t.Fatalf("%d bytes, ad %q: %s sealed differently from go", size, ad, s.name)
				}
				for _, o := range impls {
					got, err := o.k.Open(nil, nonce, ct, ad)
					if err != nil {
						t.Fatalf("%d bytes, ad %q: sealed by %s, %s cannot open: %v", size, ad, s.name, o.name, err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("%d bytes: sealed by %s, %s opened different bytes", size, s.name, o.name)
					}
				}
			}
		}
	}
}

// TestOpenFailuresAreErrOpen: on the WebCrypto path every authentication
// failure is keyring.ErrOpen, as on Go's.
func TestOpenFailuresAreErrOpen(t *testing.T) {
	goKey, wcKey, _ := keys(t)
	for _, size := range []int{0, 100, Threshold, 64 << 10} {
		pt := randBytes(size)
		nonce := randBytes(storage.NonceSize)
		ad := []byte("ad")
		ct, err := goKey.Seal(nil, nonce, pt, ad)
		if err != nil {
			t.Fatal(err)
		}
		flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
		cases := map[string]func() ([]byte, error){
			"first byte flipped": func() ([]byte, error) { return wcKey.Open(nil, nonce, flip(ct, 0), ad) },
			"tag flipped":        func() ([]byte, error) { return wcKey.Open(nil, nonce, flip(ct, len(ct)-1), ad) },
			"wrong ad":           func() ([]byte, error) { return wcKey.Open(nil, nonce, ct, []byte("ae")) },
			"no ad":              func() ([]byte, error) { return wcKey.Open(nil, nonce, ct, nil) },
			"wrong nonce":        func() ([]byte, error) { return wcKey.Open(nil, flip(nonce, 3), ct, ad) },
			"truncated":          func() ([]byte, error) { return wcKey.Open(nil, nonce, ct[:len(ct)-1], ad) },
			"extended":           func() ([]byte, error) { return wcKey.Open(nil, nonce, append(bytes.Clone(ct), 0), ad) },
			"shorter than a tag": func() ([]byte, error) { return wcKey.Open(nil, nonce, ct[:storage.Overhead-1], ad) },
			"other key": func() ([]byte, error) {
				other, _ := WithThreshold(0)(rawKey())
				return other.Open(nil, nonce, ct, ad)
			},
		}
		for name, open := range cases {
			if out, err := open(); !errors.Is(err, keyring.ErrOpen) || out != nil {
				t.Errorf("%d bytes, %s: got %d bytes and %v, want keyring.ErrOpen", size, name, len(out), err)
			}
		}
	}
}

func TestBadNonce(t *testing.T) {
	_, wcKey, _ := keys(t)
	for _, n := range []int{0, 11, 13} {
		if _, err := wcKey.Seal(nil, make([]byte, n), randBytes(Threshold), nil); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Seal with a %d-byte nonce: %v, want ErrInvalid", n, err)
		}
		if _, err := wcKey.Open(nil, make([]byte, n), randBytes(Threshold+16), nil); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Open with a %d-byte nonce: %v, want ErrInvalid", n, err)
		}
	}
}

// TestAppendsToDst: both directions append to dst and leave its prefix
// alone, including in place (dst = plaintext[:0] or ciphertext[:0]) and into
// spare capacity.
func TestAppendsToDst(t *testing.T) {
	goKey, wcKey, _ := keys(t)
	size := 8 << 10
	pt := randBytes(size)
	nonce := randBytes(storage.NonceSize)
	want, _ := goKey.Seal(nil, nonce, pt, nil)

	prefix := []byte("header:")
	for _, capacity := range []int{len(prefix), len(prefix) + size + storage.Overhead, 1 << 20} {
		dst := append(make([]byte, 0, capacity), prefix...)
		ct, err := wcKey.Seal(dst, nonce, pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ct, append(bytes.Clone(prefix), want...)) {
			t.Fatalf("cap %d: Seal did not append the sealed bytes to dst", capacity)
		}
		out, err := wcKey.Open(append(make([]byte, 0, capacity), "out:"...), nonce, ct[len(prefix):], nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, append([]byte("out:"), pt...)) {
			t.Fatalf("cap %d: Open did not append the plaintext to dst", capacity)
		}
	}

	// In place, as cipher.AEAD allows.
	buf := make([]byte, size, size+storage.Overhead)
	copy(buf, pt)
	ct, err := wcKey.Seal(buf[:0], nonce, buf, nil)
	if err != nil || !bytes.Equal(ct, want) {
		t.Fatalf("in-place Seal: %v, equal %v", err, bytes.Equal(ct, want))
	}
	out, err := wcKey.Open(ct[:0], nonce, ct, nil)
	if err != nil || !bytes.Equal(out, pt) {
		t.Fatalf("in-place Open: %v, equal %v", err, bytes.Equal(out, pt))
	}

	// A failed Open leaves dst's bytes alone.
	dst := []byte("keep")
	if _, err := wcKey.Open(dst, nonce, append(bytes.Clone(want[:len(want)-1]), want[len(want)-1]^1), nil); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("tampered: %v", err)
	}
	if string(dst) != "keep" {
		t.Fatalf("a failed Open changed dst: %q", dst)
	}
}

// TestImportIsLazy: the worker's key stays in Go until a message of
// ImportThreshold bytes imports it into WebCrypto (then clearing its copy of
// the key bytes); from then on messages from Threshold up use WebCrypto.
func TestImportIsLazy(t *testing.T) {
	raw := rawKey()
	k, err := newDataKey(raw, Threshold, ImportThreshold)
	if err != nil {
		t.Fatal(err)
	}
	clear(raw) // as the custodian does: the key must have its own copy
	nonce := randBytes(storage.NonceSize)
	seal := func(n int) []byte {
		t.Helper()
		ct, err := k.Seal(nil, nonce, randBytes(n), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	open := func(ct []byte) {
		t.Helper()
		if _, err := k.Open(nil, nonce, ct, nil); err != nil {
			t.Fatal(err)
		}
	}
	open(seal(Threshold - 1))
	open(seal(ImportThreshold - 1))
	if k.raw == nil || !k.key.IsUndefined() || k.webCalls.Load() != 0 {
		t.Fatalf("messages below ImportThreshold imported the key into WebCrypto (%d calls)", k.webCalls.Load())
	}
	kept := k.raw
	open(seal(ImportThreshold))
	if k.webCalls.Load() != 2 {
		t.Fatalf("a message of ImportThreshold bytes: %d WebCrypto calls for a seal and an open, want 2", k.webCalls.Load())
	}
	if k.raw != nil {
		t.Fatal("the key bytes were kept after the import")
	}
	if !bytes.Equal(kept, make([]byte, 32)) {
		t.Fatal("the Go copy of the key bytes was not cleared after the import")
	}
	if k.key.Type() != js.TypeObject || k.key.Get("type").String() != "secret" {
		t.Fatalf("after a large message the CryptoKey is %v", k.key)
	}
	if k.key.Get("extractable").Bool() {
		t.Fatal("the CryptoKey is extractable")
	}
	open(seal(Threshold))
	if k.webCalls.Load() != 4 {
		t.Fatalf("once imported, a message of Threshold bytes did not use WebCrypto")
	}
	open(seal(Threshold - 1))
	if k.webCalls.Load() != 4 {
		t.Fatalf("a message below Threshold used WebCrypto")
	}

	never, err := newDataKey(rawKey(), Never, Never)
	if err != nil {
		t.Fatal(err)
	}
	if never.raw != nil {
		t.Fatal("a Go-only key keeps a copy of the key bytes")
	}
}

// TestConcurrentFirstUse: goroutines racing to the first large message
// import once and all succeed.
func TestConcurrentFirstUse(t *testing.T) {
	goKey, _, hybrid := keys(t)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			pt := randBytes(ImportThreshold + i)
			nonce := randBytes(storage.NonceSize)
			ct, err := hybrid.Seal(nil, nonce, pt, nil)
			if err == nil {
				var out []byte
				out, err = goKey.Open(nil, nonce, ct, nil)
				if err == nil && !bytes.Equal(out, pt) {
					err = fmt.Errorf("goroutine %d: wrong plaintext", i)
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if k := hybrid.(*DataKey); k.webCalls.Load() != 8 || !k.imported.Load() || k.raw != nil {
		t.Errorf("after 8 large seals: %d WebCrypto calls, imported %v", k.webCalls.Load(), k.imported.Load())
	}
}

// TestKeysContract runs the storage.Keys contract against the custodian as
// the worker builds it, and with every message sent to WebCrypto.
func TestKeysContract(t *testing.T) {
	for name, nk := range map[string]func([]byte) (storage.DataKey, error){
		"hybrid":    NewDataKey,
		"webcrypto": WithThreshold(0),
	} {
		t.Run(name, func(t *testing.T) {
			master := keyring.NewMasterKey()
			k, err := keyring.NewWith(master, keyring.Options{NewDataKey: nk})
			if err != nil {
				t.Fatal(err)
			}
			storagetest.Run(t, storagetest.KeysSuite(k))

			// A key wrapped here unwraps in a plain Go custodian, and what
			// it seals there opens here.
			plain, _ := keyring.New(master)
			ctx := context.Background()
			dk, wrapped, err := k.NewDataKey(ctx, []byte("tenant:t1"))
			if err != nil {
				t.Fatal(err)
			}
			gk, err := plain.OpenDataKey(ctx, wrapped, []byte("tenant:t1"))
			if err != nil {
				t.Fatal(err)
			}
			pt := randBytes(64 << 10)
			nonce := randBytes(storage.NonceSize)
			ct, err := gk.Seal(nil, nonce, pt, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := dk.Open(nil, nonce, ct, nil); err != nil || !bytes.Equal(out, pt) {
				t.Fatalf("open in the worker's custodian what Go sealed: %v", err)
			}
		})
	}
}
