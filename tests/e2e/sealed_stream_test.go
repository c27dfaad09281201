package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"sync/atomic"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/tests/apitest"
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
			tenant, key := (&apitest.Client{Base: h.url}).Tenant(t, "Sealed Co")
			auth := []string{"Authorization", "Bearer " + key, "Content-Type", "application/json"}
			r := h.do(t, "POST", "/v1/notes", bytes.NewReader([]byte(`{"title":"t","body":"b"}`)), auth...)
			var n struct{ ID string }
			if r.status != 201 || json.Unmarshal(r.body, &n) != nil {
				t.Fatalf("create note: %v", r)
			}
			blobKey := "t/" + tenant + "/notes/" + n.ID + "/attachment"
			plain := make([]byte, 5*envelope.ChunkSize+123)
			rand.Read(plain)

			spy.sealedInHost.Store(0)
			if r := h.do(t, "PUT", "/v1/notes/"+n.ID+"/attachment", bytes.NewReader(plain), auth...); r.status != 200 {
				t.Fatalf("put attachment: %v", r)
			}
			if spy.sealedInHost.Load() != 1 {
				t.Error("the attachment was not sealed by the host")
			}
			ctx := context.Background()
			rc, _, err := plat.Blobs.Get(ctx, blobKey)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := envelope.New(plat).OpenReader(ctx, tenant, "note.attachment", n.ID, rc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(pt)
			rc.Close()
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("host-sealed attachment opened natively: %d bytes, %v", len(got), err)
			}

			// The other way: sealed natively, same length (the row's
			// attachment_size is the response's Content-Length).
			rand.Read(plain)
			sr, err := envelope.New(plat).SealReader(ctx, tenant, "note.attachment", n.ID, bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := spy.Blobs.Put(ctx, blobKey, sr, envelope.SealedSize(int64(len(plain))), storage.BlobPutOptions{}); err != nil {
				t.Fatal(err)
			}
			if r := h.do(t, "GET", "/v1/notes/"+n.ID+"/attachment", nil, auth...); r.status != 200 || !bytes.Equal(r.body, plain) {
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
	_, key := (&apitest.Client{Base: h.url}).Tenant(t, "Big Co")
	auth := []string{"Authorization", "Bearer " + key, "Content-Type", "application/json"}
	r := h.do(t, "POST", "/v1/notes", bytes.NewReader([]byte(`{"title":"t","body":"b"}`)), auth...)
	var n struct{ ID string }
	if r.status != 201 || json.Unmarshal(r.body, &n) != nil {
		t.Fatalf("create note: %v", r)
	}
	data := make([]byte, 16<<20)
	rand.Read(data)
	for i := range 6 {
		if r := h.do(t, "PUT", "/v1/notes/"+n.ID+"/attachment", bytes.NewReader(data), auth...); r.status != 200 {
			t.Fatalf("round %d: put: %v", i+1, r)
		}
		if r := h.do(t, "GET", "/v1/notes/"+n.ID+"/attachment", nil, auth...); r.status != 200 || !bytes.Equal(r.body, data) {
			t.Fatalf("round %d: get: %d, %d bytes", i+1, r.status, len(r.body))
		}
	}
	if s := h.host.Stats(); s.Traps != 0 || s.Discarded != 0 {
		t.Errorf("instances trapped or discarded: %+v", s)
	}
}
