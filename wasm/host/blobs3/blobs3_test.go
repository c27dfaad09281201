package blobs3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/s3server"
)

func newStore(t *testing.T, srv *s3server.Server, mutate ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Endpoint:     srv.Endpoint,
		Region:       srv.Region,
		Bucket:       srv.Bucket,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		UsePathStyle: true,
		SpoolDir:     t.TempDir(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	srv := s3server.Start(t)
	s := newStore(t, srv)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	// versitygw's posix backend stores each key segment as a file name, so
	// it cannot hold a segment longer than the file system's 255-byte limit;
	// S3 and R2 can. The case runs against the blobfs adapter.
	// For the same reason it cannot hold an object "a" and an object "a/b"
	// at once.
	storagetest.Run(t, storagetest.BlobsSuite(s).Without("LongKeys", "ObjectAndPrefixShareAName"))
}

func TestStoreDownIsUnavailable(t *testing.T) {
	srv := s3server.Start(t)
	s := newStore(t, srv, func(c *Config) { c.MaxAttempts = 2 })
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", strings.NewReader("before"), 6, storage.BlobPutOptions{}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := s.Put(ctx, "k", strings.NewReader("during"), 6, storage.BlobPutOptions{})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("put while down: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("get while down: %v, want ErrUnavailable", err)
	}
	if _, err := s.Head(ctx, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("head while down: %v, want ErrUnavailable", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("delete while down: %v, want ErrUnavailable", err)
	}
	if _, err := s.List(ctx, "", "", 0); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("list while down: %v, want ErrUnavailable", err)
	}
	if err := s.Check(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("check while down: %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "before" {
		t.Errorf("after the outage the object reads %q, want \"before\"", b)
	}
}

func TestBadCredentialsAndBucket(t *testing.T) {
	srv := s3server.Start(t)
	ctx := context.Background()
	bad := newStore(t, srv, func(c *Config) { c.SecretKey = "wrong-secret" })
	if _, err := bad.Put(ctx, "k", strings.NewReader("x"), 1, storage.BlobPutOptions{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("wrong secret: %v, want ErrUnavailable", err)
	}
	nob := newStore(t, srv, func(c *Config) { c.Bucket = "no-such-bucket" })
	if err := nob.Check(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("missing bucket: %v, want ErrUnavailable", err)
	}
	if _, err := New(ctx, Config{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("no bucket: %v", err)
	}
}

// failing5xx answers every request with a server error.
func TestServerErrorsAreUnavailable(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>busy</Message></Error>`)
	}))
	defer srv.Close()
	s, err := New(context.Background(), Config{Endpoint: srv.URL, Bucket: "b", AccessKey: "a", SecretKey: "s", UsePathStyle: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("503 on get: %v", err)
	}
	if _, err := s.Head(ctx, "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("503 on head (no body): %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 1, storage.BlobPutOptions{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("503 on put: %v", err)
	}
	if hits != 3 {
		t.Errorf("%d requests with MaxAttempts 1, want 3", hits)
	}
}

// A body that fails is never sent: the store sees no request at all.
func TestFailedBodyNeverReachesStore(t *testing.T) {
	var puts int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			puts++
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	s, err := New(context.Background(), Config{Endpoint: srv.URL, Bucket: "b", AccessKey: "a", SecretKey: "s", UsePathStyle: true, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("client went away")
	ctx := context.Background()
	_, err = s.Put(ctx, "k", io.MultiReader(bytes.NewReader(make([]byte, 10<<20)), errReader{boom}), -1, storage.BlobPutOptions{})
	if !errors.Is(err, boom) {
		t.Errorf("put with a failing body: %v", err)
	}
	_, err = s.Put(ctx, "k", bytes.NewReader(make([]byte, 100)), 101, storage.BlobPutOptions{})
	if !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("put with a short body: %v", err)
	}
	if puts != 0 {
		t.Errorf("the store received %d PUTs for failed bodies", puts)
	}
	entries, _ := os.ReadDir(s.spoolDir)
	if len(entries) != 0 {
		t.Errorf("spool files left behind: %d", len(entries))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestUnreachableEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := New(context.Background(), Config{Endpoint: "http://" + addr, Bucket: "b", AccessKey: "a", SecretKey: "s", UsePathStyle: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(context.Background(), "k"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("connection refused: %v, want ErrUnavailable", err)
	}
}
