package passwords

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func newHasher(t testing.TB) *Hasher {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestContract(t *testing.T) {
	storagetest.Run(t, storagetest.PasswordsSuite(newHasher(t)))
}

// The reference implementation's argon2id test vector (phc-winner-argon2
// src/test.c: t=2, m=2^16, p=1, "password", "somesalt"), so the library
// computes real argon2id. Its 8-byte salt is outside what Decode accepts,
// so it is checked on the library directly.
func TestReferenceVector(t *testing.T) {
	got := hex.EncodeToString(argon2.IDKey([]byte("password"), []byte("somesalt"), 2, 1<<16, 1, 32))
	if want := "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"; got != want {
		t.Fatalf("argon2id reference vector: %s, want %s", got, want)
	}
}

func TestEncodeDecode(t *testing.T) {
	salt := []byte("0123456789abcdef")
	hash := []byte("0123456789abcdef0123456789abcdef")
	enc := Encode(Default, salt, hash)
	if want := "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"; enc != want {
		t.Fatalf("Encode = %s, want %s", enc, want)
	}
	p, s, h, err := Decode(enc)
	if err != nil || p != Default || string(s) != string(salt) || string(h) != string(hash) {
		t.Fatalf("Decode = %+v %q %q %v", p, s, h, err)
	}
	// The largest parameters still decode, and fit Decode's length bound.
	big := Encode(Params{Memory: MaxMemory, Time: MaxTime, Threads: MaxThreads}, salt, hash)
	if _, _, _, err := Decode(big); err != nil {
		t.Fatalf("Decode(%s): %v", big, err)
	}
	// Non-canonical trailing bits in the base64.
	bad := strings.Replace(enc, "Zg$", "Zh$", 1)
	if _, _, _, err := Decode(bad); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("non-canonical base64 decoded: %v", err)
	}
}

func TestNeedsRehash(t *testing.T) {
	salt, hash := make([]byte, SaltSize), make([]byte, HashSize)
	for _, tc := range []struct {
		p    Params
		want bool
	}{
		{Default, false},
		{Params{Memory: 64 * 1024, Time: 3, Threads: 1}, false},
		{Params{Memory: 4096, Time: 2, Threads: 1}, true},
		{Params{Memory: 19456, Time: 1, Threads: 1}, true},
	} {
		if got := NeedsRehash(Encode(tc.p, salt, hash)); got != tc.want {
			t.Errorf("NeedsRehash(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if !NeedsRehash("garbage") {
		t.Errorf("NeedsRehash of garbage is false")
	}
	h, err := New(Options{Params: Params{Memory: 32 * 1024, Time: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !h.NeedsRehash(Encode(Default, salt, hash)) {
		t.Errorf("a stronger hasher does not want Default hashes rehashed")
	}
}

func TestNewRefusesWeakParams(t *testing.T) {
	for _, p := range []Params{{Memory: 1024, Time: 2, Threads: 1}, {Memory: 19456, Time: 1, Threads: 1}, {Memory: 19456, Time: 2}, {Memory: MaxMemory + 1, Time: 2, Threads: 1}} {
		if _, err := New(Options{Params: p}); err == nil {
			t.Errorf("New accepted %+v", p)
		}
	}
}

// A hash with lower (legacy) parameters still verifies: the caller then
// sees NeedsRehash and stores a new one.
func TestVerifiesLegacyParams(t *testing.T) {
	salt := []byte("0123456789abcdef")
	p := Params{Memory: 4096, Time: 1, Threads: 2}
	enc := Encode(p, salt, argon2.IDKey([]byte("pw"), salt, p.Time, p.Memory, p.Threads, HashSize))
	ok, err := newHasher(t).Verify(context.Background(), enc, []byte("pw"))
	if err != nil || !ok {
		t.Fatalf("Verify legacy = %v %v", ok, err)
	}
}

func TestCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newHasher(t).Hash(ctx, []byte("pw")); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a cancelled context: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(Default, make([]byte, SaltSize), make([]byte, HashSize)))
	f.Add("$argon2id$v=19$m=262144,t=10,p=4$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, hash, err := Decode(s)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalid) {
				t.Fatalf("error not wrapping ErrInvalid: %v", err)
			}
			return
		}
		if p.Memory > MaxMemory || p.Time > MaxTime || p.Threads > MaxThreads || p.Time < 1 || p.Threads < 1 || p.Memory < 8*uint32(p.Threads) {
			t.Fatalf("Decode accepted %+v", p)
		}
		// Strict: what decodes is exactly its canonical encoding.
		if enc := Encode(p, salt, hash); enc != s {
			t.Fatalf("Decode accepted a non-canonical form:\n%q\n%q", s, enc)
		}
	})
}

// BenchmarkHash measures one argon2id hash with the default parameters on
// this machine (the native baseline for docs/decisions.md).
func BenchmarkHash(b *testing.B) {
	h := newHasher(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, []byte("correct horse battery staple")); err != nil {
			b.Fatal(err)
		}
	}
}
