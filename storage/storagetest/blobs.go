package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"pommy.ai/edge/storage"
)

// BlobsSuite is the contract of storage.Blobs. Objects live under a random
// prefix per case and are deleted at the end.
//
// The key rules every adapter enforces (so that a key that works in one home
// works in all): a key is 1 to MaxBlobKey bytes of valid UTF-8, has no NUL or
// other control characters, does not start with "/", and none of its
// "/"-separated segments is empty, "." or "..".
func BlobsSuite(b storage.Blobs) Suite {
	s := &blobsSuite{b: b, run: randomHex(4)}
	return Suite{Name: "Blobs", Cases: []Case{
		{"GetHeadMissing", s.missing},
		{"PutKnownSize", s.putKnown},
		{"PutUnknownSize", s.putUnknown},
		{"ZeroBytes", s.zeroBytes},
		{"LargeStreamed", s.large},
		{"ContentType", s.contentType},
		{"Overwrite", s.overwrite},
		{"Delete", s.delete},
		{"ListPrefix", s.listPrefix},
		{"ListPagination", s.listPagination},
		{"ObjectAndPrefixShareAName", s.objectAndPrefix},
		{"FailedPutKeepsPrevious", s.failedPut},
		{"SizeMismatchRefused", s.sizeMismatch},
		{"KeyValidation", s.keyValidation},
		{"KeyShapes", s.keyShapes},
		{"LongKeys", s.longKeys},
		{"ConcurrentOverwritesAreWhole", s.concurrentOverwrites},
		{"CancelledContext", s.cancelled},
	}}
}

type blobsSuite struct {
	b   storage.Blobs
	run string
	mu  sync.Mutex
	n   int
}

func (s *blobsSuite) ns(t T, name string) (string, func()) {
	s.mu.Lock()
	s.n++
	p := fmt.Sprintf("storagetest/%s/%d-%s/", s.run, s.n, name)
	s.mu.Unlock()
	return p, func() {
		ctx, cancel := testCtx()
		defer cancel()
		cursor := ""
		for range 100 {
			page, err := s.b.List(ctx, p, cursor, 0)
			if err != nil {
				t.Errorf("cleanup list: %v", err)
				return
			}
			for _, o := range page.Objects {
				if err := s.b.Delete(ctx, o.Key); err != nil {
					t.Errorf("cleanup delete %q: %v", o.Key, err)
				}
			}
			if page.Cursor == "" {
				return
			}
			cursor = page.Cursor
		}
	}
}

func (s *blobsSuite) put(t T, ctx context.Context, key string, body []byte, ct string) storage.BlobInfo {
	t.Helper()
	info, err := s.b.Put(ctx, key, bytes.NewReader(body), int64(len(body)), storage.BlobPutOptions{ContentType: ct})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return info
}

// read gets key and returns its body and info.
func (s *blobsSuite) read(t T, ctx context.Context, key string) ([]byte, storage.BlobInfo) {
	t.Helper()
	rc, info, err := s.b.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return body, info
}

func (s *blobsSuite) wantMissing(t T, ctx context.Context, key, why string) {
	t.Helper()
	rc, _, err := s.b.Get(ctx, key)
	if err == nil {
		rc.Close()
		t.Errorf("%s: get %q succeeded, want ErrNotFound", why, key)
	} else {
		wantErrIs(t, err, storage.ErrNotFound, why+": get")
	}
	_, err = s.b.Head(ctx, key)
	wantErrIs(t, err, storage.ErrNotFound, why+": head")
}

func (s *blobsSuite) wantBody(t T, ctx context.Context, key string, want []byte, why string) storage.BlobInfo {
	t.Helper()
	got, info := s.read(t, ctx, key)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %q holds %s, want %s", why, key, short(got), short(want))
	}
	if info.Size != int64(len(want)) {
		t.Errorf("%s: get info.Size = %d, want %d", why, info.Size, len(want))
	}
	return info
}

func checkInfo(t T, what string, got storage.BlobInfo, key string, size int64) {
	t.Helper()
	if got.Key != key {
		t.Errorf("%s: Key = %q, want %q", what, got.Key, key)
	}
	if got.Size != size {
		t.Errorf("%s: Size = %d, want %d", what, got.Size, size)
	}
	if got.ETag == "" {
		t.Errorf("%s: empty ETag", what)
	}
	if strings.Contains(got.ETag, `"`) {
		t.Errorf("%s: ETag %q is quoted; adapters return the bare value", what, got.ETag)
	}
	if got.Modified.IsZero() {
		t.Errorf("%s: zero Modified time", what)
	}
}

func (s *blobsSuite) missing(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "missing")
	defer done()
	s.wantMissing(t, ctx, p+"never-written", "missing key")
	if err := s.b.Delete(ctx, p+"never-written"); err != nil {
		t.Errorf("delete of a missing key: %v", err)
	}
	if err := s.b.Delete(ctx, p+"no/such/dir/x"); err != nil {
		t.Errorf("delete of a missing nested key: %v", err)
	}
}

func (s *blobsSuite) putKnown(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "known")
	defer done()
	key := p + "doc.bin"
	body := patternBytes("known", 1000)
	info := s.put(t, ctx, key, body, "application/octet-stream")
	checkInfo(t, "put", info, key, 1000)
	head, err := s.b.Head(ctx, key)
	must(t, err, "head")
	checkInfo(t, "head", head, key, 1000)
	got := s.wantBody(t, ctx, key, body, "get")
	checkInfo(t, "get", got, key, 1000)
	if head.ETag != info.ETag || got.ETag != info.ETag {
		t.Errorf("ETags differ: put %q, head %q, get %q", info.ETag, head.ETag, got.ETag)
	}
}

func (s *blobsSuite) putUnknown(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "unknown")
	defer done()
	key := p + "stream.bin"
	const n = 300 << 10
	info, err := s.b.Put(ctx, key, onlyReader{newPattern("unknown", n)}, -1, storage.BlobPutOptions{ContentType: "application/x-test"})
	must(t, err, "put with size -1")
	checkInfo(t, "put", info, key, n)
	s.wantBody(t, ctx, key, patternBytes("unknown", n), "get")
	head, err := s.b.Head(ctx, key)
	must(t, err, "head")
	checkInfo(t, "head", head, key, n)
}

func (s *blobsSuite) zeroBytes(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "zero")
	defer done()
	info, err := s.b.Put(ctx, p+"known", bytes.NewReader(nil), 0, storage.BlobPutOptions{})
	must(t, err, "put 0 bytes with size 0")
	checkInfo(t, "put size 0", info, p+"known", 0)
	info, err = s.b.Put(ctx, p+"unknown", onlyReader{bytes.NewReader(nil)}, -1, storage.BlobPutOptions{})
	must(t, err, "put 0 bytes with size -1")
	checkInfo(t, "put size -1", info, p+"unknown", 0)
	for _, k := range []string{p + "known", p + "unknown"} {
		s.wantBody(t, ctx, k, nil, "empty object")
		h, err := s.b.Head(ctx, k)
		must(t, err, "head")
		checkInfo(t, "head", h, k, 0)
	}
}

// readHash streams key and returns the SHA-256 and length of its body.
func (s *blobsSuite) readHash(t T, ctx context.Context, key string) (string, int64, storage.BlobInfo) {
	t.Helper()
	rc, info, err := s.b.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, rc, make([]byte, 32<<10))
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, info
}

func (s *blobsSuite) large(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "large")
	defer done()
	const n = 5<<20 + 12345
	want := patternSum("large", n)
	for _, tc := range []struct {
		key  string
		size int64
	}{{p + "known", n}, {p + "unknown", -1}} {
		info, err := s.b.Put(ctx, tc.key, onlyReader{newPattern("large", n)}, tc.size, storage.BlobPutOptions{})
		must(t, err, "put "+tc.key)
		checkInfo(t, "put "+tc.key, info, tc.key, n)
		sum, got, ginfo := s.readHash(t, ctx, tc.key)
		if got != n || sum != want {
			t.Errorf("%s: read back %d bytes (sha256 %s), want %d (%s)", tc.key, got, sum[:12], n, want[:12])
		}
		checkInfo(t, "get "+tc.key, ginfo, tc.key, n)
	}
	// Reading only the start and closing must not hang or fail.
	rc, _, err := s.b.Get(ctx, p+"known")
	must(t, err, "get")
	head := make([]byte, 100)
	_, err = io.ReadFull(rc, head)
	must(t, err, "read head")
	must(t, rc.Close(), "close after partial read")
	if !bytes.Equal(head, patternBytes("large", 100)) {
		t.Errorf("first 100 bytes differ")
	}
}

func (s *blobsSuite) contentType(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "ctype")
	defer done()
	for _, ct := range []string{"application/pdf", "text/plain; charset=utf-8", "image/png"} {
		key := p + strings.NewReplacer("/", "-", ";", "", " ", "", "=", "-").Replace(ct)
		info := s.put(t, ctx, key, []byte("x"), ct)
		if info.ContentType != "" && info.ContentType != ct {
			t.Errorf("put info.ContentType = %q, want %q", info.ContentType, ct)
		}
		h, err := s.b.Head(ctx, key)
		must(t, err, "head")
		if h.ContentType != ct {
			t.Errorf("head ContentType = %q, want %q", h.ContentType, ct)
		}
		_, g := s.read(t, ctx, key)
		if g.ContentType != ct {
			t.Errorf("get ContentType = %q, want %q", g.ContentType, ct)
		}
	}
	s.put(t, ctx, p+"none", []byte("x"), "")
	h, err := s.b.Head(ctx, p+"none")
	must(t, err, "head")
	if h.ContentType != "" && h.ContentType != "application/octet-stream" {
		t.Errorf("object stored without a content type reports %q, want \"\" or application/octet-stream", h.ContentType)
	}
}

func (s *blobsSuite) overwrite(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "overwrite")
	defer done()
	key := p + "obj"
	v1 := patternBytes("v1", 4000)
	v2 := []byte("short v2")
	i1 := s.put(t, ctx, key, v1, "text/one")
	i2 := s.put(t, ctx, key, v2, "text/two")
	if i1.ETag == i2.ETag {
		t.Errorf("different contents got the same ETag %q", i1.ETag)
	}
	info := s.wantBody(t, ctx, key, v2, "after overwrite")
	if info.ContentType != "text/two" {
		t.Errorf("after overwrite ContentType = %q, want text/two", info.ContentType)
	}
	if info.ETag != i2.ETag {
		t.Errorf("after overwrite ETag = %q, want %q", info.ETag, i2.ETag)
	}
	l, err := s.b.List(ctx, p, "", 0)
	must(t, err, "list")
	if len(l.Objects) != 1 || l.Objects[0].Size != int64(len(v2)) {
		t.Errorf("after overwrite list = %+v, want one object of %d bytes", l.Objects, len(v2))
	}
}

func (s *blobsSuite) delete(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "delete")
	defer done()
	s.put(t, ctx, p+"a/b/c", []byte("deep"), "")
	s.put(t, ctx, p+"a/keep", []byte("keep"), "")
	must(t, s.b.Delete(ctx, p+"a/b/c"), "delete")
	s.wantMissing(t, ctx, p+"a/b/c", "after delete")
	s.wantBody(t, ctx, p+"a/keep", []byte("keep"), "sibling after delete")
	must(t, s.b.Delete(ctx, p+"a/b/c"), "second delete")
	// Deleting a "directory" prefix deletes nothing.
	must(t, s.b.Delete(ctx, p+"a"), "delete of a prefix that is no object")
	s.wantBody(t, ctx, p+"a/keep", []byte("keep"), "object under a deleted prefix")
	// A key can be re-created where a deeper one was.
	s.put(t, ctx, p+"a/b", []byte("now a leaf"), "")
	s.wantBody(t, ctx, p+"a/b", []byte("now a leaf"), "re-created")
}

func (s *blobsSuite) listPrefix(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "listprefix")
	defer done()
	objs := map[string]int{
		p + "abc":        3,
		p + "abd/x":      5,
		p + "abd/y/z":    7,
		p + "ab":         1,
		p + "b":          2,
		p + "ab-sibling": 4,
		p + "abé":        6,
	}
	for k, n := range objs {
		s.put(t, ctx, k, patternBytes(k, n), "")
	}
	var want []string
	for k := range objs {
		if strings.HasPrefix(k, p+"ab") {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	l, err := s.b.List(ctx, p+"ab", "", 0)
	must(t, err, "list")
	var got []string
	for _, o := range l.Objects {
		got = append(got, o.Key)
		if o.Size != int64(objs[o.Key]) {
			t.Errorf("list: %q Size = %d, want %d", o.Key, o.Size, objs[o.Key])
		}
		if o.ETag == "" {
			t.Errorf("list: %q has no ETag", o.Key)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("list %q = %q, want %q (partial segment prefix, lexical order)", p+"ab", got, want)
	}
	if l.Cursor != "" {
		t.Errorf("complete list returned cursor %q", l.Cursor)
	}
	l, err = s.b.List(ctx, p+"abd/", "", 0)
	must(t, err, "list")
	if len(l.Objects) != 2 || l.Objects[0].Key != p+"abd/x" || l.Objects[1].Key != p+"abd/y/z" {
		t.Errorf("list of a directory prefix = %+v", l.Objects)
	}
	l, err = s.b.List(ctx, p+"zzz", "", 0)
	must(t, err, "list")
	if len(l.Objects) != 0 || l.Cursor != "" {
		t.Errorf("list of an empty prefix = %+v, cursor %q", l.Objects, l.Cursor)
	}
}

// objectAndPrefix: "a" and "a/b" are both objects, as S3 and R2 allow.
func (s *blobsSuite) objectAndPrefix(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "objprefix")
	defer done()
	s.put(t, ctx, p+"a", []byte("leaf"), "")
	s.put(t, ctx, p+"a/b", []byte("below"), "")
	s.put(t, ctx, p+"c/d", []byte("below first"), "")
	s.put(t, ctx, p+"c", []byte("then leaf"), "")
	for k, v := range map[string]string{"a": "leaf", "a/b": "below", "c/d": "below first", "c": "then leaf"} {
		s.wantBody(t, ctx, p+k, []byte(v), "object sharing a name with a prefix")
	}
	l, err := s.b.List(ctx, p, "", 0)
	must(t, err, "list")
	var got []string
	for _, o := range l.Objects {
		got = append(got, strings.TrimPrefix(o.Key, p))
	}
	if strings.Join(got, ",") != "a,a/b,c,c/d" {
		t.Errorf("list = %q, want a, a/b, c, c/d", got)
	}
	must(t, s.b.Delete(ctx, p+"a"), "delete a")
	s.wantBody(t, ctx, p+"a/b", []byte("below"), "a/b after deleting a")
	must(t, s.b.Delete(ctx, p+"c/d"), "delete c/d")
	s.wantBody(t, ctx, p+"c", []byte("then leaf"), "c after deleting c/d")
}

func (s *blobsSuite) listPagination(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "listpage")
	defer done()
	var all []string
	for i := 0; i < 11; i++ {
		k := fmt.Sprintf("%sf%02d", p, i)
		if i%3 == 0 {
			k = fmt.Sprintf("%sf%02d/nested", p, i)
		}
		all = append(all, k)
		s.put(t, ctx, k, []byte{byte(i)}, "")
	}
	sort.Strings(all)
	var got []string
	cursor := ""
	for pages := 1; ; pages++ {
		if pages > 10 {
			t.Fatalf("pagination does not end")
		}
		l, err := s.b.List(ctx, p, cursor, 4)
		must(t, err, "list page")
		if len(l.Objects) > 4 {
			t.Errorf("page of limit 4 has %d objects", len(l.Objects))
		}
		for _, o := range l.Objects {
			got = append(got, o.Key)
		}
		if l.Cursor == "" {
			break
		}
		cursor = l.Cursor
	}
	if strings.Join(got, "|") != strings.Join(all, "|") {
		t.Errorf("paged list = %q, want %q", got, all)
	}
}

func (s *blobsSuite) failedPut(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "failedput")
	defer done()
	key := p + "doc"
	v1 := patternBytes("keep-me", 2000)
	i1 := s.put(t, ctx, key, v1, "text/v1")
	for _, tc := range []struct {
		name string
		size int64
		at   int64
	}{
		{"unknown size, fails at 100 KiB", -1, 100 << 10},
		{"known size, fails at 100 KiB", 1 << 20, 100 << 10},
		{"unknown size, fails at once", -1, 0},
		{"known size, fails one byte short", 4096, 4095},
	} {
		r := &errReader{r: newPattern("broken", 1<<30), n: tc.at, err: errInjected}
		_, err := s.b.Put(ctx, key, r, tc.size, storage.BlobPutOptions{ContentType: "text/broken"})
		if err == nil {
			t.Errorf("%s: put succeeded", tc.name)
		}
		info := s.wantBody(t, ctx, key, v1, tc.name+": previous object")
		if info.ContentType != "text/v1" || info.ETag != i1.ETag {
			t.Errorf("%s: previous object's info changed to %+v", tc.name, info)
		}
		r = &errReader{r: newPattern("broken", 1<<30), n: tc.at, err: errInjected}
		_, err = s.b.Put(ctx, p+"fresh", r, tc.size, storage.BlobPutOptions{})
		if err == nil {
			t.Errorf("%s: put of a fresh key succeeded", tc.name)
		}
		s.wantMissing(t, ctx, p+"fresh", tc.name+": fresh key after a failed put")
	}
	l, err := s.b.List(ctx, p, "", 0)
	must(t, err, "list")
	if len(l.Objects) != 1 {
		t.Errorf("after failed puts list = %+v, want only %q", l.Objects, key)
	}
}

func (s *blobsSuite) sizeMismatch(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "mismatch")
	defer done()
	key := p + "doc"
	v1 := []byte("the original")
	s.put(t, ctx, key, v1, "")
	for _, tc := range []struct {
		name     string
		declared int64
		actual   int
	}{{"reader shorter than size", 1000, 500}, {"reader longer than size", 500, 1000}} {
		_, err := s.b.Put(ctx, key, onlyReader{bytes.NewReader(patternBytes("mm", tc.actual))}, tc.declared, storage.BlobPutOptions{})
		if err == nil {
			t.Errorf("%s: put succeeded", tc.name)
		}
		s.wantBody(t, ctx, key, v1, tc.name+": previous object")
		_, err = s.b.Put(ctx, p+"fresh", onlyReader{bytes.NewReader(patternBytes("mm", tc.actual))}, tc.declared, storage.BlobPutOptions{})
		if err == nil {
			t.Errorf("%s: put of a fresh key succeeded", tc.name)
		}
		s.wantMissing(t, ctx, p+"fresh", tc.name+": fresh key")
	}
	_, err := s.b.Put(ctx, p+"neg", bytes.NewReader(nil), -2, storage.BlobPutOptions{})
	wantErrIs(t, err, storage.ErrInvalid, "put with size -2")
}

func (s *blobsSuite) keyValidation(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "keyvalid")
	defer done()
	bad := []string{
		"",
		"/absolute",
		p + "a/../escape",
		p + "..",
		p + "./here",
		"../" + p,
		p + "nul\x00byte",
		p + "ctl\x01char",
		p + "new\nline",
		p + "double//slash",
		p + "trailing/",
		p + "bad-utf8-\xff\xfe",
		p + strings.Repeat("x", storage.MaxBlobKey+1-len(p)),
	}
	for _, k := range bad {
		_, err := s.b.Put(ctx, k, bytes.NewReader([]byte("x")), 1, storage.BlobPutOptions{})
		wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("put %q", k))
		_, _, err = s.b.Get(ctx, k)
		wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("get %q", k))
		_, err = s.b.Head(ctx, k)
		wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("head %q", k))
		wantErrIs(t, s.b.Delete(ctx, k), storage.ErrInvalid, fmt.Sprintf("delete %q", k))
	}
	l, err := s.b.List(ctx, p, "", 0)
	must(t, err, "list")
	if len(l.Objects) != 0 {
		t.Errorf("refused keys left objects: %+v", l.Objects)
	}
}

func (s *blobsSuite) keyShapes(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "keyshape")
	defer done()
	keys := []string{
		p + "ünïcødé/文件 🎉.txt",
		p + "spaces and %percent% and +plus",
		p + "UPPER",
		p + "upper", // differs from UPPER only by case
		p + ".hidden",
		p + "...dots",
		p + "a.b/c.d",
		p + "back\\slash",
		p + "q?x=1&y=#frag",
		p + "tilde~and'quote\"",
	}
	s.roundTripKeys(t, ctx, p, keys)
}

// longKeys is separate from keyShapes because some S3-compatible servers
// backed by a filesystem (versitygw's posix backend) cannot store a segment
// longer than the filesystem's name limit; R2 and S3 can.
func (s *blobsSuite) longKeys(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "longkey")
	defer done()
	keys := []string{
		p + strings.Repeat("long", 60) + "/" + strings.Repeat("segment", 40), // segments over 255 bytes
		p + strings.Repeat("m", storage.MaxBlobKey-len(p)),                   // exactly MaxBlobKey bytes
		p + strings.Repeat("é", 200),                                         // 400 bytes in one segment
	}
	s.roundTripKeys(t, ctx, p, keys)
}

func (s *blobsSuite) roundTripKeys(t T, ctx context.Context, p string, keys []string) {
	t.Helper()
	for _, k := range keys {
		s.put(t, ctx, k, []byte(k), "")
	}
	for _, k := range keys {
		s.wantBody(t, ctx, k, []byte(k), "key shape")
	}
	l, err := s.b.List(ctx, p, "", 0)
	must(t, err, "list")
	var got []string
	for _, o := range l.Objects {
		got = append(got, o.Key)
	}
	want := append([]string{}, keys...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("list = %q, want %q", got, want)
	}
}

func (s *blobsSuite) concurrentOverwrites(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "concurrent")
	defer done()
	key := p + "contended"
	const writers = 4
	bodies := make(map[string]bool)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		body := patternBytes(fmt.Sprint("writer", w), 256<<10+w)
		bodies[string(body)] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.b.Put(ctx, key, onlyReader{bytes.NewReader(body)}, -1, storage.BlobPutOptions{}); err != nil {
				t.Errorf("concurrent put: %v", err)
			}
		}()
	}
	wg.Wait()
	got, info := s.read(t, ctx, key)
	if !bodies[string(got)] {
		t.Errorf("after concurrent puts the object is none of the bodies written (%d bytes): a torn write", len(got))
	}
	if info.Size != int64(len(got)) {
		t.Errorf("info.Size = %d for a %d-byte body", info.Size, len(got))
	}
}

func (s *blobsSuite) cancelled(t T) {
	p, done := s.ns(t, "cancel")
	defer done()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.b.Put(ctx, p+"k", bytes.NewReader([]byte("x")), 1, storage.BlobPutOptions{})
	if err == nil {
		t.Errorf("put with a cancelled context succeeded")
	}
	c2, cancel2 := testCtx()
	defer cancel2()
	s.wantMissing(t, c2, p+"k", "after a put with a cancelled context")
}
