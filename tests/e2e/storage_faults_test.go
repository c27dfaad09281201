package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
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
	key := createTenant(t, h, "S3 Co")
	auth := []string{"Authorization", "Bearer " + key, "Content-Type", "application/json"}
	if r := h.do(t, "POST", "/v1/notes", strings.NewReader(`{"title":"kept","body":"on S3"}`), auth...); r.status != 201 {
		t.Fatalf("with S3 up: %v", r)
	}

	s3.Stop()
	r := h.do(t, "POST", "/v1/notes", strings.NewReader(`{"title":"lost","body":"S3 is down"}`), auth...)
	if r.status != 503 || r.errorCode() != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("with S3 down: %v (Retry-After %q)", r, r.header.Get("Retry-After"))
	}
	if err := s3.Restart(); err != nil {
		t.Fatal(err)
	}
	titles := listTitles(t, h, key)
	if len(titles) != 1 || titles[0] != "kept" {
		t.Fatalf("after the outage the notes are %v, want only [kept]", titles)
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
	key := createTenant(t, h, "Full Disk Co")
	auth := []string{"Authorization", "Bearer " + key}
	r := h.do(t, "POST", "/v1/notes", strings.NewReader(`{"title":"t"}`), append(auth, "Content-Type", "application/json")...)
	if r.status != 201 {
		t.Fatalf("create: %v", r)
	}
	var n struct{ ID string }
	json.Unmarshal(r.body, &n)
	old := []byte("the attachment that must survive")
	if r := h.do(t, "PUT", "/v1/notes/"+n.ID+"/attachment", bytes.NewReader(old), auth...); r.status != 200 {
		t.Fatalf("first attachment: %v", r)
	}

	full.Store(true)
	big := make([]byte, 1<<20)
	rand.Read(big)
	r = h.do(t, "PUT", "/v1/notes/"+n.ID+"/attachment", bytes.NewReader(big), auth...)
	if r.status != 503 || r.errorCode() != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("disk full: %v", r)
	}
	full.Store(false)
	if r := h.do(t, "GET", "/v1/notes/"+n.ID+"/attachment", nil, auth...); r.status != 200 || !bytes.Equal(r.body, old) {
		t.Fatalf("after a failed overwrite the attachment is %v, want the old one", r)
	}
	if r := h.do(t, "GET", "/v1/notes/"+n.ID, nil, auth...); r.status != 200 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("the failed upload changed the note: %v", r)
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

func listTitles(t *testing.T, h *home, key string) []string {
	t.Helper()
	r := h.do(t, "GET", "/v1/notes", nil, "Authorization", "Bearer "+key)
	if r.status != 200 {
		t.Fatalf("list: %v", r)
	}
	var l struct{ Notes []struct{ Title string } }
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range l.Notes {
		out = append(out, n.Title)
	}
	return out
}
