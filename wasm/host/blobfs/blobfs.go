// Package blobfs is the host's storage.Blobs on a local directory.
//
// Layout under the root directory:
//
//	objects/   one file per object, at a path made from its key (see key.go)
//	tmp/       Puts in progress
//
// An object file holds the body followed by a trailer: the object's
// metadata as JSON (key, size, content type, ETag = hex MD5 as S3 and R2
// report it, modification time), the JSON's length and a magic number.
// Body and metadata are therefore written, fsynced and renamed into place
// as one file, so a Put is atomic: a reader sees the old object or the new
// one, never a mix, and a crash at any point leaves the old object intact.
//
// A Put streams the body into a temporary file in tmp/ (same file system as
// objects/, so the rename is atomic), checks the length, fsyncs the file,
// renames it over the object and fsyncs the directory: when Put returns, the
// object survives a host kill or a power cut. A full disk or an I/O error
// (ENOSPC, EDQUOT, EIO, EROFS) fails the Put with storage.ErrUnavailable and
// leaves nothing behind. Temporary files left by a crash are removed when
// the store is next opened (once 15 minutes old).
//
// One process owns a root directory at a time.
package blobfs

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"pommy.ai/edge/storage"
)

// MaxListLimit is the largest page List returns.
const MaxListLimit = 1000

// staleTemp is how long a temporary file must have gone unwritten before
// Open removes it.
const staleTemp = 15 * time.Minute

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// WrapWriter, when set, wraps the writer of every Put's temporary file.
	// Tests use it to inject faults ("disk full" after N bytes).
	WrapWriter func(io.Writer) io.Writer
	// Clock stamps objects' modification times (default: system clock).
	Clock storage.Clock
}

// Store is a storage.Blobs on a directory.
type Store struct {
	objects, tmp string
	opts         Options
}

var _ storage.Blobs = (*Store)(nil)

// Open opens (creating if needed) a store rooted at dir and removes
// temporary files that a crashed process left behind.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = storage.SystemClock{}
	}
	s := &Store{objects: filepath.Join(dir, "objects"), tmp: filepath.Join(dir, "tmp"), opts: opts}
	for _, d := range []string{s.objects, s.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blobfs: open %s: %w", dir, mapErr(err))
		}
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("blobfs: open %s: %w", dir, mapErr(err))
	}
	// A file not written to for a while is left by a crashed Put; one being
	// written (another Store on the same root) keeps a fresh mtime.
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
	return s, nil
}

func (s *Store) path(key string) string {
	return filepath.Join(append([]string{s.objects}, relPath(key)...)...)
}

// trailer layout: JSON metadata, then its length (4 bytes, big-endian), then magic.
var magic = [8]byte{'P', 'O', 'M', 'M', 'Y', 'B', 'v', '1'}

const trailerFixed = 4 + len(magic)

type meta struct {
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	Type     string `json:"type,omitempty"`
	ETag     string `json:"etag"`
	Modified int64  `json:"modified"` // unix nanoseconds
}

func (m meta) info() storage.BlobInfo {
	return storage.BlobInfo{Key: m.Key, Size: m.Size, ContentType: m.Type, ETag: m.ETag, Modified: time.Unix(0, m.Modified).UTC()}
}

// errCorrupt marks an object file that does not parse.
var errCorrupt = errors.New("blobfs: corrupt object file")

// readMeta reads the trailer of an open object file.
func readMeta(f *os.File) (meta, error) {
	st, err := f.Stat()
	if err != nil {
		return meta{}, err
	}
	size := st.Size()
	if size < int64(trailerFixed) {
		return meta{}, errCorrupt
	}
	var fixed [trailerFixed]byte
	if _, err := f.ReadAt(fixed[:], size-int64(trailerFixed)); err != nil {
		return meta{}, err
	}
	if [8]byte(fixed[4:]) != magic {
		return meta{}, errCorrupt
	}
	n := int64(binary.BigEndian.Uint32(fixed[:4]))
	if n > 64<<10 || n > size-int64(trailerFixed) {
		return meta{}, errCorrupt
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-int64(trailerFixed)-n); err != nil {
		return meta{}, err
	}
	var m meta
	if err := json.Unmarshal(buf, &m); err != nil {
		return meta{}, errCorrupt
	}
	if m.Size != size-int64(trailerFixed)-n {
		return meta{}, errCorrupt
	}
	return m, nil
}

func (s *Store) open(key string) (*os.File, meta, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, meta{}, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, meta{}, fmt.Errorf("blobfs: %q: %w", key, mapErr(err))
	}
	m, err := readMeta(f)
	if err == nil && m.Key != key {
		err = errCorrupt
	}
	if err != nil {
		f.Close()
		if errors.Is(err, errCorrupt) {
			return nil, meta{}, fmt.Errorf("blobfs: %q: %w: %w", key, storage.ErrUnavailable, err)
		}
		return nil, meta{}, fmt.Errorf("blobfs: %q: %w", key, mapErr(err))
	}
	return f, m, nil
}

type body struct {
	*io.SectionReader
	f *os.File
}

func (b *body) Close() error { return b.f.Close() }

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	f, m, err := s.open(key)
	if err != nil {
		return nil, storage.BlobInfo{}, err
	}
	return &body{io.NewSectionReader(f, 0, m.Size), f}, m.info(), nil
}

func (s *Store) Head(ctx context.Context, key string) (storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	f, m, err := s.open(key)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	f.Close()
	return m.info(), nil
}

// countWriter counts and hashes what passes through to w.
type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// errWrite marks an error that came from writing the temporary file (as
// opposed to reading the caller's body).
type errWrite struct{ err error }

func (e errWrite) Error() string { return e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts storage.BlobPutOptions) (storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return storage.BlobInfo{}, err
	}
	if size < -1 {
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: size %d: %w", key, size, storage.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	tmp, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: %w", key, mapErr(err))
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	if s.opts.WrapWriter != nil {
		w = s.opts.WrapWriter(w)
	}
	cw := &countWriter{w: w, h: md5.New()}
	if err := copyBody(ctx, cw, r, size); err != nil {
		var we errWrite
		if errors.As(err, &we) {
			return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: writing: %w", key, mapErr(we.err))
		}
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: %w", key, err)
	}
	m := meta{
		Key:      key,
		Size:     cw.n,
		Type:     opts.ContentType,
		ETag:     hex.EncodeToString(cw.h.Sum(nil)),
		Modified: s.opts.Clock.Now().UnixNano(),
	}
	js, _ := json.Marshal(m)
	trailer := append(js, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(trailer[len(js):], uint32(len(js)))
	trailer = append(trailer, magic[:]...)
	if _, err := w.Write(trailer); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: writing: %w", key, mapErr(err))
	}
	if err := tmp.Sync(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: sync: %w", key, mapErr(err))
	}
	if err := tmp.Close(); err != nil {
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: close: %w", key, mapErr(err))
	}
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	dst := s.path(key)
	// A concurrent Delete may remove an empty parent between our mkdir and
	// the rename; then make it again.
	for attempt := 0; ; attempt++ {
		if err := s.mkdirs(filepath.Dir(dst)); err != nil {
			return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: %w", key, mapErr(err))
		}
		err := os.Rename(tmp.Name(), dst)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: %w", key, mapErr(err))
		}
	}
	committed = true
	if err := syncDir(filepath.Dir(dst)); err != nil {
		// The object is in place but its directory entry may not be durable.
		return storage.BlobInfo{}, fmt.Errorf("blobfs: put %q: sync dir: %w", key, mapErr(err))
	}
	return m.info(), nil
}

// copyBody copies exactly size bytes (any number when size is -1) from r to
// w, checking ctx between chunks. A body shorter or longer than size is
// refused with ErrInvalid.
func copyBody(ctx context.Context, w io.Writer, r io.Reader, size int64) error {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		want := len(buf)
		if size >= 0 && size-n < int64(want) {
			want = int(size - n)
		}
		if want == 0 {
			// Exactly size bytes read: the body must end here.
			var probe [1]byte
			k, err := io.ReadFull(r, probe[:])
			if k > 0 {
				return fmt.Errorf("body longer than the declared %d bytes: %w", size, storage.ErrInvalid)
			}
			if err != nil && err != io.EOF {
				return fmt.Errorf("reading body: %w", err)
			}
			return nil
		}
		k, rerr := r.Read(buf[:want])
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return errWrite{err}
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			if size >= 0 && n != size {
				return fmt.Errorf("body of %d bytes, declared %d: %w", n, size, storage.ErrInvalid)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("reading body: %w", rerr)
		}
	}
}

// mkdirs makes dir and its missing parents below the objects directory,
// fsyncing each parent that gained an entry.
func (s *Store) mkdirs(dir string) error {
	if dir == s.objects {
		return nil
	}
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	if err := s.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("blobfs: delete %q: %w", key, mapErr(err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blobfs: delete %q: sync dir: %w", key, mapErr(err))
	}
	// Remove directories left empty; stop at the first that is not.
	for dir := filepath.Dir(p); dir != s.objects && strings.HasPrefix(dir, s.objects); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

type candidate struct {
	key  string // "" when the path does not spell it (hashed segment)
	path string
}

// List walks the directory that holds the prefix's complete segments,
// so its cost grows with the number of objects under that directory.
func (s *Store) List(ctx context.Context, prefix, cursor string, limit int) (storage.BlobList, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			return storage.BlobList{}, fmt.Errorf("blobfs: bad cursor: %w", storage.ErrInvalid)
		}
		after = string(b)
	}
	// Directory of the complete segments of the prefix; the rest must match
	// the start of a name in it.
	dir := s.objects
	keyDir := ""
	partial := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		keyDir = prefix[:i+1]
		partial = prefix[i+1:]
		for _, seg := range strings.Split(prefix[:i], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return storage.BlobList{Objects: []storage.BlobInfo{}}, nil // no valid key has this prefix
			}
			dir = filepath.Join(dir, escapeSegment(seg)+dirSuffix)
		}
	}
	var cands []candidate
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return storage.BlobList{Objects: []storage.BlobInfo{}}, nil
		}
		return storage.BlobList{}, fmt.Errorf("blobfs: list: %w", mapErr(err))
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return storage.BlobList{}, err
		}
		name := e.Name()
		var base string
		isDir := strings.HasSuffix(name, dirSuffix) && e.IsDir()
		switch {
		case isDir:
			base = strings.TrimSuffix(name, dirSuffix)
		case strings.HasSuffix(name, blobSuffix) && e.Type().IsRegular():
			base = strings.TrimSuffix(name, blobSuffix)
		default:
			continue
		}
		seg, known := unescapeSegment(base)
		if known && !strings.HasPrefix(seg, partial) {
			continue
		}
		full := filepath.Join(dir, name)
		if !isDir {
			k := ""
			if known {
				k = keyDir + seg
			}
			cands = append(cands, candidate{k, full})
			continue
		}
		kd := ""
		if known {
			kd = keyDir + seg + "/"
		}
		if err := walk(ctx, full, kd, known, &cands); err != nil {
			return storage.BlobList{}, fmt.Errorf("blobfs: list: %w", mapErr(err))
		}
	}
	// Resolve keys the paths do not spell, then filter, sort and page.
	type item struct {
		key  string
		path string
		m    *meta
	}
	var items []item
	for _, c := range cands {
		it := item{key: c.key, path: c.path}
		if it.key == "" {
			m, err := metaAt(c.path)
			if err != nil {
				continue // vanished or corrupt: not listed
			}
			it.key, it.m = m.Key, &m
		}
		if strings.HasPrefix(it.key, prefix) && it.key > after {
			items = append(items, it)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })
	out := storage.BlobList{Objects: []storage.BlobInfo{}}
	for _, it := range items {
		if len(out.Objects) == limit {
			out.Cursor = base64.RawURLEncoding.EncodeToString([]byte(out.Objects[limit-1].Key))
			break
		}
		m := it.m
		if m == nil {
			mm, err := metaAt(it.path)
			if err != nil {
				continue // deleted since the walk, or corrupt
			}
			m = &mm
		}
		out.Objects = append(out.Objects, m.info())
	}
	return out, nil
}

func walk(ctx context.Context, dir, keyDir string, known bool, out *[]candidate) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by a concurrent Delete
		}
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		full := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, dirSuffix) && e.IsDir():
			seg, ok := unescapeSegment(strings.TrimSuffix(name, dirSuffix))
			if err := walk(ctx, full, keyDir+seg+"/", known && ok, out); err != nil {
				return err
			}
		case strings.HasSuffix(name, blobSuffix) && e.Type().IsRegular():
			seg, ok := unescapeSegment(strings.TrimSuffix(name, blobSuffix))
			k := ""
			if known && ok {
				k = keyDir + seg
			}
			*out = append(*out, candidate{k, full})
		}
	}
	return nil
}

func metaAt(path string) (meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return meta{}, err
	}
	defer f.Close()
	return readMeta(f)
}

// mapErr wraps a file system error with the storage sentinel it means.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO),
		errors.Is(err, syscall.EROFS), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.EMFILE),
		errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
	}
	return err
}
