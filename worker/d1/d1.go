//go:build js && wasm

// Package d1 is the edge adapter of storage.SQL on a Cloudflare D1 binding,
// written directly against the binding's JavaScript API: prepare/bind/run
// for Exec, prepare/bind/raw for Query (column order and duplicate column
// names survive), and db.batch for Batch, which D1 runs as one transaction.
//
// Value mapping. Arguments are normalized with storage.NormalizeValue and
// passed as null, number, string or Uint8Array (a BLOB). An int64 beyond
// ±2^53 cannot travel as a JavaScript number without changing, so it is
// refused with storage.ErrInvalid instead of being rounded. Results come
// back as D1 gives them: null → nil, number → float64 (D1 does not say
// whether a number was an INTEGER; storage.Rows.Scan turns an integral float
// into an int64), string → string, blob → []byte.
//
// D1 cannot cancel a statement: when ctx ends, the call returns ctx.Err()
// while the statement may still complete.
package d1

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall/js"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// DB is a D1 database.
type DB struct{ db js.Value }

var _ storage.SQL = (*DB)(nil)

// New binds the D1 database in the worker's environment under binding.
func New(binding string) (*DB, error) {
	v := jsbridge.Binding(binding)
	if v.Type() != js.TypeObject {
		return nil, fmt.Errorf("d1: binding %q is not configured (add a [[d1_databases]] entry to wrangler.toml)", binding)
	}
	return &DB{db: v}, nil
}

// maxSafeInt is the largest integer a float64 (a JavaScript number) holds exactly.
const maxSafeInt = 1<<53 - 1

func toJS(v any) (any, error) {
	n, err := storage.NormalizeValue(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", storage.ErrInvalid, err)
	}
	switch x := n.(type) {
	case nil:
		return js.Null(), nil
	case int64:
		if x > maxSafeInt || x < -maxSafeInt {
			return nil, fmt.Errorf("d1: integer %d does not fit a JavaScript number exactly: %w", x, storage.ErrInvalid)
		}
		return float64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("d1: %v cannot be stored: %w", x, storage.ErrInvalid)
		}
		return x, nil
	case string:
		return x, nil
	case []byte:
		return jsbridge.Uint8Array(x), nil
	}
	return nil, fmt.Errorf("d1: unsupported value %T: %w", v, storage.ErrInvalid)
}

func fromJS(v js.Value) (any, error) {
	switch v.Type() {
	case js.TypeNull, js.TypeUndefined:
		return nil, nil
	case js.TypeNumber:
		return v.Float(), nil
	case js.TypeString:
		return v.String(), nil
	case js.TypeBoolean:
		if v.Bool() {
			return int64(1), nil
		}
		return int64(0), nil
	case js.TypeObject:
		return jsbridge.Bytes(v) // a BLOB: an ArrayBuffer or an array of bytes
	}
	return nil, fmt.Errorf("d1: unexpected result value of type %s", v.Type())
}

func (d *DB) prepare(query string, args []any) (js.Value, error) {
	jsArgs := make([]any, len(args))
	for i, a := range args {
		v, err := toJS(a)
		if err != nil {
			return js.Value{}, fmt.Errorf("d1: argument %d: %w", i+1, err)
		}
		jsArgs[i] = v
	}
	stmt, err := jsbridge.Call(d.db, "prepare", query)
	if err != nil {
		return js.Value{}, mapError(err)
	}
	if len(jsArgs) > 0 {
		if stmt, err = jsbridge.Call(stmt, "bind", jsArgs...); err != nil {
			return js.Value{}, mapError(err)
		}
	}
	return stmt, nil
}

func (d *DB) Exec(ctx context.Context, query string, args ...any) (storage.Result, error) {
	stmt, err := d.prepare(query, args)
	if err != nil {
		return storage.Result{}, err
	}
	res, err := jsbridge.CallAwait(ctx, stmt, "run")
	if err != nil {
		return storage.Result{}, mapError(err)
	}
	return result(res), nil
}

func (d *DB) Query(ctx context.Context, query string, args ...any) (*storage.Rows, error) {
	stmt, err := d.prepare(query, args)
	if err != nil {
		return nil, err
	}
	opts := jsbridge.NewObject()
	opts.Set("columnNames", true)
	raw, err := jsbridge.CallAwait(ctx, stmt, "raw", opts)
	if err != nil {
		return nil, mapError(err)
	}
	rows := &storage.Rows{}
	n := raw.Length()
	if n == 0 {
		return rows, nil // older D1 omits the column row when there are no rows
	}
	cols := raw.Index(0)
	rows.Columns = make([]string, cols.Length())
	for i := range rows.Columns {
		rows.Columns[i] = cols.Index(i).String()
	}
	rows.Values = make([][]any, 0, n-1)
	for r := 1; r < n; r++ {
		jr := raw.Index(r)
		if jr.Length() != len(rows.Columns) {
			return nil, fmt.Errorf("d1: row %d has %d values for %d columns", r-1, jr.Length(), len(rows.Columns))
		}
		row := make([]any, len(rows.Columns))
		for c := range row {
			if row[c], err = fromJS(jr.Index(c)); err != nil {
				return nil, fmt.Errorf("d1: row %d column %q: %w", r-1, rows.Columns[c], err)
			}
		}
		rows.Values = append(rows.Values, row)
	}
	return rows, nil
}

// Batch sends the statements as one db.batch call: D1 runs them in order in
// one transaction and rolls all of them back if any fails.
func (d *DB) Batch(ctx context.Context, stmts []storage.Stmt) ([]storage.Result, error) {
	if len(stmts) == 0 {
		return []storage.Result{}, nil
	}
	arr := jsbridge.NewArray()
	for i, s := range stmts {
		st, err := d.prepare(s.Query, s.Args)
		if err != nil {
			return nil, fmt.Errorf("d1: batch statement %d: %w", i+1, err)
		}
		arr.Call("push", st)
	}
	res, err := jsbridge.CallAwait(ctx, d.db, "batch", arr)
	if err != nil {
		return nil, mapError(err)
	}
	if res.Length() != len(stmts) {
		return nil, fmt.Errorf("d1: batch returned %d results for %d statements", res.Length(), len(stmts))
	}
	out := make([]storage.Result, len(stmts))
	for i := range out {
		out[i] = result(res.Index(i))
	}
	return out, nil
}

func result(res js.Value) storage.Result {
	var r storage.Result
	meta := res.Get("meta")
	if meta.Type() != js.TypeObject {
		return r
	}
	if v := meta.Get("changes"); v.Type() == js.TypeNumber {
		r.RowsAffected = int64(v.Float())
	}
	if v := meta.Get("last_row_id"); v.Type() == js.TypeNumber {
		r.LastInsertID = int64(v.Float())
	}
	return r
}

// Error is a D1 failure, classified with the storage errors where one fits.
type Error struct {
	Kind error // storage.ErrConflict, ErrInvalid, ErrUnavailable, or nil
	Err  error // the JavaScript error
}

func (e *Error) Error() string { return "d1: " + e.Err.Error() }

// Unwrap lets errors.Is see both the kind and the JavaScript error.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// mapError classifies a D1 error by its message, the only thing D1 gives:
// a broken uniqueness or foreign-key rule is ErrConflict (what callers
// settle races with), a NOT NULL or CHECK failure and a statement D1 refuses
// outright are ErrInvalid, D1's transient failures are ErrUnavailable, and
// anything else (a syntax error, a missing table) is a plain error.
func mapError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var je *jsbridge.Error
	if !errors.As(err, &je) {
		return err
	}
	msg := je.Message
	var kind error
	switch {
	case strings.Contains(msg, "UNIQUE constraint failed"), strings.Contains(msg, "FOREIGN KEY constraint failed"),
		strings.Contains(msg, "SQLITE_CONSTRAINT_PRIMARYKEY"), strings.Contains(msg, "SQLITE_CONSTRAINT_UNIQUE"),
		strings.Contains(msg, "SQLITE_CONSTRAINT_FOREIGNKEY"):
		kind = storage.ErrConflict
	case strings.Contains(msg, "NOT NULL constraint failed"), strings.Contains(msg, "CHECK constraint failed"),
		strings.Contains(msg, "too many SQL variables"), strings.Contains(msg, "SQLITE_TOOBIG"),
		strings.Contains(msg, "string or blob too big"), strings.Contains(msg, "D1_TYPE_ERROR"):
		kind = storage.ErrInvalid
	case strings.Contains(msg, "Network connection lost"), strings.Contains(msg, "overloaded"),
		strings.Contains(msg, "exceeded timeout"), strings.Contains(msg, "object to be reset"),
		strings.Contains(msg, "Internal error"), strings.Contains(msg, "internal error"),
		strings.Contains(msg, "Cannot resolve D1 DB"), strings.Contains(msg, "D1 DB is unavailable"):
		kind = storage.ErrUnavailable
	}
	return &Error{Kind: kind, Err: err}
}
