package blobfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func open(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestContract(t *testing.T) {
	s, _ := open(t, Options{})
	storagetest.Run(t, storagetest.BlobsSuite(s))
}

// faultyWriter fails with err once limit bytes have been written.
type faultyWriter struct {
	w     io.Writer
	limit *atomic.Int64
	err   error
}

func (f *faultyWriter) Write(p []byte) (int, error) {
	left := f.limit.Load()
	if int64(len(p)) <= left {
		f.limit.Add(-int64(len(p)))
		return f.w.Write(p)
	}
	n, _ := f.w.Write(p[:left])
	f.limit.Store(0)
	return n, f.err
}

func tmpEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDiskFullLeavesNothingHalfWritten(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		errno syscall.Errno
		after int64
	}{
		{"ENOSPC in the body", syscall.ENOSPC, 100 << 10},
		{"ENOSPC at once", syscall.ENOSPC, 0},
		{"ENOSPC in the trailer", syscall.ENOSPC, 200<<10 + 10},
		{"EIO in the body", syscall.EIO, 4096},
		{"EDQUOT in the body", syscall.EDQUOT, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := &atomic.Int64{}
			limit.Store(1 << 62)
			s, dir := open(t, Options{WrapWriter: func(w io.Writer) io.Writer {
				return &faultyWriter{w: w, limit: limit, err: &fs.PathError{Op: "write", Path: "tmp", Err: tc.errno}}
			}})
			old := bytes.Repeat([]byte("old "), 1000)
			if _, err := s.Put(ctx, "t/doc", bytes.NewReader(old), int64(len(old)), storage.BlobPutOptions{ContentType: "text/old"}); err != nil {
				t.Fatal(err)
			}
			limit.Store(tc.after)
			body := bytes.Repeat([]byte("new!"), 50<<10) // 200 KiB
			for _, key := range []string{"t/doc", "t/fresh"} {
				for _, size := range []int64{int64(len(body)), -1} {
					limit.Store(tc.after)
					_, err := s.Put(ctx, key, bytes.NewReader(body), size, storage.BlobPutOptions{ContentType: "text/new"})
					if !errors.Is(err, storage.ErrUnavailable) {
						t.Errorf("put %s (size %d) on a failing disk: %v, want ErrUnavailable", key, size, err)
					}
					if !errors.Is(err, tc.errno) {
						t.Errorf("put error %v does not carry %v", err, tc.errno)
					}
				}
			}
			rc, info, err := s.Get(ctx, "t/doc")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, old) || info.ContentType != "text/old" {
				t.Errorf("old object damaged: %d bytes, type %q", len(got), info.ContentType)
			}
			if _, err := s.Head(ctx, "t/fresh"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("fresh key after failed puts: %v", err)
			}
			if left := tmpEntries(t, dir); len(left) != 0 {
				t.Errorf("temporary files left behind: %q", left)
			}
			// The disk recovers: writes work again.
			limit.Store(1 << 62)
			if _, err := s.Put(ctx, "t/fresh", bytes.NewReader(body), -1, storage.BlobPutOptions{}); err != nil {
				t.Errorf("put after recovery: %v", err)
			}
		})
	}
}

func TestReaderErrorIsNotUnavailable(t *testing.T) {
	s, dir := open(t, Options{})
	boom := errors.New("client went away")
	_, err := s.Put(context.Background(), "k", io.MultiReader(strings.NewReader("abc"), iotestErr{boom}), -1, storage.BlobPutOptions{})
	if !errors.Is(err, boom) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("reader failure: %v, want the reader's error and not ErrUnavailable", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestOpenRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tmp", "put-123")
	fresh := filepath.Join(dir, "tmp", "put-456")
	os.WriteFile(stale, []byte("half a body"), 0o600)
	os.WriteFile(fresh, []byte("being written"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if left := tmpEntries(t, dir); len(left) != 1 || left[0] != "put-456" {
		t.Errorf("temporary files after open: %q, want only the fresh one", left)
	}
}

func TestCorruptObjectIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, Options{})
	if _, err := s.Put(ctx, "a/b", strings.NewReader("hello"), 5, storage.BlobPutOptions{}); err != nil {
		t.Fatal(err)
	}
	p := s.path("a/b")
	os.WriteFile(p, []byte("truncated"), 0o600)
	if _, _, err := s.Get(ctx, "a/b"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("get of a corrupt object: %v, want ErrUnavailable", err)
	}
	// A file whose trailer names another key (copied by hand) is refused too.
	if _, err := s.Put(ctx, "x", strings.NewReader("x"), 1, storage.BlobPutOptions{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.path("x"))
	os.WriteFile(p, b, 0o600)
	if _, err := s.Head(ctx, "a/b"); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("head of an object holding another key: %v", err)
	}
}

func TestPathsStayInsideRoot(t *testing.T) {
	s, dir := open(t, Options{})
	ctx := context.Background()
	keys := []string{"..a", "a..", "...", "%2E%2E/x", "a\\..\\..\\b", "~/x", "C:/x", "A", "a", "Ab/aB"}
	for _, k := range keys {
		if _, err := s.Put(ctx, k, strings.NewReader(k), -1, storage.BlobPutOptions{}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		p := s.path(k)
		if !strings.HasPrefix(p, filepath.Join(dir, "objects")+string(filepath.Separator)) {
			t.Errorf("key %q maps outside the objects directory: %s", k, p)
		}
		rel, _ := filepath.Rel(filepath.Join(dir, "objects"), p)
		if strings.ContainsAny(rel, "ABCDEFGHIJKLMNOPQRSTUVWXYZ\\:") {
			t.Errorf("key %q maps to %q: upper case or separators in a name", k, rel)
		}
	}
	// Walk the whole root: nothing outside objects/ and tmp/.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && rel != "objects" && rel != "tmp" && !strings.HasPrefix(rel, "objects"+string(filepath.Separator)) {
			t.Errorf("file outside objects/: %s", rel)
		}
		return nil
	})
	l, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Objects) != len(keys) {
		t.Errorf("listed %d objects, want %d", len(l.Objects), len(keys))
	}
}

func TestEscapeSegment(t *testing.T) {
	for _, seg := range []string{"a", "A", "é", "a.b", "x y", strings.Repeat("Z", 500), strings.Repeat("q", 240), strings.Repeat("q", 241)} {
		e := escapeSegment(seg)
		if len(e)+len(blobSuffix) > 255 {
			t.Errorf("escaped %q is %d bytes", seg[:min(len(seg), 10)], len(e))
		}
		if back, ok := unescapeSegment(e); ok && back != seg {
			t.Errorf("unescape(escape(%q)) = %q", seg, back)
		}
	}
	if escapeSegment(strings.Repeat("Z", 500)) == escapeSegment(strings.Repeat("Z", 501)) {
		t.Errorf("long segments collide")
	}
}

func TestEmptyDirectoriesRemoved(t *testing.T) {
	s, dir := open(t, Options{})
	ctx := context.Background()
	s.Put(ctx, "a/b/c/d", strings.NewReader("x"), 1, storage.BlobPutOptions{})
	s.Put(ctx, "a/keep", strings.NewReader("x"), 1, storage.BlobPutOptions{})
	if err := s.Delete(ctx, "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "objects", "a.d"))
	if len(entries) != 1 || entries[0].Name() != "keep.b" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("a/ holds %q after delete, want only keep.b", names)
	}
}

// TestKillKeepsAcknowledgedPuts kills a writer process mid-stream and
// checks that every acknowledged object is whole and that no object is torn.
func TestKillKeepsAcknowledgedPuts(t *testing.T) {
	if os.Getenv("POMMY_BLOBFS_KILL_CHILD") != "" {
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
	cmd.Env = append(os.Environ(), "POMMY_BLOBFS_KILL_CHILD="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int{} // key -> generation
	sc := bufio.NewScanner(out)
	n := 0
	for sc.Scan() {
		var key string
		var gen int
		if _, err := fmt.Sscanf(sc.Text(), "ACK %s %d", &key, &gen); err == nil {
			acked[key] = gen
			if n++; n == 150 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	cmd.Wait()
	if n < 150 {
		t.Fatalf("child acknowledged %d puts before it ended", n)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := s.List(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range l.Objects {
		seen[o.Key] = true
		rc, info, err := s.Get(ctx, o.Key)
		if err != nil {
			t.Errorf("get %q after kill: %v", o.Key, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		gen := -1
		for g := 0; g < 1000 && gen < 0; g++ {
			if bytes.Equal(got, killBody(o.Key, g)) {
				gen = g
			}
		}
		if gen < 0 || int64(len(got)) != info.Size {
			t.Errorf("object %q is torn (%d bytes)", o.Key, len(got))
		}
		if want, ok := acked[o.Key]; ok && gen < want {
			t.Errorf("object %q went back to generation %d after generation %d was acknowledged", o.Key, gen, want)
		}
	}
	for k := range acked {
		if !seen[k] {
			t.Errorf("acknowledged object %q lost", k)
		}
	}
}

func killBody(key string, gen int) []byte {
	seed := sha256.Sum256([]byte(fmt.Sprint(key, gen)))
	r := rand.New(rand.NewChaCha8(seed))
	b := make([]byte, 1000+r.IntN(200<<10))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestKillChild(t *testing.T) {
	dir := os.Getenv("POMMY_BLOBFS_KILL_CHILD")
	if dir == "" {
		t.Skip("helper for TestKillKeepsAcknowledgedPuts")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gens := map[string]int{}
	for i := 0; ; i++ {
		key := fmt.Sprintf("tenant-%d/obj-%d", i%3, i%7)
		gen := gens[key]
		body := killBody(key, gen)
		size := int64(len(body))
		if i%2 == 1 {
			size = -1
		}
		if _, err := s.Put(ctx, key, bytes.NewReader(body), size, storage.BlobPutOptions{}); err != nil {
			t.Fatal(err)
		}
		gens[key] = gen + 1
		fmt.Printf("ACK %s %d\n", key, gen)
	}
}

// leaky writes the object even when the body fails: the suite must notice.
type leaky struct{ *Store }

func (l leaky) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.BlobPutOptions) (storage.BlobInfo, error) {
	var buf bytes.Buffer
	_, rerr := io.Copy(&buf, r)
	info, err := l.Store.Put(ctx, key, &buf, -1, o)
	if rerr != nil {
		return info, rerr
	}
	return info, err
}

// unvalidated skips key validation by escaping bad keys into harmless ones.
type unvalidated struct{ *Store }

func (u unvalidated) fix(k string) string {
	if storage.CheckBlobKey(k) != nil {
		return "fixed/" + fmt.Sprintf("%x", sha256.Sum256([]byte(k)))
	}
	return k
}
func (u unvalidated) Put(ctx context.Context, key string, r io.Reader, size int64, o storage.BlobPutOptions) (storage.BlobInfo, error) {
	return u.Store.Put(ctx, u.fix(key), r, size, o)
}

func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    func(*Store) storage.Blobs
		must []string
	}{
		{"failed put leaks", func(s *Store) storage.Blobs { return leaky{s} }, []string{"FailedPutKeepsPrevious"}},
		{"keys not validated", func(s *Store) storage.Blobs { return unvalidated{s} }, []string{"KeyValidation"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := open(t, Options{})
			failed := map[string]bool{}
			for _, r := range storagetest.Report(storagetest.BlobsSuite(tc.b(s))) {
				if !r.Passed {
					failed[r.Name] = true
				}
			}
			for _, name := range tc.must {
				if !failed[name] {
					t.Errorf("case %s passed against a broken adapter (%s)", name, tc.name)
				}
			}
		})
	}
}
