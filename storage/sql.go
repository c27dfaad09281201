package storage

import (
	"context"
	"fmt"
	"math"
)

// SQL is the relational port, in the SQLite dialect that D1 and the host's
// embedded SQLite share.
//
// There are no interactive transactions because D1 has none. Work that must
// be atomic is sent as one Batch; races are settled with conditional updates
// ("... WHERE version = ?") and idempotency keys. Query results are returned
// whole, as D1 returns them; queries must therefore be bounded with LIMIT.
type SQL interface {
	Exec(ctx context.Context, query string, args ...any) (Result, error)
	Query(ctx context.Context, query string, args ...any) (*Rows, error)
	// Batch runs the statements in order as one atomic unit: all of them take
	// effect or none does.
	Batch(ctx context.Context, stmts []Stmt) ([]Result, error)
}

// Stmt is one statement of a Batch.
type Stmt struct {
	Query string
	Args  []any
}

// Result reports what a write did.
type Result struct {
	RowsAffected int64
	LastInsertID int64
}

// Rows is a fully read query result. Values are nil, int64, float64, string
// or []byte, the SQLite storage classes.
type Rows struct {
	Columns []string
	Values  [][]any
}

// Len is the number of rows.
func (r *Rows) Len() int { return len(r.Values) }

// Scan copies row i into dest, converting between the storage classes the way
// a reader expects: D1 reports every number as a float, so an integral float
// scans into an int64; a string scans into []byte and back.
func (r *Rows) Scan(i int, dest ...any) error {
	if i < 0 || i >= len(r.Values) {
		return fmt.Errorf("storage: row %d out of range (%d rows)", i, len(r.Values))
	}
	row := r.Values[i]
	if len(dest) != len(row) {
		return fmt.Errorf("storage: scan wants %d values, row has %d", len(dest), len(row))
	}
	for j, d := range dest {
		if err := convert(d, row[j]); err != nil {
			return fmt.Errorf("storage: column %q: %w", r.Columns[j], err)
		}
	}
	return nil
}

// NormalizeValue maps a driver value onto the SQLite storage classes.
func NormalizeValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, int64, float64, string, []byte:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	default:
		return nil, fmt.Errorf("storage: unsupported SQL value type %T", v)
	}
}

func convert(dest, v any) error {
	switch d := dest.(type) {
	case *any:
		*d = v
		return nil
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
		case []byte:
			*d = string(x)
		case nil:
			*d = ""
		default:
			return fmt.Errorf("cannot scan %T into string", v)
		}
	case *[]byte:
		switch x := v.(type) {
		case []byte:
			*d = append([]byte(nil), x...)
		case string:
			*d = []byte(x)
		case nil:
			*d = nil
		default:
			return fmt.Errorf("cannot scan %T into []byte", v)
		}
	case *int64:
		switch x := v.(type) {
		case int64:
			*d = x
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return fmt.Errorf("cannot scan non-integral %v into int64", x)
			}
			*d = int64(x)
		case nil:
			*d = 0
		default:
			return fmt.Errorf("cannot scan %T into int64", v)
		}
	case *int:
		var n int64
		if err := convert(&n, v); err != nil {
			return err
		}
		*d = int(n)
	case *float64:
		switch x := v.(type) {
		case float64:
			*d = x
		case int64:
			*d = float64(x)
		case nil:
			*d = 0
		default:
			return fmt.Errorf("cannot scan %T into float64", v)
		}
	case **int64:
		if v == nil {
			*d = nil
			return nil
		}
		var n int64
		if err := convert(&n, v); err != nil {
			return err
		}
		*d = &n
	case *bool:
		var n int64
		if err := convert(&n, v); err != nil {
			return err
		}
		*d = n != 0
	default:
		return fmt.Errorf("unsupported scan destination %T", dest)
	}
	return nil
}
