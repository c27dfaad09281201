package sqlite

import (
	"context"
	"errors"
	"testing"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

// The contract suite must be able to fail: broken variants of the adapter
// are run through it and the cases that guard each property must notice.

// nonAtomic runs a batch statement by statement.
type nonAtomic struct{ *DB }

func (n nonAtomic) Batch(ctx context.Context, stmts []storage.Stmt) ([]storage.Result, error) {
	var out []storage.Result
	for _, s := range stmts {
		r, err := n.Exec(ctx, s.Query, s.Args...)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// unmapped hides the storage sentinels.
type unmapped struct{ *DB }

func strip(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(err.Error())
}

func (u unmapped) Exec(ctx context.Context, q string, a ...any) (storage.Result, error) {
	r, err := u.DB.Exec(ctx, q, a...)
	return r, strip(err)
}

func (u unmapped) Batch(ctx context.Context, s []storage.Stmt) ([]storage.Result, error) {
	r, err := u.DB.Batch(ctx, s)
	return r, strip(err)
}

func (u unmapped) Query(ctx context.Context, q string, a ...any) (*storage.Rows, error) {
	r, err := u.DB.Query(ctx, q, a...)
	return r, strip(err)
}

// blobAsText hands back blobs as strings (a classic adapter bug).
type blobAsText struct{ *DB }

func (b blobAsText) Exec(ctx context.Context, q string, a ...any) (storage.Result, error) {
	for i, v := range a {
		if x, ok := v.([]byte); ok {
			a[i] = string(x)
		}
	}
	return b.DB.Exec(ctx, q, a...)
}

func failed(t *testing.T, s storagetest.Suite) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range storagetest.Report(s) {
		if !r.Passed {
			out[r.Name] = true
		}
	}
	return out
}

func TestSuiteCatchesBrokenAdapters(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(*DB) storage.SQL
		must []string
	}{
		{"non-atomic batch", func(d *DB) storage.SQL { return nonAtomic{d} }, []string{"BatchAtomicOnConflict", "BatchAtomicOnSyntaxError"}},
		{"errors not mapped", func(d *DB) storage.SQL { return unmapped{d} }, []string{"UniqueViolationIsConflict", "BatchAtomicOnConflict", "ForeignKeysEnforced", "UnsupportedArgType"}},
		{"blobs bound as text", func(d *DB) storage.SQL { return blobAsText{d} }, []string{"StorageClasses", "NullEmptyAndZero"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failed(t, storagetest.SQLSuite(tc.db(open(t))))
			for _, name := range tc.must {
				if !got[name] {
					t.Errorf("case %s passed against a broken adapter (%s)", name, tc.name)
				}
			}
		})
	}
}
