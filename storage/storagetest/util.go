package storagetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// caseTimeout bounds every case so that a hung adapter fails the case
// instead of hanging the run. It is a safety net, not a timing assertion.
const caseTimeout = 2 * time.Minute

func testCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), caseTimeout)
}

// randomHex returns n random bytes as lower-case hex. Suites use it to
// namespace their data so that concurrent and repeated runs (in the same D1
// database, KV namespace or bucket) never see each other's rows, keys or
// objects.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// wantErrIs fails t unless err wraps target.
func wantErrIs(t T, err, target error, what string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: got no error, want one wrapping %v", what, target)
		return
	}
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %q (%T), want one wrapping %v", what, err, err, target)
	}
}

// must fails the case at once on an unexpected error.
func must(t T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// pattern is a deterministic, incompressible-looking byte stream: the
// SHA-256 counter-mode expansion of a seed. Suites use it to produce large
// bodies without holding them in memory.
type pattern struct {
	seed    [32]byte
	counter uint64
	buf     []byte
	left    int64 // bytes still to produce; -1 for endless
}

func newPattern(seed string, n int64) *pattern {
	return &pattern{seed: sha256.Sum256([]byte(seed)), left: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.left != 0 {
		if len(p.buf) == 0 {
			var block [40]byte
			copy(block[:], p.seed[:])
			for i := 0; i < 8; i++ {
				block[32+i] = byte(p.counter >> (8 * i))
			}
			p.counter++
			sum := sha256.Sum256(block[:])
			p.buf = sum[:]
		}
		c := copy(b[n:], p.buf)
		if p.left > 0 && int64(c) > p.left {
			c = int(p.left)
		}
		p.buf = p.buf[c:]
		n += c
		if p.left > 0 {
			p.left -= int64(c)
		}
	}
	return n, nil
}

// patternBytes returns the first n bytes of the pattern for seed.
func patternBytes(seed string, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(newPattern(seed, int64(n)), b); err != nil {
		panic(err)
	}
	return b
}

// patternSum is the SHA-256 of the first n bytes of the pattern for seed.
func patternSum(seed string, n int64) string {
	h := sha256.New()
	if _, err := io.Copy(h, newPattern(seed, n)); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// onlyReader hides every method but Read, so that an adapter cannot learn
// the length or seek (as it could with *bytes.Reader or *os.File).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// errReader yields n bytes of the pattern and then fails with err.
type errReader struct {
	r   io.Reader
	n   int64
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, e.err
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF {
		err = e.err
	}
	return n, err
}

// errInjected is the failure a suite's reader returns midway.
var errInjected = errors.New("storagetest: injected reader failure")

func short(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%x... (%d bytes)", b[:24], len(b))
	}
	return fmt.Sprintf("%x", b)
}
