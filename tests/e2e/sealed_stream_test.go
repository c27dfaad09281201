package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"path"
	"sync/atomic"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/wasm/host/local"
)

// TestAttachmentSealedByHostIsTheGenericStream checks the host's native
// sealing of attachments against the generic envelope code, both ways: an
// attachment the guest uploads is sealed by the host (it reaches the blob
// store as envelope.SealStream's reader, not as sealed bytes from the guest)
// and opens natively with envelope.OpenReader; one sealed natively with
// envelope.SealReader downloads through the guest.
func TestAttachmentSealedByHostIsTheGenericStream(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var plat storage.Platform
			spy := &putSpy{}
			h := startHome(t, homeOptions{perRequest: m.perRequest, platform: func(p *local.Platform) {
				spy.Blobs = p.Blobs
				p.Blobs = spy
				plat = p.Platform
			}})
			ch := newChat(t, h, "Sealed Co")
			tenant, mid := ch.tenant, ch.send(t, h, "a file follows")
			auth := []string{"Authorization", "Bearer " + ch.key}
			plain := make([]byte, 5*envelope.ChunkSize+123)
			rand.Read(plain)

			spy.sealedInHost.Store(0)
			if r := h.do(t, "PUT", attachmentPath(ch.conv, mid), bytes.NewReader(plain), auth...); r.status != 201 {
				t.Fatalf("put attachment: %v", r)
			}
			if spy.sealedInHost.Load() != 1 {
				t.Error("the attachment was not sealed by the host")
			}
			ctx := context.Background()
			// The one blob of the message, under the tenant's prefix; its
			// stream is bound to the message and the upload.
			list, err := plat.Blobs.List(ctx, "t/"+tenant+"/messages/"+mid+"/", "", 0)
			if err != nil || len(list.Objects) != 1 {
				t.Fatalf("blobs of the message: %+v %v", list, err)
			}
			blobKey := list.Objects[0].Key
			ad := mid + "/" + path.Base(blobKey)
			rc, _, err := plat.Blobs.Get(ctx, blobKey)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := envelope.New(plat).OpenReader(ctx, tenant, "message.attachment", ad, rc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(pt)
			rc.Close()
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("host-sealed attachment opened natively: %d bytes, %v", len(got), err)
			}

			// The other way: sealed natively, same length (the row's
			// size is the response's Content-Length).
			rand.Read(plain)
			sr, err := envelope.New(plat).SealReader(ctx, tenant, "message.attachment", ad, bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := spy.Blobs.Put(ctx, blobKey, sr, envelope.SealedSize(int64(len(plain))), storage.BlobPutOptions{}); err != nil {
				t.Fatal(err)
			}
			if r := h.do(t, "GET", attachmentPath(ch.conv, mid), nil, auth...); r.status != 200 || !bytes.Equal(r.body, plain) {
				t.Fatalf("natively sealed attachment through the guest: %d, %d bytes", r.status, len(r.body))
			}
		})
	}
}

// putSpy counts puts whose body is the host's sealing reader.
type putSpy struct {
	storage.Blobs
	sealedInHost atomic.Int32
}

func (s *putSpy) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.BlobPutOptions) (storage.BlobInfo, error) {
	if _, ok := r.(envelope.PlaintextSource); ok {
		s.sealedInHost.Add(1)
	}
	return s.Blobs.Put(ctx, key, r, size, opts)
}

// TestRepeatedLargeAttachmentsOnOneInstance uploads and downloads a 16 MiB
// attachment several times through a single pooled instance. Before the
// guest streamed without per-chunk garbage, the fifth round ran the guest
// out of its 512 MiB of linear memory ("fatal error: out of memory").
func TestRepeatedLargeAttachmentsOnOneInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("moves ~200 MB through the guest")
	}
	h := startHome(t, homeOptions{pool: 1})
	ch := newChat(t, h, "Big Co")
	auth := []string{"Authorization", "Bearer " + ch.key}
	data := make([]byte, 16<<20)
	rand.Read(data)
	for i := range 6 {
		// Attachments are written once: a message per round.
		mid := ch.send(t, h, fmt.Sprintf("round %d", i+1))
		if r := h.do(t, "PUT", attachmentPath(ch.conv, mid), bytes.NewReader(data), auth...); r.status != 201 {
			t.Fatalf("round %d: put: %v", i+1, r)
		}
		if r := h.do(t, "GET", attachmentPath(ch.conv, mid), nil, auth...); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("round %d: get: %d, %d bytes", i+1, r.status, len(r.body))
		}
	}
	if s := h.host.Stats(); s.Traps != 0 || s.Discarded != 0 {
		t.Errorf("instances trapped or discarded: %+v", s)
	}
}
