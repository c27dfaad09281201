package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pommy.ai/edge/storage"
)

func TestMasterKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, created, err := MasterKey(path)
	if err != nil || !created {
		t.Fatalf("first run: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("master key mode %04o, want 0600", st.Mode().Perm())
	}
	k2, created, err := MasterKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second run: created=%v err=%v same=%v", created, err, bytes.Equal(k1, k2))
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := MasterKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("short"), 0o600)
	if _, _, err := MasterKey(path); err == nil {
		t.Fatal("truncated key accepted")
	}
}

func TestOpenCreatesStoresAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	p, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !p.MasterKeyCreated {
		t.Error("first open did not report a new master key")
	}
	if _, err := p.SQL.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES ('t_x', 'X', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.MasterKeyCreated {
		t.Error("reopen made a new master key")
	}
	rows, err := p.SQL.Query(ctx, `SELECT name FROM tenants WHERE id = 't_x'`)
	if err != nil || rows.Len() != 1 {
		t.Fatalf("row lost across reopen: %v %v", rows, err)
	}
	for _, f := range []string{"pommy.db", "kv.db", "master.key", "blobs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// The local platform has every port, and its limiter knows every name the
// application uses.
func TestOpenHasPasswordsAndLimits(t *testing.T) {
	ctx := context.Background()
	p, err := Open(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Passwords == nil || p.Limiter == nil {
		t.Fatalf("Passwords %v, Limiter %v", p.Passwords, p.Limiter)
	}
	for name := range storage.Limits {
		if d, err := p.Limiter.Allow(ctx, name, "local-test"); err != nil || !d.Allowed {
			t.Errorf("limit %q: %+v %v", name, d, err)
		}
	}
}
