package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"pommy.ai/edge/storage"
)

// KVSuite is the contract of storage.KV. Keys live under a random prefix per
// case and are deleted at the end.
//
// advance moves the adapter's clock forward. It may be nil when the home
// cannot move time (Workers KV): the expiry cases then only check that a
// key with a TTL is readable before it expires.
func KVSuite(kv storage.KV, advance func(time.Duration)) Suite {
	run := randomHex(4)
	s := &kvSuite{kv: kv, advance: advance, run: run}
	return Suite{Name: "KV", Cases: []Case{
		{"GetMissing", s.getMissing},
		{"PutGetOverwriteDelete", s.putGetOverwriteDelete},
		{"DeleteMissing", s.deleteMissing},
		{"BinaryAndEmptyValues", s.binaryValues},
		{"ValueIsCopied", s.valueIsCopied},
		{"KeyValidation", s.keyValidation},
		{"SizeLimits", s.sizeLimits},
		{"ListPrefix", s.listPrefix},
		{"ListPagination", s.listPagination},
		{"ListDefaultLimit", s.listDefaultLimit},
		{"TTL", s.ttl},
		{"TTLRaisedToMinimum", s.ttlRaised},
		{"OverwriteReplacesTTL", s.overwriteTTL},
	}}
}

type kvSuite struct {
	kv      storage.KV
	advance func(time.Duration)
	run     string
	n       int
}

// ns returns a fresh key prefix and a cleanup that deletes everything under it.
func (s *kvSuite) ns(t T, name string) (string, func()) {
	s.n++
	p := fmt.Sprintf("storagetest/%s/%d-%s/", s.run, s.n, name)
	return p, func() {
		ctx, cancel := testCtx()
		defer cancel()
		cursor := ""
		for range 100 {
			page, err := s.kv.List(ctx, p, cursor, 0)
			if err != nil {
				t.Errorf("cleanup list: %v", err)
				return
			}
			for _, k := range page.Keys {
				if err := s.kv.Delete(ctx, k); err != nil {
					t.Errorf("cleanup delete %q: %v", k, err)
				}
			}
			if page.Cursor == "" {
				return
			}
			cursor = page.Cursor
		}
	}
}

func (s *kvSuite) get(t T, ctx context.Context, key string) []byte {
	t.Helper()
	v, err := s.kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v
}

func (s *kvSuite) put(t T, ctx context.Context, key string, v []byte, ttl time.Duration) {
	t.Helper()
	if err := s.kv.Put(ctx, key, v, storage.KVPutOptions{TTL: ttl}); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func (s *kvSuite) wantMissing(t T, ctx context.Context, key, why string) {
	t.Helper()
	v, err := s.kv.Get(ctx, key)
	if err == nil {
		t.Errorf("%s: get %q returned %q, want ErrNotFound", why, key, short(v))
		return
	}
	wantErrIs(t, err, storage.ErrNotFound, why+": get "+key)
}

func (s *kvSuite) getMissing(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "missing")
	defer done()
	s.wantMissing(t, ctx, p+"never-written", "missing key")
}

func (s *kvSuite) putGetOverwriteDelete(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "crud")
	defer done()
	k := p + "key"
	s.put(t, ctx, k, []byte("one"), 0)
	if v := s.get(t, ctx, k); string(v) != "one" {
		t.Errorf("get after put = %q, want \"one\"", v)
	}
	s.put(t, ctx, k, []byte("two, longer"), 0)
	if v := s.get(t, ctx, k); string(v) != "two, longer" {
		t.Errorf("get after overwrite = %q", v)
	}
	s.put(t, ctx, k, []byte("3"), 0)
	if v := s.get(t, ctx, k); string(v) != "3" {
		t.Errorf("get after overwrite with a shorter value = %q", v)
	}
	must(t, s.kv.Delete(ctx, k), "delete")
	s.wantMissing(t, ctx, k, "after delete")
	s.put(t, ctx, k, []byte("again"), 0)
	if v := s.get(t, ctx, k); string(v) != "again" {
		t.Errorf("get after re-put = %q", v)
	}
}

func (s *kvSuite) deleteMissing(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "delmissing")
	defer done()
	if err := s.kv.Delete(ctx, p+"nothing-here"); err != nil {
		t.Errorf("delete of a missing key: %v", err)
	}
	s.put(t, ctx, p+"k", []byte("v"), 0)
	must(t, s.kv.Delete(ctx, p+"k"), "delete")
	if err := s.kv.Delete(ctx, p+"k"); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

func (s *kvSuite) binaryValues(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "binary")
	defer done()
	bin := make([]byte, 512)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	big := patternBytes("kv-big", 1<<20)
	cases := map[string][]byte{
		"empty":   {},
		"binary":  bin,
		"unicode": []byte("héllo 🎉 世界"),
		"big":     big,
	}
	for name, v := range cases {
		s.put(t, ctx, p+name, v, 0)
	}
	for name, want := range cases {
		got, err := s.kv.Get(ctx, p+name)
		if err != nil {
			t.Errorf("get %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s value: got %s, want %s", name, short(got), short(want))
		}
	}
	// Unicode keys.
	uk := p + "ключ/🔑/é"
	s.put(t, ctx, uk, []byte("u"), 0)
	if v := s.get(t, ctx, uk); string(v) != "u" {
		t.Errorf("unicode key: got %q", v)
	}
}

func (s *kvSuite) valueIsCopied(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "copy")
	defer done()
	v := []byte("original")
	s.put(t, ctx, p+"k", v, 0)
	copy(v, "MUTATED!")
	got := s.get(t, ctx, p+"k")
	if string(got) != "original" {
		t.Errorf("the store kept the caller's slice: got %q after the caller changed it", got)
	}
	copy(got, "CHANGED!")
	if again := s.get(t, ctx, p+"k"); string(again) != "original" {
		t.Errorf("changing a returned value changed the store: got %q", again)
	}
}

func (s *kvSuite) keyValidation(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "keys")
	defer done()
	for _, k := range []string{"", ".", ".."} {
		wantErrIs(t, s.kv.Put(ctx, k, []byte("x"), storage.KVPutOptions{}), storage.ErrInvalid, fmt.Sprintf("put with key %q", k))
		_, err := s.kv.Get(ctx, k)
		wantErrIs(t, err, storage.ErrInvalid, fmt.Sprintf("get with key %q", k))
	}
	wantErrIs(t, s.kv.Put(ctx, p+"neg", []byte("x"), storage.KVPutOptions{TTL: -time.Second}), storage.ErrInvalid, "put with a negative TTL")
	s.wantMissing(t, ctx, p+"neg", "after a refused put")
}

func (s *kvSuite) sizeLimits(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "limits")
	defer done()
	exact := p + strings.Repeat("k", storage.MaxKVKey-len(p))
	s.put(t, ctx, exact, []byte("fits"), 0)
	if v := s.get(t, ctx, exact); string(v) != "fits" {
		t.Errorf("key of exactly %d bytes: got %q", storage.MaxKVKey, v)
	}
	long := exact + "k"
	wantErrIs(t, s.kv.Put(ctx, long, []byte("x"), storage.KVPutOptions{}), storage.ErrInvalid, fmt.Sprintf("put with a %d-byte key", len(long)))
	_, err := s.kv.Get(ctx, long)
	wantErrIs(t, err, storage.ErrInvalid, "get with an oversize key")
	wantErrIs(t, s.kv.Delete(ctx, long), storage.ErrInvalid, "delete with an oversize key")

	big := make([]byte, storage.MaxKVValue+1)
	wantErrIs(t, s.kv.Put(ctx, p+"big", big, storage.KVPutOptions{}), storage.ErrInvalid, "put with a value one byte over MaxKVValue")
	s.wantMissing(t, ctx, p+"big", "after an oversize put")
	s.put(t, ctx, p+"max", big[:storage.MaxKVValue], 0)
	if v := s.get(t, ctx, p+"max"); len(v) != storage.MaxKVValue {
		t.Errorf("value of exactly MaxKVValue read back with %d bytes", len(v))
	}
	must(t, s.kv.Delete(ctx, p+"max"), "delete max")
}

func (s *kvSuite) list(t T, ctx context.Context, prefix, cursor string, limit int) storage.KVList {
	t.Helper()
	l, err := s.kv.List(ctx, prefix, cursor, limit)
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return l
}

func (s *kvSuite) listPrefix(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "listprefix")
	defer done()
	want := []string{p + "a/1", p + "a/2", p + "a/10", p + "a/é", p + "a/z/deep"}
	others := []string{p + "b/1", p + "a", p + "A/1", p + "a-1"}
	for _, k := range append(append([]string{}, want...), others...) {
		s.put(t, ctx, k, []byte(k), 0)
	}
	sort.Strings(want) // lexical (byte) order
	l := s.list(t, ctx, p+"a/", "", 0)
	if strings.Join(l.Keys, "|") != strings.Join(want, "|") {
		t.Errorf("list %q = %q, want %q (lexical order, prefix only)", p+"a/", l.Keys, want)
	}
	if l.Cursor != "" {
		t.Errorf("a complete list returned cursor %q", l.Cursor)
	}
	l = s.list(t, ctx, p+"nothing/", "", 0)
	if len(l.Keys) != 0 || l.Cursor != "" {
		t.Errorf("list of an empty prefix = %q, cursor %q", l.Keys, l.Cursor)
	}
	// Deleted keys vanish from the list.
	must(t, s.kv.Delete(ctx, p+"a/2"), "delete")
	l = s.list(t, ctx, p+"a/", "", 0)
	for _, k := range l.Keys {
		if k == p+"a/2" {
			t.Errorf("deleted key %q still listed", k)
		}
	}
}

func (s *kvSuite) listPagination(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "listpage")
	defer done()
	var all []string
	for i := 0; i < 25; i++ {
		k := fmt.Sprintf("%sitem-%02d", p, i)
		all = append(all, k)
		s.put(t, ctx, k, []byte{byte(i)}, 0)
	}
	s.put(t, ctx, p[:len(p)-1]+"zzz-outside", []byte("x"), 0)
	defer s.kv.Delete(ctx, p[:len(p)-1]+"zzz-outside")
	var got []string
	cursor := ""
	pages := 0
	for {
		pages++
		if pages > 10 {
			t.Fatalf("pagination does not end; cursor %q", cursor)
		}
		l := s.list(t, ctx, p, cursor, 10)
		if len(l.Keys) > 10 {
			t.Errorf("page of limit 10 has %d keys", len(l.Keys))
		}
		got = append(got, l.Keys...)
		if l.Cursor == "" {
			break
		}
		if len(l.Keys) == 0 {
			t.Fatalf("empty page with cursor %q", l.Cursor)
		}
		cursor = l.Cursor
	}
	if strings.Join(got, "|") != strings.Join(all, "|") {
		t.Errorf("paged list = %q, want %q (no gaps, no duplicates, in order)", got, all)
	}
	if pages != 3 {
		t.Errorf("25 keys with limit 10 took %d pages, want 3", pages)
	}
}

func (s *kvSuite) listDefaultLimit(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "listdefault")
	defer done()
	for i := 0; i < 120; i++ {
		s.put(t, ctx, fmt.Sprintf("%s%03d", p, i), nil, 0)
	}
	l := s.list(t, ctx, p, "", 0)
	if len(l.Keys) != 120 || l.Cursor != "" {
		t.Errorf("list with limit 0 returned %d keys (cursor %q), want all 120 (the adapter maximum is at least 1000)", len(l.Keys), l.Cursor)
	}
}

func (s *kvSuite) ttl(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "ttl")
	defer done()
	s.put(t, ctx, p+"short", []byte("expiring"), storage.MinKVTTL)
	s.put(t, ctx, p+"forever", []byte("stays"), 0)
	s.put(t, ctx, p+"long", []byte("later"), time.Hour)
	if v := s.get(t, ctx, p+"short"); string(v) != "expiring" {
		t.Errorf("key with a TTL before expiry: got %q", v)
	}
	if l := s.list(t, ctx, p, "", 0); len(l.Keys) != 3 {
		t.Errorf("before expiry list = %q, want 3 keys", l.Keys)
	}
	if s.advance == nil {
		t.Logf("clock cannot be moved here: expiry itself not checked")
		return
	}
	s.advance(storage.MinKVTTL + time.Second)
	s.wantMissing(t, ctx, p+"short", "after its TTL passed")
	if v := s.get(t, ctx, p+"forever"); string(v) != "stays" {
		t.Errorf("key without TTL after time passed: got %q", v)
	}
	if v := s.get(t, ctx, p+"long"); string(v) != "later" {
		t.Errorf("key with a 1h TTL after 61s: got %q", v)
	}
	l := s.list(t, ctx, p, "", 0)
	if strings.Join(l.Keys, "|") != p+"forever|"+p+"long" {
		t.Errorf("after expiry list = %q, want only the live keys", l.Keys)
	}
	s.put(t, ctx, p+"short", []byte("revived"), 0)
	if v := s.get(t, ctx, p+"short"); string(v) != "revived" {
		t.Errorf("put over an expired key: got %q", v)
	}
}

func (s *kvSuite) ttlRaised(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "ttlmin")
	defer done()
	s.put(t, ctx, p+"k", []byte("v"), time.Second)
	if v := s.get(t, ctx, p+"k"); string(v) != "v" {
		t.Errorf("key with a 1s TTL right after put: got %q", v)
	}
	if s.advance == nil {
		t.Logf("clock cannot be moved here: expiry itself not checked")
		return
	}
	s.advance(10 * time.Second)
	if v, err := s.kv.Get(ctx, p+"k"); err != nil || string(v) != "v" {
		t.Errorf("a 1s TTL must be raised to MinKVTTL: 10s later get = %q, %v", v, err)
	}
	s.advance(storage.MinKVTTL)
	s.wantMissing(t, ctx, p+"k", "after MinKVTTL passed")
}

func (s *kvSuite) overwriteTTL(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	p, done := s.ns(t, "ttlover")
	defer done()
	s.put(t, ctx, p+"a", []byte("1"), storage.MinKVTTL)
	s.put(t, ctx, p+"a", []byte("2"), 0) // no TTL: lives forever
	s.put(t, ctx, p+"b", []byte("1"), 0)
	s.put(t, ctx, p+"b", []byte("2"), storage.MinKVTTL) // now expires
	if v := s.get(t, ctx, p+"a"); string(v) != "2" {
		t.Errorf("overwrite: got %q", v)
	}
	if s.advance == nil {
		t.Logf("clock cannot be moved here: expiry itself not checked")
		return
	}
	s.advance(2 * storage.MinKVTTL)
	if v, err := s.kv.Get(ctx, p+"a"); err != nil || string(v) != "2" {
		t.Errorf("a put without TTL must clear the old TTL: got %q, %v", v, err)
	}
	s.wantMissing(t, ctx, p+"b", "a put with a TTL over a permanent key")
}
