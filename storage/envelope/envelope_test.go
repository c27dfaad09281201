// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/wasm/host/local"
)

func platform(t *testing.T) storage.Platform {
	t.Helper()
	p, err := local.Open(context.Background(), local.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p.Platform
}

func TestSealBindsTenantKindAndID(t *testing.T) {
	ctx := context.Background()
	p := platform(t)
	k := envelope.New(p)
	for _, tn := range []string{"t_a", "t_b"} {
		if err := k.Ensure(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	sealed, err := k.Seal(ctx, "t_a", "note.title", "n_1", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	// A fresh keyring (a new request) opens it: the key comes from SQL.
	pt, err := envelope.New(p).Open(ctx, "t_a", "note.title", "n_1", sealed)
	if err != nil || string(pt) != "secret" {
		t.Fatalf("open: %q %v", pt, err)
	}
	for _, c := range []struct{ tenant, kind, id string }{
		{"t_b", "note.title", "n_1"}, {"t_a", "note.body", "n_1"}, {"t_a", "note.title", "n_2"},
	} {
		if _, err := k.Open(ctx, c.tenant, c.kind, c.id, sealed); !errors.Is(err, envelope.ErrCorrupt) {
			t.Errorf("opened under %v: %v", c, err)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(ctx, "t_a", "note.title", "n_1", sealed); !errors.Is(err, envelope.ErrCorrupt) {
		t.Errorf("tampered value opened: %v", err)
	}
}

func TestShredMakesDataUnreadableAtOnce(t *testing.T) {
	ctx := context.Background()
	p := platform(t)
	k := envelope.New(p)
	k.Ensure(ctx, "t_a")
	sealed, _ := k.Seal(ctx, "t_a", "x", "1", []byte("gone soon"))
	if err := envelope.New(p).Shred(ctx, "t_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.New(p).Open(ctx, "t_a", "x", "1", sealed); !errors.Is(err, envelope.ErrShredded) {
		t.Fatalf("after shred: %v", err)
	}
	// Sealing for a shredded tenant must not quietly make a new key.
	if _, err := envelope.New(p).Seal(ctx, "t_a", "x", "2", []byte("new")); !errors.Is(err, envelope.ErrShredded) {
		t.Fatalf("seal after shred: %v", err)
	}
}

func TestStreamRoundTripAndTamper(t *testing.T) {
	ctx := context.Background()
	p := platform(t)
	k := envelope.New(p)
	k.Ensure(ctx, "t_a")
	for _, n := range []int{0, 1, envelope.ChunkSize - 1, envelope.ChunkSize, envelope.ChunkSize + 1, 3*envelope.ChunkSize + 17} {
		plain := make([]byte, n)
		rand.Read(plain)
		r, err := k.SealReader(ctx, "t_a", "att", "n_1", bytes.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(sealed)) != envelope.SealedSize(int64(n)) {
			t.Fatalf("n=%d: sealed %d bytes, SealedSize says %d", n, len(sealed), envelope.SealedSize(int64(n)))
		}
		open := func(b []byte, tenant, id string) ([]byte, error) {
			r, err := k.OpenReader(ctx, tenant, "att", id, bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		}
		got, err := open(sealed, "t_a", "n_1")
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: round trip failed: %v", n, err)
		}
		if _, err := open(sealed, "t_a", "n_2"); !errors.Is(err, envelope.ErrCorrupt) {
			t.Errorf("n=%d: opened under another id: %v", n, err)
		}
		bad := bytes.Clone(sealed)
		bad[len(bad)/2] ^= 0x40
		if _, err := open(bad, "t_a", "n_1"); !errors.Is(err, envelope.ErrCorrupt) {
			t.Errorf("n=%d: flipped bit not detected: %v", n, err)
		}
		if n > envelope.ChunkSize {
			// Dropping the final chunk must be caught: the previous chunk
			// was not sealed as the last one.
			cut := sealed[:1+7+envelope.ChunkSize+storage.Overhead]
			if _, err := open(cut, "t_a", "n_1"); !errors.Is(err, envelope.ErrCorrupt) {
				t.Errorf("n=%d: truncation not detected: %v", n, err)
			}
		}
	}
}

// TestStreamHandOff checks the two hooks through which a home seals or
// opens a stream where its bytes are: what a store builds from Unsealed is
// byte for byte what the sealing reader yields, and an opener that accepts
// replaces the generic opening.
func TestStreamHandOff(t *testing.T) {
	ctx := context.Background()
	k := envelope.New(platform(t))
	k.Ensure(ctx, "t_a")
	plain := make([]byte, 3*envelope.ChunkSize+5)
	rand.Read(plain)
	r, err := k.SealReader(ctx, "t_a", "att", "n_1", bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	src, ok := r.(envelope.PlaintextSource)
	if !ok {
		t.Fatal("SealReader's reader is not a PlaintextSource")
	}
	sp, _, ok := src.Unsealed()
	if !ok {
		t.Fatal("Unsealed refused an unread reader")
	}
	elsewhere, err := envelope.SealStream(sp, bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(elsewhere)
	want, _ := io.ReadAll(r) // Unsealed left the reader usable
	if !bytes.Equal(got, want) || len(want) == 0 {
		t.Fatalf("SealStream from Unsealed's parameters differs from the reader (%d vs %d bytes)", len(got), len(want))
	}
	if _, _, ok := src.Unsealed(); ok {
		t.Error("Unsealed accepted a reader that has been read")
	}

	// An opener that accepts gets the stream's parameters; one that
	// declines leaves OpenReader to open the stream itself.
	for _, accept := range []bool{true, false} {
		o := &fakeOpener{r: bytes.NewReader(want), accept: accept}
		pt, err := k.OpenReader(ctx, "t_a", "att", "n_1", o)
		if err != nil {
			t.Fatal(err)
		}
		if accept {
			if pt != io.Reader(o) || !bytes.Equal(o.got.Prefix, want[1:1+envelope.PrefixSize]) {
				t.Fatalf("accepting opener: reader %T, prefix %x", pt, o.got.Prefix)
			}
			continue
		}
		if b, err := io.ReadAll(pt); err != nil || !bytes.Equal(b, plain) {
			t.Fatalf("declining opener: %v", err)
		}
	}
}

type fakeOpener struct {
	r      io.Reader
	accept bool
	got    envelope.StreamParams
}

func (o *fakeOpener) Read(p []byte) (int, error) { return o.r.Read(p) }

func (o *fakeOpener) OpenSealed(p envelope.StreamParams) (io.Reader, bool) {
	o.got = p
	return o, o.accept
}
