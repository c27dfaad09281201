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
