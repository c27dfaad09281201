package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"pommy.ai/edge/storage"
)

// SQLSuite is the contract of storage.SQL. Every case creates its own tables
// with a random suffix (CREATE TABLE IF NOT EXISTS) and drops them when it
// ends, so the suite can run against a shared database (D1) concurrently
// and repeatedly.
//
// Integers are only required to round-trip within ±(2^53-1): D1 returns
// numbers through JavaScript. Adapters with full 64-bit integers test that
// separately.
func SQLSuite(db storage.SQL) Suite {
	run := randomHex(4)
	n := 0
	table := func(name string) string {
		n++
		return fmt.Sprintf("st_%s_%d_%s", run, n, name)
	}
	s := &sqlSuite{db: db, table: table}
	return Suite{Name: "SQL", Cases: []Case{
		{"StorageClasses", s.storageClasses},
		{"NullEmptyAndZero", s.nullEmptyAndZero},
		{"BigIntegers", s.bigIntegers},
		{"Unicode", s.unicode},
		{"BoolAndIntArgs", s.boolAndIntArgs},
		{"UnsupportedArgType", s.unsupportedArgType},
		{"ExecResult", s.execResult},
		{"LastInsertID", s.lastInsertID},
		{"ConditionalUpdate", s.conditionalUpdate},
		{"UniqueViolationIsConflict", s.uniqueViolation},
		{"ForeignKeysEnforced", s.foreignKeys},
		{"BatchResults", s.batchResults},
		{"BatchSeesOwnWrites", s.batchSeesOwnWrites},
		{"BatchAtomicOnConflict", s.batchAtomic},
		{"BatchAtomicOnSyntaxError", s.batchAtomicSyntax},
		{"SyntaxErrorIsError", s.syntaxError},
		{"QueryShape", s.queryShape},
		{"OrderLimitOffset", s.orderLimit},
		{"ReturningAndUpsert", s.returningUpsert},
		{"ScanConversions", s.scanConversions},
		{"ConcurrentConditionalUpdates", s.concurrentCAS},
	}}
}

type sqlSuite struct {
	db    storage.SQL
	table func(string) string
	mu    sync.Mutex
}

// create makes a table and returns its name and a function that drops it.
func (s *sqlSuite) create(t T, ctx context.Context, name, cols string) (string, func()) {
	t.Helper()
	s.mu.Lock()
	tbl := s.table(name)
	s.mu.Unlock()
	if _, err := s.db.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s)", tbl, cols)); err != nil {
		t.Fatalf("create table %s: %v", tbl, err)
	}
	return tbl, func() {
		// A fresh context: the case's may have been cancelled.
		c, cancel := testCtx()
		defer cancel()
		if _, err := s.db.Exec(c, "DROP TABLE IF EXISTS "+tbl); err != nil {
			t.Errorf("drop table %s: %v", tbl, err)
		}
	}
}

func (s *sqlSuite) query(t T, ctx context.Context, q string, args ...any) *storage.Rows {
	t.Helper()
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	if rows == nil {
		t.Fatalf("query %q: nil rows and nil error", q)
	}
	checkRowTypes(t, rows)
	return rows
}

func (s *sqlSuite) exec(t T, ctx context.Context, q string, args ...any) storage.Result {
	t.Helper()
	res, err := s.db.Exec(ctx, q, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", q, err)
	}
	return res
}

func (s *sqlSuite) count(t T, ctx context.Context, tbl string) int64 {
	t.Helper()
	rows := s.query(t, ctx, "SELECT COUNT(*) FROM "+tbl)
	var n int64
	if rows.Len() != 1 {
		t.Fatalf("count: %d rows", rows.Len())
	}
	must(t, rows.Scan(0, &n), "scan count")
	return n
}

// checkRowTypes enforces the storage.Rows contract: every value is one of
// the SQLite storage classes and every row has one value per column.
func checkRowTypes(t T, rows *storage.Rows) {
	t.Helper()
	for i, row := range rows.Values {
		if len(row) != len(rows.Columns) {
			t.Errorf("row %d has %d values for %d columns", i, len(row), len(rows.Columns))
		}
		for j, v := range row {
			switch v.(type) {
			case nil, int64, float64, string, []byte:
			default:
				t.Errorf("row %d column %d: value %v has type %T, want nil, int64, float64, string or []byte", i, j, v, v)
			}
		}
	}
}

func (s *sqlSuite) storageClasses(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "classes", "id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB")
	defer drop()
	blob := make([]byte, 256)
	for i := range blob {
		blob[i] = byte(i) // includes NUL and every high byte
	}
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, i, r, s, b) VALUES (?, ?, ?, ?, ?)", int64(1), int64(-42), 3.25, "plain text", blob)
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, i, r, s, b) VALUES (?, ?, ?, ?, ?)", int64(2), nil, nil, nil, nil)
	rows := s.query(t, ctx, "SELECT i, r, s, b, typeof(i), typeof(r), typeof(s), typeof(b) FROM "+tbl+" ORDER BY id")
	if rows.Len() != 2 {
		t.Fatalf("got %d rows, want 2", rows.Len())
	}
	if want := []string{"i", "r", "s", "b", "typeof(i)", "typeof(r)", "typeof(s)", "typeof(b)"}; strings.Join(rows.Columns, ",") != strings.Join(want, ",") {
		t.Errorf("columns %q, want %q", rows.Columns, want)
	}
	var (
		i          int64
		r          float64
		str        string
		b          []byte
		ti, tr, ts string
		tb         string
	)
	must(t, rows.Scan(0, &i, &r, &str, &b, &ti, &tr, &ts, &tb), "scan row 0")
	if i != -42 || r != 3.25 || str != "plain text" || !bytes.Equal(b, blob) {
		t.Errorf("row 0 = %d, %v, %q, %s; want -42, 3.25, \"plain text\", %s", i, r, str, short(b), short(blob))
	}
	if ti != "integer" || tr != "real" || ts != "text" || tb != "blob" {
		t.Errorf("stored classes = %s, %s, %s, %s; want integer, real, text, blob (a []byte argument must bind as a BLOB)", ti, tr, ts, tb)
	}
	if _, ok := rows.Values[0][3].([]byte); !ok {
		t.Errorf("a BLOB column came back as %T, want []byte", rows.Values[0][3])
	}
	if _, ok := rows.Values[0][2].(string); !ok {
		t.Errorf("a TEXT column came back as %T, want string", rows.Values[0][2])
	}
	for j := 0; j < 4; j++ {
		if rows.Values[1][j] != nil {
			t.Errorf("row 1 column %s = %v (%T), want nil for NULL", rows.Columns[j], rows.Values[1][j], rows.Values[1][j])
		}
	}
	must(t, rows.Scan(1, &i, &r, &str, &b, &ti, &tr, &ts, &tb), "scan row 1")
	if ti != "null" || tr != "null" || ts != "null" || tb != "null" {
		t.Errorf("NULL arguments stored as %s, %s, %s, %s; want null", ti, tr, ts, tb)
	}
}

func (s *sqlSuite) nullEmptyAndZero(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "empty", "id INTEGER PRIMARY KEY, s TEXT, b BLOB, n INTEGER")
	defer drop()
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, s, b, n) VALUES (1, ?, ?, ?)", "", []byte{}, int64(0))
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, s, b, n) VALUES (2, NULL, NULL, NULL)")
	rows := s.query(t, ctx, "SELECT id FROM "+tbl+" WHERE s IS NULL")
	if rows.Len() != 1 {
		t.Errorf("empty string and NULL are not distinct: %d rows with s IS NULL, want 1", rows.Len())
	}
	rows = s.query(t, ctx, "SELECT s, length(s), typeof(b), length(b), n, typeof(n) FROM "+tbl+" WHERE id = 1")
	if rows.Len() != 1 {
		t.Fatalf("got %d rows, want 1", rows.Len())
	}
	var str, tb, tn string
	var ls, lb, n int64
	must(t, rows.Scan(0, &str, &ls, &tb, &lb, &n, &tn), "scan")
	if str != "" || ls != 0 {
		t.Errorf("empty string came back as %q (length %d)", str, ls)
	}
	if tb != "blob" || lb != 0 {
		t.Errorf("empty []byte stored as %s of length %d, want an empty blob", tb, lb)
	}
	if n != 0 || tn != "integer" {
		t.Errorf("zero stored as %d (%s), want 0 (integer)", n, tn)
	}
	if rows.Values[0][0] == nil {
		t.Errorf("empty string came back as NULL")
	}
}

func (s *sqlSuite) bigIntegers(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "bigint", "id INTEGER PRIMARY KEY, n INTEGER NOT NULL")
	defer drop()
	const maxSafe = 1<<53 - 1
	vals := []int64{maxSafe, -maxSafe, 1 << 40, -(1 << 40), 1<<31 + 7, 0}
	for k, v := range vals {
		s.exec(t, ctx, "INSERT INTO "+tbl+" (id, n) VALUES (?, ?)", int64(k+1), v)
	}
	rows := s.query(t, ctx, "SELECT n, typeof(n) FROM "+tbl+" ORDER BY id")
	if rows.Len() != len(vals) {
		t.Fatalf("got %d rows, want %d", rows.Len(), len(vals))
	}
	for k, want := range vals {
		var got int64
		var class string
		must(t, rows.Scan(k, &got, &class), "scan")
		if got != want || class != "integer" {
			t.Errorf("stored %d, read back %d (%s)", want, got, class)
		}
	}
	// Arithmetic in SQL on big values, compared in SQL, needs no transport.
	rows = s.query(t, ctx, "SELECT COUNT(*) FROM "+tbl+" WHERE n = ?", int64(maxSafe))
	var c int64
	must(t, rows.Scan(0, &c), "scan")
	if c != 1 {
		t.Errorf("WHERE n = 2^53-1 matched %d rows, want 1", c)
	}
	rows = s.query(t, ctx, "SELECT 9007199254740991, -9007199254740991, 1.5")
	var a, b int64
	var f float64
	must(t, rows.Scan(0, &a, &b, &f), "scan literals")
	if a != maxSafe || b != -maxSafe || f != 1.5 {
		t.Errorf("literals read back as %d, %d, %v", a, b, f)
	}
}

func (s *sqlSuite) unicode(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "unicode", "id INTEGER PRIMARY KEY, s TEXT NOT NULL")
	defer drop()
	texts := []string{
		"héllo wörld",
		"日本語のテキスト",
		"emoji 🎉👩‍👩‍👧 flags 🇬🇧",
		"العربية من اليمين",
		"e\u0301 combining",
		"quotes ' \" ` and backslash \\ and %_ wildcards",
		"line\nbreaks\r\nand\ttabs",
		strings.Repeat("ß", 5000),
	}
	for k, v := range texts {
		s.exec(t, ctx, "INSERT INTO "+tbl+" (id, s) VALUES (?, ?)", int64(k+1), v)
	}
	rows := s.query(t, ctx, "SELECT s, length(s) FROM "+tbl+" ORDER BY id")
	if rows.Len() != len(texts) {
		t.Fatalf("got %d rows, want %d", rows.Len(), len(texts))
	}
	for k, want := range texts {
		var got string
		var chars int64
		must(t, rows.Scan(k, &got, &chars), "scan")
		if got != want {
			t.Errorf("text %d: stored %q, read back %q", k, want, got)
		}
		if int(chars) != len([]rune(want)) {
			t.Errorf("text %d: length() = %d, want %d characters (stored as UTF-8 text, not bytes)", k, chars, len([]rune(want)))
		}
		rows2 := s.query(t, ctx, "SELECT id FROM "+tbl+" WHERE s = ?", want)
		if rows2.Len() != 1 {
			t.Errorf("text %d: equality lookup matched %d rows, want 1", k, rows2.Len())
		}
	}
}

func (s *sqlSuite) boolAndIntArgs(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	rows := s.query(t, ctx, "SELECT ?, ?, ?, ?, ?", true, false, 7, int32(-8), uint32(9))
	var a, b, c, d, e int64
	must(t, rows.Scan(0, &a, &b, &c, &d, &e), "scan")
	if a != 1 || b != 0 || c != 7 || d != -8 || e != 9 {
		t.Errorf("bool/int arguments read back as %d %d %d %d %d, want 1 0 7 -8 9", a, b, c, d, e)
	}
	var yes, no bool
	must(t, rows.Scan(0, &yes, &no, &c, &d, &e), "scan bools")
	if !yes || no {
		t.Errorf("bools scanned as %v %v", yes, no)
	}
}

func (s *sqlSuite) unsupportedArgType(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	type custom struct{ X int }
	_, err := s.db.Query(ctx, "SELECT ?", custom{1})
	wantErrIs(t, err, storage.ErrInvalid, "query with a struct argument")
	_, err = s.db.Exec(ctx, "SELECT ?", uint64(math.MaxUint64))
	wantErrIs(t, err, storage.ErrInvalid, "exec with a uint64 argument")
}

func (s *sqlSuite) execResult(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "exec", "id INTEGER PRIMARY KEY, grp TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0")
	defer drop()
	res := s.exec(t, ctx, "INSERT INTO "+tbl+" (grp) VALUES ('a'), ('a'), ('b')")
	if res.RowsAffected != 3 {
		t.Errorf("multi-row insert: RowsAffected = %d, want 3", res.RowsAffected)
	}
	res = s.exec(t, ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE grp = ?", "a")
	if res.RowsAffected != 2 {
		t.Errorf("update of 2 rows: RowsAffected = %d, want 2", res.RowsAffected)
	}
	res = s.exec(t, ctx, "UPDATE "+tbl+" SET n = n + 1 WHERE grp = ?", "zzz")
	if res.RowsAffected != 0 {
		t.Errorf("update matching nothing: RowsAffected = %d, want 0", res.RowsAffected)
	}
	res = s.exec(t, ctx, "DELETE FROM "+tbl+" WHERE grp = ?", "b")
	if res.RowsAffected != 1 {
		t.Errorf("delete of 1 row: RowsAffected = %d, want 1", res.RowsAffected)
	}
	if n := s.count(t, ctx, tbl); n != 2 {
		t.Errorf("%d rows left, want 2", n)
	}
}

func (s *sqlSuite) lastInsertID(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "lastid", "id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT")
	defer drop()
	var ids []int64
	for k := 0; k < 3; k++ {
		res := s.exec(t, ctx, "INSERT INTO "+tbl+" (v) VALUES (?)", fmt.Sprint("v", k))
		if res.RowsAffected != 1 {
			t.Errorf("insert: RowsAffected = %d, want 1", res.RowsAffected)
		}
		ids = append(ids, res.LastInsertID)
	}
	for k, id := range ids {
		rows := s.query(t, ctx, "SELECT v FROM "+tbl+" WHERE id = ?", id)
		var v string
		if rows.Len() != 1 {
			t.Errorf("LastInsertID %d of insert %d names no row", id, k)
			continue
		}
		must(t, rows.Scan(0, &v), "scan")
		if v != fmt.Sprint("v", k) {
			t.Errorf("LastInsertID %d of insert %d names row %q", id, k, v)
		}
	}
	if !(ids[0] < ids[1] && ids[1] < ids[2]) {
		t.Errorf("LastInsertIDs not increasing: %v", ids)
	}
	res := s.exec(t, ctx, "INSERT INTO "+tbl+" (id, v) VALUES (?, 'explicit')", int64(1000))
	if res.LastInsertID != 1000 {
		t.Errorf("explicit id 1000: LastInsertID = %d", res.LastInsertID)
	}
}

func (s *sqlSuite) conditionalUpdate(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "cas", "id TEXT PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL")
	defer drop()
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, body, version) VALUES ('doc', 'v1', 1)")
	res := s.exec(t, ctx, "UPDATE "+tbl+" SET body = ?, version = version + 1 WHERE id = ? AND version = ?", "v2", "doc", int64(1))
	if res.RowsAffected != 1 {
		t.Errorf("update at the current version: RowsAffected = %d, want 1", res.RowsAffected)
	}
	res = s.exec(t, ctx, "UPDATE "+tbl+" SET body = ?, version = version + 1 WHERE id = ? AND version = ?", "stale", "doc", int64(1))
	if res.RowsAffected != 0 {
		t.Errorf("update at a stale version: RowsAffected = %d, want 0", res.RowsAffected)
	}
	rows := s.query(t, ctx, "SELECT body, version FROM "+tbl+" WHERE id = 'doc'")
	var body string
	var v int64
	must(t, rows.Scan(0, &body, &v), "scan")
	if body != "v2" || v != 2 {
		t.Errorf("after a stale update the row is %q at version %d, want \"v2\" at 2", body, v)
	}
}

func (s *sqlSuite) uniqueViolation(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "uniq", "id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE")
	defer drop()
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, email) VALUES (1, 'a@example.com')")
	_, err := s.db.Exec(ctx, "INSERT INTO "+tbl+" (id, email) VALUES (2, 'a@example.com')")
	wantErrIs(t, err, storage.ErrConflict, "duplicate UNIQUE value")
	_, err = s.db.Exec(ctx, "INSERT INTO "+tbl+" (id, email) VALUES (1, 'b@example.com')")
	wantErrIs(t, err, storage.ErrConflict, "duplicate PRIMARY KEY")
	if n := s.count(t, ctx, tbl); n != 1 {
		t.Errorf("%d rows after failed inserts, want 1", n)
	}
	// The store keeps working after a constraint error.
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, email) VALUES (3, 'c@example.com')")
}

func (s *sqlSuite) foreignKeys(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	parent, dropP := s.create(t, ctx, "fkparent", "id INTEGER PRIMARY KEY")
	child, dropC := s.create(t, ctx, "fkchild", fmt.Sprintf("id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES %s(id)", parent))
	defer dropP()
	defer dropC() // runs first
	s.exec(t, ctx, "INSERT INTO "+parent+" (id) VALUES (1)")
	s.exec(t, ctx, "INSERT INTO "+child+" (id, parent_id) VALUES (1, 1)")
	_, err := s.db.Exec(ctx, "INSERT INTO "+child+" (id, parent_id) VALUES (2, 99)")
	wantErrIs(t, err, storage.ErrConflict, "insert referencing a missing parent (foreign keys must be enforced, as D1 does)")
	if n := s.count(t, ctx, child); n != 1 {
		t.Errorf("%d child rows, want 1", n)
	}
}

func (s *sqlSuite) batchResults(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "batch", "id INTEGER PRIMARY KEY, v TEXT NOT NULL")
	defer drop()
	res, err := s.db.Batch(ctx, []storage.Stmt{
		{Query: "INSERT INTO " + tbl + " (id, v) VALUES (?, ?)", Args: []any{int64(10), "a"}},
		{Query: "INSERT INTO " + tbl + " (id, v) VALUES (?, ?), (?, ?)", Args: []any{int64(11), "b", int64(12), "c"}},
		{Query: "UPDATE " + tbl + " SET v = v || '!' WHERE id >= ?", Args: []any{int64(11)}},
		{Query: "DELETE FROM " + tbl + " WHERE id = ?", Args: []any{int64(999)}},
	})
	must(t, err, "batch")
	if len(res) != 4 {
		t.Fatalf("batch of 4 returned %d results", len(res))
	}
	for k, want := range []int64{1, 2, 2, 0} {
		if res[k].RowsAffected != want {
			t.Errorf("statement %d: RowsAffected = %d, want %d", k, res[k].RowsAffected, want)
		}
	}
	if res[0].LastInsertID != 10 {
		t.Errorf("statement 0: LastInsertID = %d, want 10", res[0].LastInsertID)
	}
	rows := s.query(t, ctx, "SELECT v FROM "+tbl+" ORDER BY id")
	var got []string
	for k := range rows.Values {
		var v string
		must(t, rows.Scan(k, &v), "scan")
		got = append(got, v)
	}
	if strings.Join(got, ",") != "a,b!,c!" {
		t.Errorf("after the batch the rows are %q, want a, b!, c!", got)
	}
}

func (s *sqlSuite) batchSeesOwnWrites(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	a, dropA := s.create(t, ctx, "own_a", "id INTEGER PRIMARY KEY, n INTEGER NOT NULL")
	defer dropA()
	b, dropB := s.create(t, ctx, "own_b", "id INTEGER PRIMARY KEY, total INTEGER NOT NULL")
	defer dropB()
	_, err := s.db.Batch(ctx, []storage.Stmt{
		{Query: "INSERT INTO " + a + " (id, n) VALUES (1, 5), (2, 7)"},
		{Query: "INSERT INTO " + b + " (id, total) SELECT 1, SUM(n) FROM " + a},
	})
	must(t, err, "batch")
	rows := s.query(t, ctx, "SELECT total FROM "+b+" WHERE id = 1")
	var total int64
	if rows.Len() != 1 {
		t.Fatalf("got %d rows, want 1", rows.Len())
	}
	must(t, rows.Scan(0, &total), "scan")
	if total != 12 {
		t.Errorf("second statement saw a total of %d, want 12 (the first statement's rows)", total)
	}
}

func (s *sqlSuite) batchAtomic(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "atomic", "id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE")
	defer drop()
	other, dropO := s.create(t, ctx, "atomic_log", "id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT")
	defer dropO()
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, email) VALUES (1, 'taken@example.com')")
	_, err := s.db.Batch(ctx, []storage.Stmt{
		{Query: "INSERT INTO " + tbl + " (id, email) VALUES (2, 'new@example.com')"},
		{Query: "INSERT INTO " + other + " (what) VALUES ('created 2')"},
		{Query: "UPDATE " + tbl + " SET email = 'changed@example.com' WHERE id = 1"},
		{Query: "INSERT INTO " + tbl + " (id, email) VALUES (3, 'new@example.com')"}, // violates UNIQUE
	})
	wantErrIs(t, err, storage.ErrConflict, "batch whose last statement violates UNIQUE")
	if n := s.count(t, ctx, tbl); n != 1 {
		t.Errorf("after a failed batch the table has %d rows, want 1 (nothing written)", n)
	}
	if n := s.count(t, ctx, other); n != 0 {
		t.Errorf("after a failed batch the second table has %d rows, want 0", n)
	}
	rows := s.query(t, ctx, "SELECT email FROM "+tbl+" WHERE id = 1")
	var email string
	must(t, rows.Scan(0, &email), "scan")
	if email != "taken@example.com" {
		t.Errorf("after a failed batch row 1 reads %q: its UPDATE was not rolled back", email)
	}
	// And a good batch afterwards still works.
	_, err = s.db.Batch(ctx, []storage.Stmt{{Query: "INSERT INTO " + tbl + " (id, email) VALUES (4, 'ok@example.com')"}})
	must(t, err, "batch after a failed batch")
}

func (s *sqlSuite) batchAtomicSyntax(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "atomic_syn", "id INTEGER PRIMARY KEY")
	defer drop()
	_, err := s.db.Batch(ctx, []storage.Stmt{
		{Query: "INSERT INTO " + tbl + " (id) VALUES (1)"},
		{Query: "INSERT INTO " + tbl + " (id) VALUES (2)"},
		{Query: "INSERT INTO no_such_table_" + randomHex(4) + " (id) VALUES (3)"},
	})
	if err == nil {
		t.Errorf("batch with a statement on a missing table succeeded")
	}
	if n := s.count(t, ctx, tbl); n != 0 {
		t.Errorf("after a failed batch the table has %d rows, want 0", n)
	}
}

func (s *sqlSuite) syntaxError(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	noPanic := func(what string, f func() error) error {
		var err error
		func() {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("%s panicked: %v", what, v)
				}
			}()
			err = f()
		}()
		return err
	}
	for _, q := range []string{"SELEC 1", "SELECT * FROM", "INSERT INTO no_such_table_" + randomHex(4) + " VALUES (1)", "SELECT 1 +"} {
		err := noPanic("query "+q, func() error { _, err := s.db.Query(ctx, q); return err })
		if err == nil {
			t.Errorf("query %q: no error", q)
		}
		err = noPanic("exec "+q, func() error { _, err := s.db.Exec(ctx, q); return err })
		if err == nil {
			t.Errorf("exec %q: no error", q)
		}
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("exec %q: error %q wraps a conflict, not-found or unavailable error", q, err)
		}
	}
	_ = noPanic("batch", func() error {
		_, err := s.db.Batch(ctx, []storage.Stmt{{Query: "SELEC 1"}})
		if err == nil {
			t.Errorf("batch with a syntax error: no error")
		}
		return err
	})
	rows := s.query(t, ctx, "SELECT 1")
	if rows.Len() != 1 {
		t.Errorf("store unusable after syntax errors")
	}
}

func (s *sqlSuite) queryShape(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	rows := s.query(t, ctx, "SELECT 1 AS one, 'two' AS two, NULL AS three")
	if strings.Join(rows.Columns, ",") != "one,two,three" {
		t.Errorf("columns = %q, want one, two, three", rows.Columns)
	}
	if rows.Len() != 1 {
		t.Fatalf("got %d rows, want 1", rows.Len())
	}
	tbl, drop := s.create(t, ctx, "shape", "id INTEGER PRIMARY KEY")
	defer drop()
	rows = s.query(t, ctx, "SELECT id FROM "+tbl+" WHERE id = ?", int64(1))
	if rows.Len() != 0 {
		t.Errorf("query on an empty table returned %d rows", rows.Len())
	}
	if err := rows.Scan(0); err == nil {
		t.Errorf("Scan of a missing row succeeded")
	}
}

func (s *sqlSuite) orderLimit(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "order", "id INTEGER PRIMARY KEY, k TEXT NOT NULL")
	defer drop()
	var stmts []storage.Stmt
	for k := 0; k < 50; k++ {
		stmts = append(stmts, storage.Stmt{Query: "INSERT INTO " + tbl + " (id, k) VALUES (?, ?)", Args: []any{int64(k), fmt.Sprintf("k%03d", 49-k)}})
	}
	_, err := s.db.Batch(ctx, stmts)
	must(t, err, "batch insert")
	rows := s.query(t, ctx, "SELECT k FROM "+tbl+" ORDER BY k LIMIT ? OFFSET ?", 10, 20)
	if rows.Len() != 10 {
		t.Fatalf("LIMIT 10 returned %d rows", rows.Len())
	}
	for k := 0; k < 10; k++ {
		var got string
		must(t, rows.Scan(k, &got), "scan")
		if want := fmt.Sprintf("k%03d", 20+k); got != want {
			t.Errorf("row %d = %q, want %q", k, got, want)
		}
	}
}

func (s *sqlSuite) returningUpsert(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "upsert", "id TEXT PRIMARY KEY, n INTEGER NOT NULL")
	defer drop()
	for k := 1; k <= 3; k++ {
		rows := s.query(t, ctx, "INSERT INTO "+tbl+" (id, n) VALUES (?, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n", "counter")
		var n int64
		if rows.Len() != 1 {
			t.Fatalf("RETURNING gave %d rows", rows.Len())
		}
		must(t, rows.Scan(0, &n), "scan")
		if n != int64(k) {
			t.Errorf("upsert %d returned n = %d", k, n)
		}
	}
	if n := s.count(t, ctx, tbl); n != 1 {
		t.Errorf("%d rows after upserts, want 1", n)
	}
}

func (s *sqlSuite) scanConversions(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	rows := s.query(t, ctx, "SELECT 42, 2.0, 2.5, 'text', x'CAFE', NULL")
	var (
		i         int64
		fi        int64
		f         float64
		str       string
		b         []byte
		null      string
		asAny     any
		textBytes []byte
		blobStr   string
		iAsFloat  float64
		n         int
	)
	must(t, rows.Scan(0, &i, &fi, &f, &str, &b, &null), "scan")
	if i != 42 || fi != 2 || f != 2.5 || str != "text" || !bytes.Equal(b, []byte{0xCA, 0xFE}) || null != "" {
		t.Errorf("scanned %d %d %v %q %x %q", i, fi, f, str, b, null)
	}
	must(t, rows.Scan(0, &n, &iAsFloat, &asAny, &textBytes, &blobStr, &asAny), "scan with conversions")
	if n != 42 || iAsFloat != 2 || string(textBytes) != "text" || blobStr != "\xca\xfe" || asAny != nil {
		t.Errorf("converted scan got %d %v %q %q %v", n, iAsFloat, textBytes, blobStr, asAny)
	}
	if err := rows.Scan(0, &i, &i, &i, &i, &i, &i); err == nil {
		t.Errorf("scanning text into int64 succeeded")
	}
	if err := rows.Scan(0, &i, &fi, &i, &str, &b, &null); err == nil {
		t.Errorf("scanning 2.5 into int64 succeeded")
	}
	if err := rows.Scan(0, &i); err == nil {
		t.Errorf("scanning 6 columns into 1 destination succeeded")
	}
}

func (s *sqlSuite) concurrentCAS(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	tbl, drop := s.create(t, ctx, "concurrent", "id INTEGER PRIMARY KEY, n INTEGER NOT NULL, version INTEGER NOT NULL")
	defer drop()
	s.exec(t, ctx, "INSERT INTO "+tbl+" (id, n, version) VALUES (1, 0, 0)")
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				rows, err := s.db.Query(ctx, "SELECT n, version FROM "+tbl+" WHERE id = 1")
				if err != nil {
					errs <- err
					return
				}
				var n, v int64
				if err := rows.Scan(0, &n, &v); err != nil {
					errs <- err
					return
				}
				res, err := s.db.Exec(ctx, "UPDATE "+tbl+" SET n = ?, version = ? WHERE id = 1 AND version = ?", n+1, v+1, v)
				if err != nil {
					errs <- err
					return
				}
				if res.RowsAffected == 1 {
					done++
				} else if res.RowsAffected != 0 {
					errs <- fmt.Errorf("conditional update affected %d rows", res.RowsAffected)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("worker: %v", err)
	}
	rows := s.query(t, ctx, "SELECT n, version FROM "+tbl+" WHERE id = 1")
	var n, v int64
	must(t, rows.Scan(0, &n, &v), "scan")
	if n != workers*each || v != workers*each {
		t.Errorf("after %d successful conditional increments n = %d, version = %d (lost updates)", workers*each, n, v)
	}
}
