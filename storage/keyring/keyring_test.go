package keyring

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func newLocal(t *testing.T) *Local {
	t.Helper()
	l, err := New(NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestContract(t *testing.T) {
	storagetest.Run(t, storagetest.KeysSuite(newLocal(t)))
}

func TestMasterKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte master key was accepted", n)
		}
	}
}

// A data key wrapped under one master key opens under that master key only,
// and the same master key (a restarted host) opens it again.
func TestWrappedKeysBelongToTheirMaster(t *testing.T) {
	ctx := context.Background()
	master := NewMasterKey()
	a, _ := New(master)
	again, _ := New(append([]byte(nil), master...))
	other := newLocal(t)
	k, wrapped, err := a.NewDataKey(ctx, []byte("t1"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, storage.NonceSize)
	ct, _ := k.Seal(nil, nonce, []byte("data"), nil)
	k2, err := again.OpenDataKey(ctx, wrapped, []byte("t1"))
	if err != nil {
		t.Fatalf("same master after restart: %v", err)
	}
	if pt, err := k2.Open(nil, nonce, ct, nil); err != nil || string(pt) != "data" {
		t.Errorf("reopened key: %q, %v", pt, err)
	}
	if _, err := other.OpenDataKey(ctx, wrapped, []byte("t1")); !errors.Is(err, ErrUnwrap) {
		t.Errorf("other master: %v, want ErrUnwrap", err)
	}
	ma, _ := a.MAC(ctx, "api-key", []byte("x"))
	mb, _ := again.MAC(ctx, "api-key", []byte("x"))
	mo, _ := other.MAC(ctx, "api-key", []byte("x"))
	if !bytes.Equal(ma, mb) || bytes.Equal(ma, mo) {
		t.Errorf("MAC must depend on the master key and only on it")
	}
}

func TestSuiteCatchesBrokenCustodian(t *testing.T) {
	failed := map[string]bool{}
	for _, r := range storagetest.Report(storagetest.KeysSuite(ignoreAD{newLocal(t)})) {
		if !r.Passed {
			failed[r.Name] = true
		}
	}
	if !failed["WrappedKeyOpensOnlyWithSameAD"] {
		t.Errorf("a custodian that ignores associated data passed WrappedKeyOpensOnlyWithSameAD")
	}
}

// ignoreAD wraps every data key with empty associated data.
type ignoreAD struct{ *Local }

func (i ignoreAD) NewDataKey(ctx context.Context, _ []byte) (storage.DataKey, []byte, error) {
	return i.Local.NewDataKey(ctx, nil)
}

func (i ignoreAD) OpenDataKey(ctx context.Context, w, _ []byte) (storage.DataKey, error) {
	return i.Local.OpenDataKey(ctx, w, nil)
}

// TestNewWithSuppliesDataKeys: a home's NewDataKey makes every data key,
// fresh or unwrapped, gets a copy of the raw bytes that is cleared after it
// returns, and the wrapped form is the same as New's (the same master key
// unwraps it either way).
func TestNewWithSuppliesDataKeys(t *testing.T) {
	ctx := context.Background()
	master := NewMasterKey()
	plain, err := New(master)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]byte // the slices the custodian handed over
	custom, err := NewWith(master, Options{NewDataKey: func(raw []byte) (storage.DataKey, error) {
		seen = append(seen, raw)
		return NewDataKey(raw)
	}})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, storagetest.KeysSuite(custom))
	n := len(seen)
	if n == 0 {
		t.Fatal("Options.NewDataKey was never called")
	}

	k1, wrapped, err := custom.NewDataKey(ctx, []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := plain.OpenDataKey(ctx, wrapped, []byte("ad"))
	if err != nil {
		t.Fatalf("New's custodian cannot unwrap NewWith's key: %v", err)
	}
	nonce := make([]byte, storage.NonceSize)
	ct, _ := k1.Seal(nil, nonce, []byte("moves between homes"), nil)
	if pt, err := k2.Open(nil, nonce, ct, nil); err != nil || string(pt) != "moves between homes" {
		t.Fatalf("open: %q, %v", pt, err)
	}
	if _, err := custom.OpenDataKey(ctx, wrapped, []byte("ad")); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n+2 {
		t.Fatalf("NewDataKey and OpenDataKey made %d keys through Options.NewDataKey, want 2", len(seen)-n)
	}
	for i, raw := range seen {
		if !bytes.Equal(raw, make([]byte, 32)) {
			t.Errorf("raw key bytes %d were not cleared after the call", i)
		}
	}

	boom := errors.New("boom")
	failing, _ := NewWith(master, Options{NewDataKey: func([]byte) (storage.DataKey, error) { return nil, boom }})
	if _, _, err := failing.NewDataKey(ctx, nil); !errors.Is(err, boom) {
		t.Errorf("NewDataKey: %v, want the option's error", err)
	}
	if _, err := failing.OpenDataKey(ctx, wrapped, []byte("ad")); !errors.Is(err, boom) {
		t.Errorf("OpenDataKey: %v, want the option's error", err)
	}
}
