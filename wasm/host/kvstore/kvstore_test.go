package kvstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func open(t *testing.T) (*Store, *storagetest.Clock, string) {
	t.Helper()
	clock := storagetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := Open(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clock, path
}

func TestContract(t *testing.T) {
	s, clock, _ := open(t)
	storagetest.Run(t, storagetest.KVSuite(s, clock.Advance))
}

func TestContractWithoutClock(t *testing.T) {
	s, _, _ := open(t)
	storagetest.Run(t, storagetest.KVSuite(s, nil))
}

func TestSweep(t *testing.T) {
	s, clock, _ := open(t)
	ctx := context.Background()
	s.Put(ctx, "a", []byte("1"), storage.KVPutOptions{TTL: time.Minute})
	s.Put(ctx, "b", []byte("2"), storage.KVPutOptions{TTL: time.Hour})
	s.Put(ctx, "c", []byte("3"), storage.KVPutOptions{})
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep removed %d (%v)", n, err)
	}
	at, err := s.ExpiresAt(ctx, "a")
	if err != nil || !at.Equal(clock.Now().Add(time.Minute)) {
		t.Errorf("ExpiresAt(a) = %v, %v", at, err)
	}
	clock.Advance(2 * time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	rows, err := s.db.Query(ctx, "SELECT key FROM kv ORDER BY key")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Len() != 2 || rows.Values[0][0] != "b" || rows.Values[1][0] != "c" {
		t.Errorf("rows after sweep: %v", rows.Values)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, clock, path := open(t)
	ctx := context.Background()
	if err := s.Put(ctx, "k", []byte("v"), storage.KVPutOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v, err := s2.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("after reopen: %q, %v", v, err)
	}
	clock.Advance(2 * time.Hour)
	if _, err := s2.Get(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("TTL lost across reopen: %v", err)
	}
}

func TestInvalidInput(t *testing.T) {
	s, _, _ := open(t)
	ctx := context.Background()
	if err := s.Put(ctx, "bad-\xff", []byte("v"), storage.KVPutOptions{}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("invalid UTF-8 key: %v", err)
	}
	if _, err := s.List(ctx, "p/", "%%%not-base64", 10); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	s, _, _ := open(t)
	s.Close()
	ctx := context.Background()
	if _, err := s.Get(ctx, "k"); err == nil {
		t.Errorf("get on a closed store succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "kv.db"), nil); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("open in a missing directory: %v", err)
	}
}

// brokenTTL ignores TTLs: the suite's expiry cases must catch it.
type brokenTTL struct{ *Store }

func (b brokenTTL) Put(ctx context.Context, k string, v []byte, _ storage.KVPutOptions) error {
	return b.Store.Put(ctx, k, v, storage.KVPutOptions{})
}

// brokenList drops the last key of every page.
type brokenList struct{ *Store }

func (b brokenList) List(ctx context.Context, p, c string, n int) (storage.KVList, error) {
	l, err := b.Store.List(ctx, p, c, n)
	if len(l.Keys) > 1 {
		l.Keys = l.Keys[:len(l.Keys)-1]
	}
	return l, err
}

func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	for _, tc := range []struct {
		name string
		kv   func(*Store) storage.KV
		must []string
	}{
		{"ttl ignored", func(s *Store) storage.KV { return brokenTTL{s} }, []string{"TTL", "TTLRaisedToMinimum", "OverwriteReplacesTTL"}},
		{"list drops keys", func(s *Store) storage.KV { return brokenList{s} }, []string{"ListPrefix", "ListPagination", "ListDefaultLimit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, clock, _ := open(t)
			failed := map[string]bool{}
			for _, r := range storagetest.Report(storagetest.KVSuite(tc.kv(s), clock.Advance)) {
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
