// Package sqlite is the host's storage.SQL: an embedded SQLite database in
// one file, through modernc.org/sqlite (pure Go, no cgo).
//
// Every connection runs with
//
//	journal_mode=WAL     readers never block the writer and vice versa
//	synchronous=FULL     a commit is fsynced before Exec/Batch returns, so an
//	                     acknowledged write survives a host kill and a power
//	                     cut (NORMAL would survive a process kill only)
//	foreign_keys=ON      as D1 enforces them
//	busy_timeout=10s     concurrent writers wait rather than fail
//	BEGIN IMMEDIATE      a Batch takes the write lock up front, so two
//	                     batches never deadlock on a lock upgrade
//
// Errors are mapped onto the storage sentinels: constraint violations wrap
// storage.ErrConflict; a full disk, I/O errors, a locked or unopenable
// database wrap storage.ErrUnavailable; bad SQL and unsupported argument
// types wrap storage.ErrInvalid.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"pommy.ai/edge/storage"
)

// Options tune Open. The zero value is the production setting.
type Options struct {
	// Synchronous is "FULL" (default) or "NORMAL". NORMAL in WAL mode keeps
	// every acknowledged write across a crash of the host process but may
	// lose the last commits on a power cut or kernel crash.
	Synchronous string
	// BusyTimeout is how long a writer waits for the lock (default 10s).
	BusyTimeout time.Duration
	// MaxConns caps the connection pool (default 4).
	MaxConns int
}

// DB is a SQLite database that implements storage.SQL.
type DB struct {
	db   *sql.DB
	path string
}

var _ storage.SQL = (*DB)(nil)

// Open opens (creating if needed) the database file at path with the
// production settings. path ":memory:" gives a private in-memory database.
func Open(path string) (*DB, error) { return OpenWith(path, Options{}) }

// OpenWith opens the database file at path with options.
func OpenWith(path string, o Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: bad database path %q: %w", path, storage.ErrInvalid)
	}
	sync := strings.ToUpper(o.Synchronous)
	switch sync {
	case "":
		sync = "FULL"
	case "FULL", "NORMAL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite: synchronous must be FULL or NORMAL, not %q: %w", o.Synchronous, storage.ErrInvalid)
	}
	busy := o.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	conns := o.MaxConns
	if conns <= 0 {
		conns = 4
	}
	memory := path == ":memory:"
	if memory {
		conns = 1 // each connection would be its own database
	}
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(" + sync + ")",
		"_txlock=immediate",
	}
	if !memory {
		q = append(q, "_pragma=journal_mode(WAL)")
	}
	db, err := sql.Open("sqlite", path+"?"+strings.Join(q, "&"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, mapErr(err))
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	// Open is lazy; make a connection now so a bad path or a corrupt file
	// fails here, and check the settings took.
	d := &DB{db: db, path: path}
	if err := d.check(context.Background(), memory, sync); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

func (d *DB) check(ctx context.Context, memory bool, sync string) error {
	var mode string
	if err := d.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", d.path, mapErr(err))
	}
	if !memory && !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: %s: journal_mode is %q, want wal: %w", d.path, mode, storage.ErrUnavailable)
	}
	var fk, syn int
	if err := d.db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("sqlite: %w", mapErr(err))
	}
	if err := d.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syn); err != nil {
		return fmt.Errorf("sqlite: %w", mapErr(err))
	}
	want := map[string]int{"NORMAL": 1, "FULL": 2, "EXTRA": 3}[sync]
	if fk != 1 || syn != want {
		return fmt.Errorf("sqlite: %s: foreign_keys=%d synchronous=%d, want 1 and %d", d.path, fk, syn, want)
	}
	return nil
}

// Close closes the database. Every write acknowledged before is on disk.
func (d *DB) Close() error { return d.db.Close() }

// Path is the file the database lives in.
func (d *DB) Path() string { return d.path }

func args(in []any) ([]any, error) {
	out := make([]any, len(in))
	for i, a := range in {
		v, err := storage.NormalizeValue(a)
		if err != nil {
			return nil, fmt.Errorf("sqlite: argument %d: %w: %w", i+1, storage.ErrInvalid, err)
		}
		out[i] = v
	}
	return out, nil
}

func (d *DB) Exec(ctx context.Context, query string, a ...any) (storage.Result, error) {
	na, err := args(a)
	if err != nil {
		return storage.Result{}, err
	}
	res, err := d.db.ExecContext(ctx, query, na...)
	if err != nil {
		return storage.Result{}, fmt.Errorf("sqlite: exec: %w", mapErr(err))
	}
	return result(query, res), nil
}

// result reads what a statement did. SQLite's change count and last rowid
// belong to the connection and only DML updates them, so after CREATE, DROP,
// PRAGMA or SELECT they still describe an earlier statement: report zero.
func result(query string, res sql.Result) storage.Result {
	if !isDML(query) {
		return storage.Result{}
	}
	var r storage.Result
	r.RowsAffected, _ = res.RowsAffected()
	r.LastInsertID, _ = res.LastInsertId()
	return r
}

// isDML reports whether query starts with INSERT,
// UPDATE, DELETE, REPLACE or WITH (a CTE before DML), comments skipped.
func isDML(query string) bool {
	q := strings.TrimSpace(query)
	for {
		switch {
		case strings.HasPrefix(q, "--"):
			if i := strings.IndexByte(q, '\n'); i >= 0 {
				q = strings.TrimSpace(q[i+1:])
				continue
			}
			return false
		case strings.HasPrefix(q, "/*"):
			if i := strings.Index(q, "*/"); i >= 0 {
				q = strings.TrimSpace(q[i+2:])
				continue
			}
			return false
		}
		break
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
	if end < 0 {
		end = len(q)
	}
	switch strings.ToUpper(q[:end]) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH":
		return true
	}
	return false
}

func (d *DB) Query(ctx context.Context, query string, a ...any) (*storage.Rows, error) {
	na, err := args(a)
	if err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, query, na...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query: %w", mapErr(err))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("sqlite: query: %w", mapErr(err))
	}
	decl := make([]string, len(cols))
	if types, err := rows.ColumnTypes(); err == nil {
		for i, ct := range types {
			decl[i] = strings.ToUpper(ct.DatabaseTypeName())
		}
	}
	out := &storage.Rows{Columns: cols, Values: [][]any{}}
	dest := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("sqlite: query: %w", mapErr(err))
		}
		row := make([]any, len(cols))
		for i, v := range dest {
			nv, err := storageClass(v, decl[i])
			if err != nil {
				return nil, fmt.Errorf("sqlite: query: column %q: %w", cols[i], err)
			}
			row[i] = nv
		}
		out.Values = append(out.Values, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: query: %w", mapErr(err))
	}
	return out, nil
}

// storageClass maps a driver value onto the SQLite storage classes. The
// driver turns TEXT in a column declared DATE, DATETIME or TIMESTAMP into a
// time.Time; D1 returns the text. We format it back the way SQLite's own
// date functions write it ("2006-01-02 15:04:05", with fractional seconds
// and a zone offset only when present; "2006-01-02" for a midnight in a DATE
// column), which is exact for values written by CURRENT_TIMESTAMP, date()
// and datetime(). Other spellings of a time in such a column (ISO 8601 with
// "T" or "Z") do not round-trip: declare time columns TEXT or INTEGER.
func storageClass(v any, decl string) (any, error) {
	switch x := v.(type) {
	case nil, int64, float64, string:
		return x, nil
	case []byte:
		if x == nil {
			return []byte{}, nil
		}
		return x, nil
	case time.Time:
		_, off := x.Zone()
		if decl == "DATE" && off == 0 && x.Equal(x.Truncate(24*time.Hour)) {
			return x.Format("2006-01-02"), nil
		}
		layout := "2006-01-02 15:04:05.999999999"
		if off != 0 {
			layout += "-07:00"
		}
		return x.Format(layout), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	default:
		return nil, fmt.Errorf("unexpected driver value %T", v)
	}
}

// Batch runs stmts in one IMMEDIATE transaction: all take effect or none.
func (d *DB) Batch(ctx context.Context, stmts []storage.Stmt) ([]storage.Result, error) {
	if len(stmts) == 0 {
		return []storage.Result{}, nil
	}
	all := make([][]any, len(stmts))
	for i, s := range stmts {
		a, err := args(s.Args)
		if err != nil {
			return nil, fmt.Errorf("sqlite: batch statement %d: %w", i, err)
		}
		all[i] = a
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: batch: begin: %w", mapErr(err))
	}
	out := make([]storage.Result, len(stmts))
	for i, s := range stmts {
		res, err := tx.ExecContext(ctx, s.Query, all[i]...)
		if err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("sqlite: batch statement %d: %w", i, mapErr(err))
		}
		out[i] = result(s.Query, res)
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("sqlite: batch: commit: %w", mapErr(err))
	}
	return out, nil
}

// mapErr wraps err with the storage sentinel its SQLite result code means.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se *msqlite.Error
	if !errors.As(err, &se) {
		if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CONSTRAINT:
		return fmt.Errorf("%w: %w", storage.ErrConflict, err)
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOLFS:
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	case sqlite3.SQLITE_INTERRUPT:
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	case sqlite3.SQLITE_ERROR, sqlite3.SQLITE_RANGE, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
		return fmt.Errorf("%w: %w", storage.ErrInvalid, err)
	}
	return err
}
