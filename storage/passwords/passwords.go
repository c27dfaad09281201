// Package passwords is the native argon2id implementation of
// storage.Passwords, shared by the homes that compute it themselves: the
// local host (natively, for the guest through the ABI) and the edge worker
// (in js/wasm, where nothing faster is available).
//
// Hashes use the PHC string format that libsodium, the reference argon2 tool
// and most password libraries read and write:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with the salt and hash in standard base64 without padding. The default
// parameters are OWASP's first recommendation for argon2id (19 MiB, two
// passes, one lane) with a 16-byte salt and a 32-byte hash.
//
// Verify parses strictly: it refuses anything but argon2id version 19,
// parameters beyond what this package would ever spend (more than 256 MiB,
// ten passes or four lanes, so a planted hash cannot make one login cost
// gigabytes), a salt that is not 16 bytes or a hash that is not 32, and
// non-canonical numbers or base64. Such strings are errors wrapping
// storage.ErrInvalid, never a quiet false.
package passwords

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"pommy.ai/edge/storage"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
}

// Default is what Hash uses: at least 19 MiB, 2 passes, 1 lane.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// Sizes and limits of the encoded form.
const (
	SaltSize = 16
	HashSize = 32

	// MaxMemory, MaxTime and MaxThreads bound the parameters Verify accepts.
	MaxMemory  = 256 * 1024 // KiB: 256 MiB
	MaxTime    = 10
	MaxThreads = 4

	// MaxPassword bounds the password, in bytes. It is far beyond any
	// policy (which belongs to the application) and only stops a request
	// from feeding megabytes into the hash.
	MaxPassword = 4096
)

const (
	prefix  = "$argon2id$v=19$"
	version = 19
)

// b64 is PHC's base64: the standard alphabet without padding, with the
// unused bits of the last character required to be zero (one encoding per
// value).
var b64 = base64.RawStdEncoding.Strict()

// Hasher implements storage.Passwords.
type Hasher struct {
	params Params
	// sem bounds the hashes computed at once: each holds Params.Memory of
	// memory and a core for tens of milliseconds.
	sem chan struct{}
}

// Options configure a Hasher.
type Options struct {
	// Params are the parameters of new hashes; zero means Default. They
	// must not be below Default.
	Params Params
	// Concurrency bounds the hashes computed at once; 0 means GOMAXPROCS.
	Concurrency int
}

// New returns a Hasher.
func New(o Options) (*Hasher, error) {
	p := o.Params
	if p == (Params{}) {
		p = Default
	}
	if p.Memory < Default.Memory || p.Time < Default.Time || p.Threads < 1 ||
		p.Memory > MaxMemory || p.Time > MaxTime || p.Threads > MaxThreads {
		return nil, fmt.Errorf("passwords: parameters %+v outside [%+v, m=%d t=%d p=%d]", p, Default, MaxMemory, MaxTime, MaxThreads)
	}
	n := o.Concurrency
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: p, sem: make(chan struct{}, n)}, nil
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the PHC string of password under a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password []byte) (string, error) {
	if len(password) > MaxPassword {
		return "", fmt.Errorf("%w: password over %d bytes", storage.ErrInvalid, MaxPassword)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	salt := make([]byte, SaltSize)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("passwords: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	sum := argon2.IDKey(password, salt, h.params.Time, h.params.Memory, h.params.Threads, HashSize)
	h.release()
	return Encode(h.params, salt, sum), nil
}

// Verify reports whether password matches encoded, comparing the hashes in
// constant time. A malformed or out-of-bounds encoded string is an error
// wrapping storage.ErrInvalid.
func (h *Hasher) Verify(ctx context.Context, encoded string, password []byte) (bool, error) {
	p, salt, want, err := Decode(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPassword {
		return false, fmt.Errorf("%w: password over %d bytes", storage.ErrInvalid, MaxPassword)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	got := argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded should be replaced by a new Hash of
// the same password (after a successful Verify): it is malformed, or its
// parameters are below this Hasher's.
func (h *Hasher) NeedsRehash(encoded string) bool { return needsRehash(encoded, h.params) }

// NeedsRehash is Hasher.NeedsRehash against Default. It only parses, so it
// is cheap in every home (the guest calls it without crossing the ABI).
func NeedsRehash(encoded string) bool { return needsRehash(encoded, Default) }

func needsRehash(encoded string, cur Params) bool {
	p, _, _, err := Decode(encoded)
	return err != nil || p.Memory < cur.Memory || p.Time < cur.Time || p.Threads < cur.Threads
}

// Encode formats a PHC string.
func Encode(p Params, salt, hash []byte) string {
	var b strings.Builder
	b.Grow(len(prefix) + 32 + b64.EncodedLen(len(salt)) + b64.EncodedLen(len(hash)))
	b.WriteString(prefix)
	b.WriteString("m=")
	b.WriteString(strconv.FormatUint(uint64(p.Memory), 10))
	b.WriteString(",t=")
	b.WriteString(strconv.FormatUint(uint64(p.Time), 10))
	b.WriteString(",p=")
	b.WriteString(strconv.FormatUint(uint64(p.Threads), 10))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(salt))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(hash))
	return b.String()
}

// Decode parses a PHC argon2id string strictly (see the package comment).
func Decode(encoded string) (p Params, salt, hash []byte, err error) {
	bad := func(format string, a ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: password hash: "+format, append([]any{storage.ErrInvalid}, a...)...)
	}
	// Longest valid form: prefix, "m=262144,t=10,p=4$", 22 + 1 + 43.
	if len(encoded) > 128 {
		return bad("%d bytes is too long", len(encoded))
	}
	rest, ok := strings.CutPrefix(encoded, prefix)
	if !ok {
		return bad("not an argon2id v=19 PHC string")
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return bad("want params$salt$hash")
	}
	kv := strings.Split(parts[0], ",")
	if len(kv) != 3 {
		return bad("want m=,t=,p=")
	}
	var vals [3]uint64
	for i, name := range [3]string{"m=", "t=", "p="} {
		digits, ok := strings.CutPrefix(kv[i], name)
		if !ok {
			return bad("parameter %d is not %s", i+1, name)
		}
		if vals[i], ok = decimal(digits); !ok {
			return bad("parameter %s%q is not a canonical decimal", name, digits)
		}
	}
	m, t, th := vals[0], vals[1], vals[2]
	switch {
	case th < 1 || th > MaxThreads:
		return bad("p=%d outside 1..%d", th, MaxThreads)
	case t < 1 || t > MaxTime:
		return bad("t=%d outside 1..%d", t, MaxTime)
	case m < 8*th || m > MaxMemory:
		return bad("m=%d outside %d..%d", m, 8*th, MaxMemory)
	}
	// encoding/base64 skips \r and \n even in strict mode; PHC has neither.
	if !alphabet(parts[1]) || !alphabet(parts[2]) {
		return bad("salt or hash has a character outside unpadded base64")
	}
	if salt, err = b64.DecodeString(parts[1]); err != nil || len(salt) != SaltSize {
		return bad("salt is not %d bytes of unpadded base64", SaltSize)
	}
	if hash, err = b64.DecodeString(parts[2]); err != nil || len(hash) != HashSize {
		return bad("hash is not %d bytes of unpadded base64", HashSize)
	}
	return Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(th)}, salt, hash, nil
}

func alphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// decimal parses PHC's decimal: digits only, no sign, no leading zero, at
// most 10 digits.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

var _ storage.Passwords = (*Hasher)(nil)
