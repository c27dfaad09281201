package sqlite

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"pommy.ai/edge/storage"
)

// MigrationsTable is the table wrangler's `d1 migrations apply` records
// applied migrations in. Migrate uses the same table, with the same schema
// and the same names (the file name, ".sql" included), so one directory of
// migrations serves D1 and the host alike, and a database migrated by either
// tool is recognised by the other.
const MigrationsTable = "d1_migrations"

// wrangler creates the table with exactly this statement.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS d1_migrations(
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		name       TEXT UNIQUE,
		applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
)`

// migrationFile is the name wrangler gives migrations: NNNN_name.sql.
var migrationFile = regexp.MustCompile(`^[0-9]+_[A-Za-z0-9._-]+\.sql$`)

// Migrate applies every NNNN_name.sql file at the root of fsys that is not
// yet recorded in d1_migrations, in name order, each once. A migration and
// its record are written in one IMMEDIATE transaction: a migration that
// fails leaves nothing behind and stops Migrate, and two processes
// migrating the same file at once apply each migration exactly once.
//
// Files that do not end in ".sql" are ignored; a ".sql" file that is not
// named NNNN_name.sql is an error (wrangler would apply it, in an order
// that is easy to get wrong). As on D1, a migration must not contain BEGIN
// or COMMIT.
func (d *DB) Migrate(ctx context.Context, fsys fs.FS) error {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		if !migrationFile.MatchString(e.Name()) {
			return fmt.Errorf("sqlite: migrate: %q is not named NNNN_name.sql: %w", e.Name(), storage.ErrInvalid)
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if _, err := d.db.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("sqlite: migrate: create %s: %w", MigrationsTable, mapErr(err))
	}
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if err := d.applyOne(ctx, name, string(body)); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) applyOne(ctx context.Context, name, body string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", name, mapErr(err))
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+MigrationsTable+" WHERE name = ?", name).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", name, mapErr(err))
	}
	if n > 0 {
		return nil
	}
	if strings.TrimSpace(body) != "" {
		if _, err := tx.ExecContext(ctx, body); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, mapErr(err))
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+MigrationsTable+" (name) VALUES (?)", name); err != nil {
		return fmt.Errorf("sqlite: migrate %s: record: %w", name, mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate %s: commit: %w", name, mapErr(err))
	}
	return nil
}

// Applied lists the names of the applied migrations in the order applied.
func (d *DB) Applied(ctx context.Context) ([]string, error) {
	rows, err := d.Query(ctx, "SELECT name FROM "+MigrationsTable+" ORDER BY id")
	if err != nil {
		return nil, err
	}
	out := make([]string, rows.Len())
	for i := range out {
		if err := rows.Scan(i, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
