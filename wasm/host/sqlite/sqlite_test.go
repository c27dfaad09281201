package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storagetest.Run(t, storagetest.SQLSuite(open(t)))
}

func TestContractMemory(t *testing.T) {
	db, err := Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storagetest.Run(t, storagetest.SQLSuite(db))
}

func TestContractNormalSync(t *testing.T) {
	db, err := OpenWith(filepath.Join(t.TempDir(), "n.db"), Options{Synchronous: "normal", MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storagetest.Run(t, storagetest.SQLSuite(db))
}

func TestSettings(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	for q, want := range map[string]string{
		"PRAGMA journal_mode": "wal",
		"PRAGMA synchronous":  "2",
		"PRAGMA foreign_keys": "1",
		"PRAGMA busy_timeout": "10000",
	} {
		// Ask several times so that more than one pooled connection answers.
		for range 3 {
			rows, err := db.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if rows.Len() != 1 {
				t.Fatalf("%s: %d rows", q, rows.Len())
			}
			if v, ok := rows.Values[0][0].(int64); ok {
				got = strconv.FormatInt(v, 10)
			} else if err := rows.Scan(0, &got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s = %s, want %s", q, got, want)
			}
		}
	}
	if _, err := OpenWith(filepath.Join(t.TempDir(), "x.db"), Options{Synchronous: "off"}); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("synchronous=off accepted: %v", err)
	}
}

func TestFullInt64(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.Exec(ctx, "CREATE TABLE t (n INTEGER)"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{math.MaxInt64, math.MinInt64, 1<<53 + 1} {
		if _, err := db.Exec(ctx, "DELETE FROM t"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "INSERT INTO t VALUES (?)", v); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(ctx, "SELECT n FROM t")
		if err != nil {
			t.Fatal(err)
		}
		if got := rows.Values[0][0]; got != v {
			t.Errorf("stored %d, read %v (%T)", v, got, got)
		}
	}
}

// The driver turns TEXT in DATETIME columns into time.Time; the adapter
// must hand back text, and exactly the text SQLite's own functions wrote.
func TestDatetimeColumnsReturnText(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if _, err := db.Exec(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, a DATETIME DEFAULT CURRENT_TIMESTAMP, b TIMESTAMP, c DATE)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO t (id, b, c) VALUES (1, datetime('now', '+1 day'), date('now'))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO t (id, a, b, c) VALUES (2, ?, ?, ?)", "2024-02-29 23:59:58", "2024-02-29 23:59:58.125", "not a date"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, "SELECT a, b, c, CAST(a AS TEXT), CAST(b AS TEXT), CAST(c AS TEXT) FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range rows.Values {
		for j := 0; j < 3; j++ {
			if _, ok := row[j].(string); !ok {
				t.Errorf("row %d column %d is %T, want string", i, j, row[j])
			}
			if row[j] != row[j+3] {
				t.Errorf("row %d column %d reads %q, the stored text is %q", i, j, row[j], row[j+3])
			}
		}
	}
}

// SQLite keeps the change count of the last DML statement on the
// connection; a DDL statement or a SELECT must not report it again.
func TestResultOfNonDMLIsZero(t *testing.T) {
	db, err := Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.Exec(ctx, "CREATE TABLE t (x)")
	if r, _ := db.Exec(ctx, "INSERT INTO t VALUES (1), (2), (3)"); r.RowsAffected != 3 || r.LastInsertID != 3 {
		t.Fatalf("insert: %+v", r)
	}
	for _, q := range []string{"CREATE TABLE u (x)", "SELECT 1", "PRAGMA user_version = 3", "DROP TABLE u", "-- comment\nCREATE INDEX i ON t(x)"} {
		r, err := db.Exec(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if r != (storage.Result{}) {
			t.Errorf("%q reported %+v", q, r)
		}
	}
	// In order: each statement sees the previous ones' effects.
	for _, c := range []struct {
		q    string
		want int64
	}{
		{"/* c */ UPDATE t SET x = x + 1", 3},                 // 2, 3, 4
		{"WITH s AS (SELECT 1) DELETE FROM t WHERE x = 2", 1}, // 3, 4
		{"  replace into t (rowid, x) values (1, 9)", 1},
		{"INSERT INTO t SELECT x FROM t WHERE x > 100", 0},
	} {
		q, want := c.q, c.want
		r, err := db.Exec(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if r.RowsAffected != want {
			t.Errorf("%q: RowsAffected %d, want %d", q, r.RowsAffected, want)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	t.Run("DiskFull", func(t *testing.T) {
		db, err := OpenWith(filepath.Join(t.TempDir(), "full.db"), Options{MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(ctx, "CREATE TABLE t (b BLOB)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "INSERT INTO t VALUES (zeroblob(1000))"); err != nil {
			t.Fatal(err)
		}
		// A database that may not grow behaves as a full disk does.
		if _, err := db.Exec(ctx, "PRAGMA max_page_count = 8"); err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(ctx, "INSERT INTO t VALUES (zeroblob(100000))")
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("insert into a full database: %v, want ErrUnavailable", err)
		}
		_, err = db.Batch(ctx, []storage.Stmt{{Query: "INSERT INTO t VALUES (x'01')"}, {Query: "INSERT INTO t VALUES (zeroblob(100000))"}})
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("batch into a full database: %v, want ErrUnavailable", err)
		}
		rows, err := db.Query(ctx, "SELECT COUNT(*) FROM t")
		if err != nil {
			t.Fatal(err)
		}
		if n := rows.Values[0][0]; n != int64(1) {
			t.Errorf("after failed writes %v rows, want 1", n)
		}
	})
	t.Run("Busy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "busy.db")
		db, err := OpenWith(path, Options{BusyTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(ctx, "CREATE TABLE t (n INTEGER)"); err != nil {
			t.Fatal(err)
		}
		// Another process holds the write lock.
		other, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		conn, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(ctx, "ROLLBACK")
		_, err = db.Exec(ctx, "INSERT INTO t VALUES (1)")
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("write while another holds the lock: %v, want ErrUnavailable", err)
		}
		_, err = db.Batch(ctx, []storage.Stmt{{Query: "INSERT INTO t VALUES (1)"}})
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("batch while another holds the lock: %v, want ErrUnavailable", err)
		}
		// Readers are not blocked in WAL mode.
		if _, err := db.Query(ctx, "SELECT COUNT(*) FROM t"); err != nil {
			t.Errorf("read while another holds the write lock: %v", err)
		}
	})
	t.Run("NotADatabase", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junk.db")
		os.WriteFile(path, []byte(strings.Repeat("this is not a database file ", 200)), 0o600)
		db, err := Open(path)
		if err == nil {
			db.Close()
			t.Fatal("opened a junk file")
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("open junk: %v, want ErrUnavailable", err)
		}
	})
	t.Run("MissingDirectory", func(t *testing.T) {
		_, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("open in a missing directory: %v, want ErrUnavailable", err)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		db := open(t)
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := db.Query(c, "SELECT 1"); !errors.Is(err, context.Canceled) {
			t.Errorf("query with a cancelled context: %v", err)
		}
	})
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	fsys := fstest.MapFS{
		"0001_init.sql": {Data: []byte(`
-- the first schema
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), email TEXT NOT NULL);
INSERT INTO tenants (id, name) VALUES ('t0', 'seed; with a semicolon');
`)},
		"0002_index.sql": {Data: []byte("CREATE UNIQUE INDEX users_email ON users(tenant_id, email);\n")},
		"README.md":      {Data: []byte("not a migration")},
		"sub/0009_x.sql": {Data: []byte("this is in a subdirectory and ignored")},
	}
	if err := db.Migrate(ctx, fsys); err != nil {
		t.Fatal(err)
	}
	applied, err := db.Applied(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(applied, ",") != "0001_init.sql,0002_index.sql" {
		t.Fatalf("applied %q", applied)
	}
	// Idempotent: a second run applies nothing (the seed row would conflict).
	if err := db.Migrate(ctx, fsys); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	rows, _ := db.Query(ctx, "SELECT COUNT(*) FROM tenants")
	if rows.Values[0][0] != int64(1) {
		t.Errorf("seed applied %v times", rows.Values[0][0])
	}
	// A new migration is applied alone; a broken one leaves nothing behind.
	fsys["0003_more.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;")}
	fsys["0004_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x INTEGER);\nINSERT INTO tenants (id, name) VALUES ('t0', 'duplicate');")}
	fsys["0005_after.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE after_broken (x INTEGER);")}
	err = db.Migrate(ctx, fsys)
	if err == nil || !strings.Contains(err.Error(), "0004_broken.sql") || !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("broken migration: %v", err)
	}
	applied, _ = db.Applied(ctx)
	if strings.Join(applied, ",") != "0001_init.sql,0002_index.sql,0003_more.sql" {
		t.Errorf("applied %q", applied)
	}
	for _, tbl := range []string{"half", "after_broken"} {
		rows, _ := db.Query(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE name = ?", tbl)
		if rows.Values[0][0] != int64(0) {
			t.Errorf("table %s exists after a failed migration", tbl)
		}
	}
	// Fixed, it applies, and so does the one after it.
	fsys["0004_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (x INTEGER);")}
	if err := db.Migrate(ctx, fsys); err != nil {
		t.Fatal(err)
	}
	applied, _ = db.Applied(ctx)
	if len(applied) != 5 {
		t.Errorf("applied %q", applied)
	}
	// Badly named migrations are refused before anything runs.
	bad := fstest.MapFS{"init.sql": {Data: []byte("CREATE TABLE nope (x)")}}
	if err := db.Migrate(ctx, bad); !errors.Is(err, storage.ErrInvalid) {
		t.Errorf("badly named migration: %v", err)
	}
}

// The tracking table must be the one wrangler makes, so that
// `wrangler d1 migrations apply` and the host agree on what was applied.
func TestMigrationsTableIsWranglers(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if err := db.Migrate(ctx, fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (x);")}}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, "SELECT name, type, pk, \"notnull\" FROM pragma_table_info('d1_migrations') ORDER BY cid")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range rows.Values {
		var name, typ string
		var pk, nn int64
		if err := rows.Scan(i, &name, &typ, &pk, &nn); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s pk=%d nn=%d", name, typ, pk, nn))
	}
	want := "id INTEGER pk=1 nn=0|name TEXT pk=0 nn=0|applied_at TIMESTAMP pk=0 nn=1"
	if strings.Join(got, "|") != want {
		t.Errorf("d1_migrations columns = %q, want %q", strings.Join(got, "|"), want)
	}
	rows, _ = db.Query(ctx, "SELECT id, name, applied_at FROM d1_migrations")
	var id int64
	var name, at string
	if err := rows.Scan(0, &id, &name, &at); err != nil {
		t.Fatal(err)
	}
	if id != 1 || name != "0001_a.sql" {
		t.Errorf("record = %d %q", id, name)
	}
	if _, err := time.Parse("2006-01-02 15:04:05", at); err != nil {
		t.Errorf("applied_at %q is not SQLite's CURRENT_TIMESTAMP text", at)
	}
	// A database that wrangler migrated first (table and rows already there)
	// is taken as is.
	db2 := open(t)
	if _, err := db2.Exec(ctx, createMigrationsTable); err != nil {
		t.Fatal(err)
	}
	if _, err := db2.Exec(ctx, "CREATE TABLE a (x); INSERT INTO d1_migrations (name) VALUES ('0001_a.sql');"); err != nil {
		t.Fatal(err)
	}
	if err := db2.Migrate(ctx, fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (x);")}}); err != nil {
		t.Errorf("migrate over a wrangler-migrated database: %v", err)
	}
}

func TestMigrateConcurrentProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	fsys := fstest.MapFS{
		"0001_t.sql": {Data: []byte("CREATE TABLE runs (n INTEGER);")},
		"0002_r.sql": {Data: []byte("INSERT INTO runs VALUES (1);")},
		"0003_s.sql": {Data: []byte("INSERT INTO runs VALUES (2);")},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- db.Migrate(ctx, fsys)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	db := open(t)
	db.Close()
	db, _ = Open(path)
	defer db.Close()
	rows, _ := db.Query(ctx, "SELECT COUNT(*) FROM runs")
	if rows.Values[0][0] != int64(2) {
		t.Errorf("data migrations ran %v times in total, want 2", rows.Values[0][0])
	}
}

func TestBatchConcurrent(t *testing.T) {
	ctx := context.Background()
	db := open(t)
	if _, err := db.Exec(ctx, "CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO c VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				// Both rows move together or not at all.
				if _, err := db.Batch(ctx, []storage.Stmt{
					{Query: "UPDATE c SET n = n + 1 WHERE id = 1"},
					{Query: "UPDATE c SET n = n + 1 WHERE id = 2"},
				}); err != nil {
					t.Error(err)
					return
				}
				rows, err := db.Query(ctx, "SELECT (SELECT n FROM c WHERE id = 1) - (SELECT n FROM c WHERE id = 2)")
				if err != nil {
					t.Error(err)
					return
				}
				if rows.Values[0][0] != int64(0) {
					t.Errorf("a reader saw half a batch: difference %v", rows.Values[0][0])
					return
				}
			}
		}()
	}
	wg.Wait()
	rows, _ := db.Query(ctx, "SELECT n FROM c ORDER BY id")
	if rows.Values[0][0] != int64(160) || rows.Values[1][0] != int64(160) {
		t.Errorf("counters = %v, want 160 and 160", rows.Values)
	}
}

// TestKillKeepsAcknowledgedWrites runs a writer in a child process, kills
// it with SIGKILL while it writes, and checks that every insert the child
// acknowledged (reported after Exec or Batch returned) is in the database.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	if os.Getenv("POMMY_SQLITE_KILL_CHILD") != "" {
		return
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.v")
	cmd.Env = append(os.Environ(), "POMMY_SQLITE_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "ACK "); ok {
			n, _ := strconv.ParseInt(id, 10, 64)
			acked = append(acked, n)
			if len(acked) == 300 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d writes before it ended", len(acked))
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, id := range acked {
		rows, err := db.Query(ctx, "SELECT COUNT(*) FROM w WHERE id = ?", id)
		if err != nil {
			t.Fatal(err)
		}
		if rows.Values[0][0] != int64(1) {
			t.Errorf("acknowledged write %d lost", id)
		}
	}
	// Pairs starting at id%4 == 3 were written as one Batch; the others as
	// two Execs, which a kill may rightly separate.
	rows, _ := db.Query(ctx, "SELECT COUNT(*) FROM w WHERE id % 4 = 3 AND id + 1 NOT IN (SELECT id FROM w)")
	if rows.Values[0][0] != int64(0) {
		t.Errorf("%v batches were half written", rows.Values[0][0])
	}
	rows, _ = db.Query(ctx, "PRAGMA integrity_check")
	if rows.Values[0][0] != "ok" {
		t.Errorf("integrity_check: %v", rows.Values)
	}
}

func TestKillChild(t *testing.T) {
	path := os.Getenv("POMMY_SQLITE_KILL_CHILD")
	if path == "" {
		t.Skip("helper for TestKillKeepsAcknowledgedWrites")
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.Exec(ctx, "CREATE TABLE w (id INTEGER PRIMARY KEY, body BLOB)"); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 4096)
	for id := int64(1); ; id += 2 {
		if id%4 == 1 {
			if _, err := db.Exec(ctx, "INSERT INTO w VALUES (?, ?)", id, body); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(ctx, "INSERT INTO w VALUES (?, ?)", id+1, body); err != nil {
				t.Fatal(err)
			}
		} else if _, err := db.Batch(ctx, []storage.Stmt{
			{Query: "INSERT INTO w VALUES (?, ?)", Args: []any{id, body}},
			{Query: "INSERT INTO w VALUES (?, ?)", Args: []any{id + 1, body}},
		}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ACK %d\nACK %d\n", id, id+1)
	}
}

func BenchmarkInsert(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run(sync, func(b *testing.B) {
			db, err := OpenWith(filepath.Join(b.TempDir(), "b.db"), Options{Synchronous: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			db.Exec(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
			body := make([]byte, 200)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := db.Exec(ctx, "INSERT INTO t (name, body) VALUES (?, ?)", "name", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPointSelect(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "b.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	db.Exec(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, body BLOB)")
	stmts := make([]storage.Stmt, 1000)
	for i := range stmts {
		stmts[i] = storage.Stmt{Query: "INSERT INTO t VALUES (?, ?, ?)", Args: []any{int64(i), "name", make([]byte, 200)}}
	}
	if _, err := db.Batch(ctx, stmts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rows, err := db.Query(ctx, "SELECT id, name, body FROM t WHERE id = ?", int64(i%1000))
		if err != nil || rows.Len() != 1 {
			b.Fatal(err)
		}
	}
}
