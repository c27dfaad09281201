package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/wasm/abi"
	"pommy.ai/edge/wasm/host/blobfs"
)

// TestSealedStreamOps checks that a stream the host seals for the guest
// (blob.put_open_sealed) is byte for byte the one the generic chunker makes
// (and so opens in every home), and that a stream sealed by the generic
// chunker opens through read.open_sealed.
func TestSealedStreamOps(t *testing.T) {
	ctx := context.Background()
	keys, err := keyring.New(keyring.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.Open(t.TempDir(), blobfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h.opts.Platform = storage.Platform{Clock: storage.SystemClock{}, Keys: keys, Blobs: blobs}
	inv := h.newInvocation(ctx, "test", time.Now().Add(time.Hour))
	defer inv.cleanup()
	inv.inst = &instance{}
	call := func(op abi.Op, req, resp abi.Message) error {
		t.Helper()
		in, err := abi.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		return abi.DecodeReply(h.dispatch(ctx, inv, op, in), resp)
	}

	// The guest's handle and the same key opened natively.
	ad := []byte("tenant-key ad")
	var nk abi.KeysNewResp
	if err := call(abi.OpKeysNew, &abi.KeysNewReq{AD: ad}, &nk); err != nil {
		t.Fatal(err)
	}
	native, err := keys.OpenDataKey(ctx, nk.Wrapped, ad)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []byte("7bytes!")
	streamAD := []byte("pommy/v1 stream ad")
	params := envelope.StreamParams{Key: native, Prefix: prefix, AD: streamAD}
	seal := abi.SealedStream{Key: nk.Handle, Prefix: prefix, AD: streamAD}

	genericSeal := func(plain []byte) []byte {
		r, err := envelope.SealStream(params, bytes.NewReader(plain))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	genericOpen := func(sealed []byte) ([]byte, error) {
		if len(sealed) < 1+envelope.PrefixSize {
			return nil, envelope.ErrCorrupt
		}
		r, err := envelope.OpenStream(params, bytes.NewReader(sealed[1+envelope.PrefixSize:]))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	// readAll reads a reader handle as the guest does, in reads of max.
	readAll := func(handle uint32, max uint32) ([]byte, error) {
		var out []byte
		for {
			var r abi.ReadResp
			if err := call(abi.OpRead, &abi.ReadReq{Handle: handle, Max: max}, &r); err != nil {
				return out, err
			}
			out = append(out, r.Data...)
			if r.EOF {
				return out, nil
			}
		}
	}

	for _, n := range []int{0, 1, envelope.ChunkSize, envelope.ChunkSize + 1, 3*envelope.ChunkSize + 17, 700_000} {
		plain := make([]byte, n)
		rand.Read(plain)
		key := "t/x/att"

		// Host-sealed put, written in uneven pieces.
		var ph abi.HandleResp
		if err := call(abi.OpBlobPutOpenSealed, &abi.BlobPutOpenSealedReq{Key: key, Size: envelope.SealedSize(int64(n)), Seal: seal}, &ph); err != nil {
			t.Fatal(err)
		}
		for rest, step := plain, 1; len(rest) > 0; step = step*7 + 1000 {
			k := min(step, len(rest))
			if err := call(abi.OpBlobPutWrite, &abi.BlobPutWriteReq{Handle: ph.Handle, Data: rest[:k]}, &abi.Empty{}); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		var info abi.BlobInfo
		if err := call(abi.OpBlobPutCommit, &abi.BlobPutCommitReq{Handle: ph.Handle}, &info); err != nil {
			t.Fatalf("n=%d: commit: %v", n, err)
		}
		stored := readBlob(t, blobs, key)
		if !bytes.Equal(stored, genericSeal(plain)) {
			t.Fatalf("n=%d: the host sealed %d bytes that differ from the generic chunker's", n, len(stored))
		}
		if got, err := genericOpen(stored); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: host-sealed stream does not open generically: %v", n, err)
		}

		// Generic-sealed blob, opened by the host after the guest read
		// the head and some bytes beyond it.
		sealed := genericSeal(plain)
		if _, err := blobs.Put(ctx, key, bytes.NewReader(sealed), int64(len(sealed)), storage.BlobPutOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, ahead := range []uint32{uint32(1 + envelope.PrefixSize), 100, 300_000} {
			var g abi.BlobGetResp
			if err := call(abi.OpBlobGet, &abi.BlobGetReq{Key: key}, &g); err != nil {
				t.Fatal(err)
			}
			var head abi.ReadResp
			if err := call(abi.OpRead, &abi.ReadReq{Handle: g.Handle, Max: ahead}, &head); err != nil {
				t.Fatal(err)
			}
			if err := call(abi.OpReadOpenSealed, &abi.ReadOpenSealedReq{Handle: g.Handle, Seal: seal, Unread: head.Data[1+envelope.PrefixSize:]}, &abi.Empty{}); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(g.Handle, 256<<10)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("n=%d ahead=%d: host open: %d bytes, %v", n, ahead, len(got), err)
			}
			call(abi.OpClose, &abi.CloseReq{Handle: g.Handle}, &abi.Empty{})
		}
	}

	// A tampered stream fails to open in the host too.
	plain := bytes.Repeat([]byte("x"), 200_000)
	sealed := genericSeal(plain)
	sealed[len(sealed)/2] ^= 1
	blobs.Put(ctx, "t/x/bad", bytes.NewReader(sealed), int64(len(sealed)), storage.BlobPutOptions{})
	var g abi.BlobGetResp
	if err := call(abi.OpBlobGet, &abi.BlobGetReq{Key: "t/x/bad"}, &g); err != nil {
		t.Fatal(err)
	}
	var head abi.ReadResp
	call(abi.OpRead, &abi.ReadReq{Handle: g.Handle, Max: 8}, &head)
	if err := call(abi.OpReadOpenSealed, &abi.ReadOpenSealedReq{Handle: g.Handle, Seal: seal}, &abi.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(g.Handle, 1<<20); err == nil {
		t.Error("a tampered stream opened")
	}

	// Bad parameters are refused before anything starts.
	var ph abi.HandleResp
	if err := call(abi.OpBlobPutOpenSealed, &abi.BlobPutOpenSealedReq{Key: "k", Size: -1, Seal: abi.SealedStream{Key: nk.Handle, Prefix: []byte("short")}}, &ph); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("short prefix: %v, want ErrInvalid", err)
	}
	if err := call(abi.OpBlobPutOpenSealed, &abi.BlobPutOpenSealedReq{Key: "k", Size: -1, Seal: abi.SealedStream{Key: 999, Prefix: prefix}}, &ph); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("unknown key handle: %v, want ErrInvalid", err)
	}
	if err := call(abi.OpReadOpenSealed, &abi.ReadOpenSealedReq{Handle: 999, Seal: seal}, &abi.Empty{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("unknown reader: %v, want ErrInvalid", err)
	}
}

func readBlob(t *testing.T, b storage.Blobs, key string) []byte {
	t.Helper()
	rc, _, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
