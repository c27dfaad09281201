package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"pommy.ai/edge/tests/s3server"
	"pommy.ai/edge/wasm/host/blobfs"
	"pommy.ai/edge/wasm/host/blobs3"
	"pommy.ai/edge/wasm/host/local"
)

// Storage faults seen through the shipped guest: the client gets 503 with
// Retry-After, and nothing the failed request started is left behind.

func TestS3DownIs503AndWritesNothing(t *testing.T) {
	s3 := s3server.Start(t)
	h := startHome(t, homeOptions{local: func(c *local.Config) {
		c.S3 = blobs3.Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket,
			AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, UsePathStyle: true, MaxAttempts: 1}
	}})
	ch := newChat(t, h, "S3 Co")
	auth := []string{"Authorization", "Bearer " + ch.key}
	kept, lost := ch.send(t, h, "kept"), ch.send(t, h, "lost")
	if r := h.do(t, "PUT", attachmentPath(ch.conv, kept), strings.NewReader("on S3"), auth...); r.status != 201 {
		t.Fatalf("with S3 up: %v", r)
	}
	seq := ch.lastSeq(t, h)

	s3.Stop()
	r := h.do(t, "PUT", attachmentPath(ch.conv, lost), strings.NewReader("S3 is down"), auth...)
	if r.status != 503 || r.errorCode() != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("with S3 down: %v (Retry-After %q)", r, r.header.Get("Retry-After"))
	}
	if err := s3.Restart(); err != nil {
		t.Fatal(err)
	}
	// The failed upload attached nothing and logged no event; the
	// attachment made before the outage is intact.
	if r := h.do(t, "GET", attachmentPath(ch.conv, lost), nil, auth...); r.status != 404 {
		t.Fatalf("after the outage the failed upload's message has an attachment: %v", r)
	}
	if got := ch.lastSeq(t, h); got != seq {
		t.Fatalf("the failed upload changed the conversation's log: last_seq %v -> %v", seq, got)
	}
	if r := h.do(t, "GET", attachmentPath(ch.conv, kept), nil, auth...); r.status != 200 || string(r.body) != "on S3" {
		t.Fatalf("after the outage: %v", r)
	}
	// Nothing stands in the way of a retry.
	if r := h.do(t, "PUT", attachmentPath(ch.conv, lost), strings.NewReader("S3 is back"), auth...); r.status != 201 {
		t.Fatalf("retry after the outage: %v", r)
	}
}

func TestDiskFullIs503AndKeepsTheOldAttachment(t *testing.T) {
	var full atomic.Bool
	h := startHome(t, homeOptions{platform: func(p *local.Platform) {
		b, err := blobfs.Open(filepath.Join(t.TempDir(), "blobs"), blobfs.Options{WrapWriter: func(w io.Writer) io.Writer {
			return &diskFullAfter{w: w, full: &full, room: 256 << 10}
		}})
		if err != nil {
			t.Fatal(err)
		}
		p.Blobs = b
	}})
	ch := newChat(t, h, "Full Disk Co")
	auth := []string{"Authorization", "Bearer " + ch.key}
	first, second := ch.send(t, h, "first"), ch.send(t, h, "second")
	old := []byte("the attachment that must survive")
	if r := h.do(t, "PUT", attachmentPath(ch.conv, first), bytes.NewReader(old), auth...); r.status != 201 {
		t.Fatalf("first attachment: %v", r)
	}
	seq := ch.lastSeq(t, h)

	full.Store(true)
	big := make([]byte, 1<<20)
	rand.Read(big)
	r := h.do(t, "PUT", attachmentPath(ch.conv, second), bytes.NewReader(big), auth...)
	if r.status != 503 || r.errorCode() != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("disk full: %v", r)
	}
	full.Store(false)
	if r := h.do(t, "GET", attachmentPath(ch.conv, first), nil, auth...); r.status != 200 || !bytes.Equal(r.body, old) {
		t.Fatalf("after a failed upload the first attachment is %v, want the old one", r)
	}
	if r := h.do(t, "GET", attachmentPath(ch.conv, second), nil, auth...); r.status != 404 {
		t.Fatalf("the failed upload attached something: %v", r)
	}
	if got := ch.lastSeq(t, h); got != seq {
		t.Fatalf("the failed upload changed the conversation's log: last_seq %v -> %v", seq, got)
	}
	if r := h.do(t, "PUT", attachmentPath(ch.conv, second), bytes.NewReader(big), auth...); r.status != 201 {
		t.Fatalf("retry with room on the disk: %v", r)
	}
}

// diskFullAfter fails writes with ENOSPC once room bytes are written, while
// *full is set.
type diskFullAfter struct {
	w    io.Writer
	full *atomic.Bool
	room int
}

func (d *diskFullAfter) Write(p []byte) (int, error) {
	if d.full.Load() {
		if d.room <= 0 {
			return 0, syscall.ENOSPC
		}
		if len(p) > d.room {
			n, _ := d.w.Write(p[:d.room])
			d.room = 0
			return n, syscall.ENOSPC
		}
		d.room -= len(p)
	}
	return d.w.Write(p)
}
