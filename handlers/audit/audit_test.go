// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// open gives a fresh local platform (real SQLite, all migrations) and a Log.
func open(t *testing.T) (*Log, storage.SQL, *storagetest.Clock) {
	t.Helper()
	clk := storagetest.NewClock(t0)
	p := localtest.Open(t, clk)
	return New(p.SQL, clk), p.SQL, clk
}

func ev(tenant, action string, i int) Event {
	return Event{TenantID: tenant, ActorType: ActorUser, ActorID: fmt.Sprintf("u_%d", i%3), Action: action,
		Target: fmt.Sprintf("note:n_%d", i), IP: "192.0.2.1", UserAgent: "test/1", RequestID: fmt.Sprintf("req%08d", i),
		Details: map[string]string{"i": fmt.Sprint(i)}}
}

func record(t *testing.T, l *Log, tenant string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := l.Record(context.Background(), ev(tenant, "note.created", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, l *Log, tenant string) Report {
	t.Helper()
	rep, err := l.Verify(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("verify %s: %s", tenant, rep)
	}
	return rep
}

func TestChainAppendAndVerify(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	if rep := mustVerify(t, l, "t_a"); rep.Events != 0 || rep.HeadSeq != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
	record(t, l, "t_a", 5)
	record(t, l, "t_b", 2)
	rep := mustVerify(t, l, "t_a")
	if rep.Events != 5 || rep.FirstSeq != 1 || rep.LastSeq != 5 || rep.HeadSeq != 5 {
		t.Fatalf("report %+v", rep)
	}
	if rep := mustVerify(t, l, "t_b"); rep.Events != 2 {
		t.Fatalf("t_b report %+v", rep)
	}
	rows, err := db.Query(ctx, `SELECT seq, prev_hash, hash FROM audit_events WHERE tenant_id = ? ORDER BY seq`, "t_a")
	if err != nil {
		t.Fatal(err)
	}
	prev := make([]byte, 32)
	for i := 0; i < rows.Len(); i++ {
		var seq int64
		var ph, h []byte
		rows.Scan(i, &seq, &ph, &h)
		if seq != int64(i+1) || !bytes.Equal(ph, prev) || len(h) != 32 {
			t.Fatalf("row %d: seq %d prev %x (want %x)", i, seq, ph, prev)
		}
		prev = h
	}
	if _, head, _ := l.Head(ctx, "t_a"); head != hex.EncodeToString(prev) {
		t.Fatalf("head %s, last hash %x", head, prev)
	}
	// Invalid events are refused, not dropped silently.
	for _, bad := range []Event{{TenantID: "t_a", ActorType: ActorUser}, {Action: "x", ActorType: ActorUser}, {TenantID: "t_a", Action: "x", ActorType: "robot"}} {
		if err := l.Record(ctx, bad); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("Record(%+v) = %v", bad, err)
		}
	}
	// Client-controlled strings are stored in their hashed form.
	e := ev("t_a", "x.y", 9)
	e.UserAgent = strings.Repeat("é", 400) + "\xff"
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, l, "t_a")
}

// independentHash re-implements docs/audit.md's canonical encoding from the
// exported NDJSON fields alone, as an auditor would.
func independentHash(t *testing.T, prev []byte, m map[string]any) []byte {
	d := m["details"].(map[string]any)
	version := "pommy-audit-v1"
	for _, v := range d {
		if _, ok := v.(string); !ok {
			version = "pommy-audit-v2"
		}
	}
	var b []byte
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = append(b, version...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(int64(m["seq"].(float64))))
	b = binary.BigEndian.AppendUint64(b, uint64(int64(m["at_ms"].(float64))))
	for _, k := range []string{"tenant_id", "actor_type", "actor_id", "action", "target", "ip", "user_agent", "request_id"} {
		str(m[k].(string))
	}
	sorted := func(o map[string]any) []string {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	var value func(v any)
	value = func(v any) {
		switch x := v.(type) {
		case nil:
			b = append(b, 'z')
		case bool:
			b = append(b, map[bool]byte{true: 't', false: 'f'}[x])
		case string:
			b = append(b, 's')
			str(x)
		case float64:
			if x != float64(int64(x)) {
				t.Fatalf("exported number %v is not an integer", x)
			}
			b = append(b, 'n')
			str(strconv.FormatInt(int64(x), 10))
		case []any:
			b = binary.BigEndian.AppendUint32(append(b, 'a'), uint32(len(x)))
			for _, e := range x {
				value(e)
			}
		case map[string]any:
			keys := sorted(x)
			b = binary.BigEndian.AppendUint32(append(b, 'o'), uint32(len(keys)))
			for _, k := range keys {
				str(k)
				value(x[k])
			}
		default:
			t.Fatalf("exported detail of type %T", v)
		}
	}
	keys := sorted(d)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		str(k)
		if version == "pommy-audit-v1" {
			str(d[k].(string))
		} else {
			value(d[k])
		}
	}
	sum := sha256.Sum256(append(append([]byte{}, prev...), b...))
	return sum[:]
}

// TestExportReverifiesIndependently: the NDJSON export carries everything
// an auditor needs to recompute the chain without this package.
func TestExportReverifiesIndependently(t *testing.T) {
	l, _, clk := open(t)
	ctx := context.Background()
	for i := 1; i <= 1234; i++ { // more than two export pages
		e := ev("t_a", "conversation.read", i)
		if i%7 == 0 {
			e.Details = nil
		}
		if i%5 == 0 { // structured details: version 2
			e.Values = map[string]any{"changes": map[string]any{"name": map[string]any{"from": "A <b>&", "to": "B"},
				"idle": map[string]any{"from": 30, "to": -i}}, "list": []any{true, false, nil, "x", 0}}
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	var buf bytes.Buffer
	n, err := l.Export(ctx, "t_a", Filter{}, &buf)
	if err != nil || n != 1234 {
		t.Fatalf("export: %d, %v", n, err)
	}
	sc := bufio.NewScanner(&buf)
	prev, lines := make([]byte, 32), 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", lines+1, err)
		}
		lines++
		if int64(m["seq"].(float64)) != int64(lines) {
			t.Fatalf("line %d has seq %v", lines, m["seq"])
		}
		if m["prev_hash"] != hex.EncodeToString(prev) {
			t.Fatalf("line %d: prev_hash %v", lines, m["prev_hash"])
		}
		h := independentHash(t, prev, m)
		if m["hash"] != hex.EncodeToString(h) {
			t.Fatalf("line %d: hash %v, recomputed %x", lines, m["hash"], h)
		}
		prev = h
	}
	if lines != 1234 {
		t.Fatalf("%d lines", lines)
	}
}

func TestConcurrentRecord(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e := ev("t_a", "conversation.read", w*1000+i)
				if err := l.Record(ctx, e); err != nil {
					errs <- err
				}
				// Another tenant's chain alongside.
				if i%5 == 0 {
					if err := l.Record(ctx, ev("t_b", "x", i)); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep := mustVerify(t, l, "t_a")
	if rep.Events != workers*each || rep.LastSeq != workers*each {
		t.Fatalf("report %+v", rep)
	}
	mustVerify(t, l, "t_b")
	// Every event is present exactly once.
	rows, err := db.Query(ctx, `SELECT COUNT(DISTINCT target) FROM audit_events WHERE tenant_id = ?`, "t_a")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	rows.Scan(0, &n)
	if n != workers*each {
		t.Fatalf("%d distinct events", n)
	}
}

func TestTamperDetection(t *testing.T) {
	hashOf := `(SELECT hash FROM audit_events WHERE tenant_id = 't_a' AND seq = %d)`
	cases := []struct {
		name    string
		sql     []string
		problem string
		bad     int64
	}{
		{"action changed", []string{`UPDATE audit_events SET action = 'note.read' WHERE tenant_id = 't_a' AND seq = 5`}, ProblemEdited, 5},
		{"actor changed", []string{`UPDATE audit_events SET actor_id = 'u_evil' WHERE tenant_id = 't_a' AND seq = 4`}, ProblemEdited, 4},
		{"details changed", []string{`UPDATE audit_events SET details = '{"i":"99"}' WHERE tenant_id = 't_a' AND seq = 6`}, ProblemEdited, 6},
		{"details respelled", []string{`UPDATE audit_events SET details = '{"i": "6"}' WHERE tenant_id = 't_a' AND seq = 6`}, ProblemMalformed, 6},
		{"at changed", []string{`UPDATE audit_events SET at = at - 1 WHERE tenant_id = 't_a' AND seq = 7`}, ProblemEdited, 7},
		{"ip changed", []string{`UPDATE audit_events SET ip = '198.51.100.7' WHERE tenant_id = 't_a' AND seq = 10`}, ProblemEdited, 10},
		{"middle deleted", []string{`DELETE FROM audit_events WHERE tenant_id = 't_a' AND seq = 5`}, ProblemMissing, 5},
		{"first deleted", []string{`DELETE FROM audit_events WHERE tenant_id = 't_a' AND seq <= 2`}, ProblemMissing, 1},
		{"last deleted", []string{`DELETE FROM audit_events WHERE tenant_id = 't_a' AND seq = 10`}, ProblemTruncated, 10},
		{"all deleted", []string{`DELETE FROM audit_events WHERE tenant_id = 't_a'`}, ProblemTruncated, 1},
		{"head deleted", []string{`DELETE FROM audit_heads WHERE tenant_id = 't_a'`}, ProblemNoHead, 1},
		{"swapped", []string{
			`UPDATE audit_events SET seq = 1000 WHERE tenant_id = 't_a' AND seq = 3`,
			`UPDATE audit_events SET seq = 3 WHERE tenant_id = 't_a' AND seq = 7`,
			`UPDATE audit_events SET seq = 7 WHERE tenant_id = 't_a' AND seq = 1000`}, ProblemBadLink, 3},
		{"swapped contents, links kept", []string{
			// Move row 8's contents into row 9 keeping 9's links: the hash no longer matches.
			`UPDATE audit_events SET target = (SELECT target FROM audit_events WHERE tenant_id = 't_a' AND seq = 8) WHERE tenant_id = 't_a' AND seq = 9`}, ProblemEdited, 9},
		{"forged checkpoint", []string{
			`INSERT INTO audit_checkpoints (tenant_id, seq, hash, at) VALUES ('t_a', 3, ` + fmt.Sprintf(hashOf, 3) + `, 0)`,
			`DELETE FROM audit_events WHERE tenant_id = 't_a' AND seq <= 3`}, ProblemBadCheckpoint, 3},
		{"appended outside", []string{
			`INSERT INTO audit_events SELECT tenant_id, 11, at, actor_type, actor_id, action, target, ip, user_agent, request_id, details, hash, hash, seal FROM audit_events WHERE tenant_id = 't_a' AND seq = 10`}, ProblemBeyondHead, 11},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, db, _ := open(t)
			ctx := context.Background()
			record(t, l, "t_a", 10)
			record(t, l, "t_b", 3)
			mustVerify(t, l, "t_a")
			for _, q := range c.sql {
				if _, err := db.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep, err := l.Verify(ctx, "t_a")
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Problem != c.problem || rep.BadSeq != c.bad {
				t.Fatalf("got %s (problem %q), want %s at %d", rep, rep.Problem, c.problem, c.bad)
			}
			mustVerify(t, l, "t_b") // the other tenant's chain is untouched
			var out bytes.Buffer
			if ok, err := l.VerifyAll(ctx, "", &out); err != nil || ok || !strings.Contains(out.String(), "t_a: TAMPERED") || !strings.Contains(out.String(), "t_b: OK") {
				t.Fatalf("VerifyAll = %v, %v:\n%s", ok, err, out.String())
			}
		})
	}
}

// TestConsistentRewriteIsNotDetected pins down the documented limit: an
// attacker with write access to the database who deletes the newest event
// and moves the head back is not detected by Verify alone; an auditor's
// saved head is what catches it.
func TestConsistentRewriteIsNotDetected(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	record(t, l, "t_a", 5)
	_, saved, _ := l.Head(ctx, "t_a")
	db.Exec(ctx, `DELETE FROM audit_events WHERE tenant_id = 't_a' AND seq = 5`)
	db.Exec(ctx, `UPDATE audit_heads SET seq = 4, hash = (SELECT hash FROM audit_events WHERE tenant_id = 't_a' AND seq = 4) WHERE tenant_id = 't_a'`)
	rep := mustVerify(t, l, "t_a")
	if rep.HeadHash == saved {
		t.Fatal("head unchanged")
	}
}

// TestSealedLogRefusesARecomputedChain: someone who can write the database
// but does not hold the master key edits an event and recomputes every hash
// after it, and the head. The unsealed chain cannot tell; the keyed seals
// can.
func TestSealedLogRefusesARecomputedChain(t *testing.T) {
	ctx := context.Background()
	clk := storagetest.NewClock(t0)
	p, err := local.Open(ctx, local.Config{Dir: t.TempDir(), Clock: clk, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sealed := New(p.SQL, clk).Sealed(p.Keys)
	for i := 1; i <= 5; i++ {
		if err := sealed.Record(ctx, ev("t_a", "note.read", i)); err != nil {
			t.Fatal(err)
		}
	}
	if rep := mustVerify(t, sealed, "t_a"); rep.Events != 5 {
		t.Fatalf("sealed chain: %+v", rep)
	}

	// The rewrite: event 3 becomes a different action; 3..5 and the head are
	// recomputed exactly as Record would, without the key.
	rows, err := p.SQL.Query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE tenant_id = 't_a' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := scanRows("t_a", rows)
	if err != nil {
		t.Fatal(err)
	}
	prev := evs[1].Hash
	for i := 2; i < len(evs); i++ {
		r := &evs[i]
		if r.Details, r.Values, err = decodeDetails(r.Detail); err != nil {
			t.Fatal(err)
		}
		if r.Seq == 3 {
			r.Action = "note.created"
		}
		h := chainHash(prev, r.Seq, r.AtMS, &r.Event)
		if _, err := p.SQL.Exec(ctx, `UPDATE audit_events SET action = ?, prev_hash = ?, hash = ? WHERE tenant_id = 't_a' AND seq = ?`, r.Action, prev, h, r.Seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if _, err := p.SQL.Exec(ctx, `UPDATE audit_heads SET hash = ? WHERE tenant_id = 't_a'`, prev); err != nil {
		t.Fatal(err)
	}

	if rep := mustVerify(t, New(p.SQL, clk), "t_a"); !rep.OK {
		t.Fatalf("the rewrite is not consistent, so this test proves nothing: %+v", rep)
	}
	rep, err := sealed.Verify(ctx, "t_a")
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Problem != ProblemBadSeal || rep.BadSeq != 3 {
		t.Fatalf("sealed verify of a recomputed chain: %+v", rep)
	}
}

func TestRetentionSettings(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	by := Event{ActorType: ActorUser, ActorID: "u_owner", IP: "192.0.2.9", RequestID: "req-retention"}
	if d, _ := l.Retention(ctx, "t_a"); d != DefaultRetentionDays {
		t.Fatalf("default %d", d)
	}
	for _, c := range []struct {
		days int
		want error
	}{{30, ErrRetentionTooShort}, {89, ErrRetentionTooShort}, {90, ErrRetentionLowered}, {200, ErrRetentionLowered},
		{400, nil}, {380, ErrRetentionLowered}, {400, nil}, {5000, ErrRetentionTooLong}, {730, nil}} {
		if err := l.SetRetention(ctx, "t_a", c.days, by); !errors.Is(err, c.want) {
			t.Errorf("SetRetention(%d) = %v, want %v", c.days, err, c.want)
		}
	}
	if d, _ := l.Retention(ctx, "t_a"); d != 730 {
		t.Fatalf("retention %d", d)
	}
	if d, _ := l.Retention(ctx, "t_b"); d != DefaultRetentionDays {
		t.Fatalf("t_b retention %d", d)
	}
	// Each change is audited with who made it.
	p, err := l.Query(ctx, "t_a", Filter{Action: ActionRetentionChanged})
	if err != nil || len(p.Events) != 2 || p.Events[0].ActorID != "u_owner" || p.Events[0].Details["to_days"] != "730" || p.Events[0].Details["from_days"] != "400" {
		t.Fatalf("events %+v, %v", p, err)
	}
	// The table refuses less than 90 days even to a direct write.
	if _, err := db.Exec(ctx, `UPDATE audit_settings SET retention_days = 30 WHERE tenant_id = 't_a'`); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("direct lowering: %v", err)
	}
	mustVerify(t, l, "t_a")
}

func TestPruneKeepsChainVerifiable(t *testing.T) {
	l, db, clk := open(t)
	ctx := context.Background()
	record(t, l, "t_a", 1200) // more than one delete page
	clk.Advance(200 * 24 * time.Hour)
	// Within the default 365 days: nothing goes.
	if r, err := l.Prune(ctx, "t_a", clk.Now()); err != nil || r.Deleted != 0 || r.ThroughSeq != 0 {
		t.Fatalf("prune at 200 days: %+v, %v", r, err)
	}
	clk.Advance(200 * 24 * time.Hour)
	record(t, l, "t_a", 3) // seq 1201..1203, young
	r, err := l.Prune(ctx, "t_a", clk.Now())
	if err != nil || r.Deleted != 1200 || r.ThroughSeq != 1200 || !r.Done {
		t.Fatalf("prune: %+v, %v", r, err)
	}
	rep := mustVerify(t, l, "t_a")
	if rep.CheckpointSeq != 1200 || rep.FirstSeq != 1201 || rep.Events != 4 { // 3 + the audit.pruned event
		t.Fatalf("report %+v", rep)
	}
	// Again at once: nothing more.
	if r, err := l.Prune(ctx, "t_a", clk.Now()); err != nil || r.Deleted != 0 || r.ThroughSeq != 1200 {
		t.Fatalf("second prune: %+v, %v", r, err)
	}
	// An interrupted prune (checkpoint moved, rows not yet deleted) verifies
	// and is finished by the next one.
	clk.Advance(400 * 24 * time.Hour)
	record(t, l, "t_a", 2)
	db.Exec(ctx, `UPDATE audit_events SET tenant_id = 't_hold' WHERE tenant_id = 't_a' AND seq BETWEEN 1201 AND 1203`) // hide rows from the delete
	r, err = l.Prune(ctx, "t_a", clk.Now())
	if err != nil || r.ThroughSeq != 1204 || r.Deleted != 1 {
		t.Fatalf("third prune: %+v, %v", r, err)
	}
	db.Exec(ctx, `UPDATE audit_events SET tenant_id = 't_a' WHERE tenant_id = 't_hold'`) // as if the delete never ran
	rep = mustVerify(t, l, "t_a")
	if rep.CheckpointSeq != 1204 || rep.FirstSeq != 1205 {
		t.Fatalf("report %+v", rep)
	}
	if r, err := l.Prune(ctx, "t_a", clk.Now()); err != nil || r.Deleted != 3 || r.ThroughSeq != 1204 {
		t.Fatalf("fourth prune: %+v, %v", r, err)
	}
	mustVerify(t, l, "t_a")
	// PruneAll prunes every tenant, and only what is past retention.
	l2, _, clk2 := open(t)
	record(t, l2, "t_c", 2)
	record(t, l2, "t_d", 2)
	clk2.Advance(364 * 24 * time.Hour)
	record(t, l2, "t_d", 1)
	if err := l2.PruneAll(ctx, clk2.Now()); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l2, "t_c"); rep.Events != 2 {
		t.Fatalf("pruned within retention: %+v", rep)
	}
	clk2.Advance(2 * 24 * time.Hour)
	if err := l2.PruneAll(ctx, clk2.Now()); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l2, "t_c"); rep.Events != 1 || rep.CheckpointSeq != 2 {
		t.Fatalf("t_c after retention: %+v", rep)
	}
	if rep := mustVerify(t, l2, "t_d"); rep.Events != 2 || rep.CheckpointSeq != 2 {
		t.Fatalf("t_d after retention: %+v", rep)
	}
}

func TestQueryFilters(t *testing.T) {
	l, _, clk := open(t)
	ctx := context.Background()
	actions := []string{"auth.login.succeeded", "auth.login.failed", "member.role.changed", "conversation.read", "authz.denied"}
	for i := 0; i < 50; i++ {
		if err := l.Record(ctx, ev("t_a", actions[i%len(actions)], i)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	record(t, l, "t_b", 5)
	q := func(f Filter) Page {
		t.Helper()
		p, err := l.Query(ctx, "t_a", f)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := q(Filter{Action: "auth."}); len(p.Events) != 20 {
		t.Fatalf("auth. prefix: %d", len(p.Events))
	}
	if p := q(Filter{Action: "auth.login.failed"}); len(p.Events) != 10 || p.Events[0].Action != "auth.login.failed" {
		t.Fatalf("exact action: %d", len(p.Events))
	}
	if p := q(Filter{Action: "auth"}); len(p.Events) != 30 {
		t.Fatalf("auth prefix: %d", len(p.Events))
	}
	if p := q(Filter{ActorID: "u_1"}); len(p.Events) != 17 {
		t.Fatalf("actor: %d", len(p.Events))
	}
	if p := q(Filter{Target: "note:n_7"}); len(p.Events) != 1 || p.Events[0].Seq != 8 {
		t.Fatalf("target: %+v", p.Events)
	}
	if p := q(Filter{Since: t0.Add(10 * time.Minute), Until: t0.Add(20 * time.Minute)}); len(p.Events) != 10 || p.Events[0].Seq != 20 || p.Events[9].Seq != 11 {
		t.Fatalf("time range: %d", len(p.Events))
	}
	if p := q(Filter{Action: "member.", ActorID: "u_0"}); len(p.Events) != 3 {
		t.Fatalf("combined: %d", len(p.Events))
	}
	// Pagination: every event once, newest first.
	var seen []int64
	f := Filter{Limit: 7}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		p := q(f)
		for _, e := range p.Events {
			if e.TenantID != "t_a" {
				t.Fatalf("foreign tenant's event %+v", e)
			}
			seen = append(seen, e.Seq)
		}
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	if len(seen) != 50 || seen[0] != 50 || seen[49] != 1 || !sort.SliceIsSorted(seen, func(i, j int) bool { return seen[i] > seen[j] }) {
		t.Fatalf("pages gave %v", seen)
	}
	for _, bad := range []Filter{{Limit: -1}, {Limit: MaxLimit + 1}, {Cursor: "abc"}, {Cursor: "-5"}, {Since: t0.Add(time.Hour), Until: t0}} {
		if _, err := l.Query(ctx, "t_a", bad); !errors.Is(err, ErrBadFilter) {
			t.Errorf("Query(%+v) = %v", bad, err)
		}
	}
	// Export honours the filters too.
	var buf bytes.Buffer
	if n, err := l.Export(ctx, "t_a", Filter{Action: "auth.login."}, &buf); err != nil || n != 20 || strings.Count(buf.String(), "\n") != 20 {
		t.Fatalf("export: %d, %v", n, err)
	}
}

func TestLoginBurst(t *testing.T) {
	l, _, clk := open(t)
	ctx := context.Background()
	fail := func(account, ip string) []Event {
		t.Helper()
		raised, err := l.RecordLogin(ctx, Event{TenantID: "t_a", ActorType: ActorAnonymous, Action: ActionLoginFailed,
			Target: account, IP: ip, UserAgent: "ua", RequestID: "req-login"})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
		return raised
	}
	for i := 1; i <= 4; i++ {
		if r := fail("user:u_1", fmt.Sprintf("192.0.2.%d", i)); len(r) != 0 {
			t.Fatalf("failure %d raised %+v", i, r)
		}
	}
	r := fail("user:u_1", "192.0.2.5")
	if len(r) != 1 || r[0].Action != ActionLoginBurst || r[0].Target != "user:u_1" || r[0].Details["scope"] != "account" {
		t.Fatalf("5th failure raised %+v", r)
	}
	if r := fail("user:u_1", "192.0.2.6"); len(r) != 0 {
		t.Fatalf("6th failure raised again: %+v", r)
	}
	// A new window, a new burst.
	clk.Advance(20 * time.Minute)
	for i := 1; i <= 4; i++ {
		fail("user:u_1", "192.0.2.7")
	}
	if r := fail("user:u_1", "192.0.2.7"); len(r) != 1 {
		t.Fatalf("burst in the next window raised %+v", r)
	}
	// Per IP, over many accounts.
	clk.Advance(time.Hour)
	var ipBurst []Event
	for i := 0; i < 20; i++ {
		ipBurst = append(ipBurst, fail(fmt.Sprintf("user:u_x%d", i), "203.0.113.9")...)
	}
	if len(ipBurst) != 1 || ipBurst[0].Target != "ip:203.0.113.9" || ipBurst[0].Details["scope"] != "ip" {
		t.Fatalf("IP burst raised %+v", ipBurst)
	}
	ns, err := l.Notices(ctx, "t_a", 0)
	if err != nil || len(ns) != 3 {
		t.Fatalf("notices %+v, %v", ns, err)
	}
	for _, n := range ns {
		if n.Kind != NoticeLoginBurst || n.ReadAt != nil {
			t.Fatalf("notice %+v", n)
		}
	}
	if err := l.MarkNoticeRead(ctx, "t_a", ns[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkNoticeRead(ctx, "t_b", ns[1].ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("foreign tenant marked a notice: %v", err)
	}
	p, _ := l.Query(ctx, "t_a", Filter{Action: "security."})
	if len(p.Events) != 3 || p.Events[0].Details["notice_id"] == "" {
		t.Fatalf("security events %+v", p.Events)
	}
	mustVerify(t, l, "t_a")
}

func TestNewLocation(t *testing.T) {
	l, _, clk := open(t)
	ctx := context.Background()
	ok := func(user, ip, country string) []Event {
		t.Helper()
		e := Event{TenantID: "t_a", ActorType: ActorUser, ActorID: user, Action: ActionLoginSucceeded, Target: "user:" + user, IP: ip}
		if country != "" {
			e.Details = map[string]string{"country": country}
		}
		raised, err := l.RecordLogin(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		return raised
	}
	if r := ok("u_1", "192.0.2.1", "NZ"); len(r) != 0 {
		t.Fatalf("first login raised %+v", r)
	}
	if r := ok("u_1", "192.0.2.1", "NZ"); len(r) != 0 {
		t.Fatalf("same place raised %+v", r)
	}
	r := ok("u_1", "192.0.2.2", "NZ")
	if len(r) != 1 || r[0].Action != ActionNewLocation || r[0].Details["new"] != "ip" {
		t.Fatalf("new IP raised %+v", r)
	}
	r = ok("u_1", "192.0.2.2", "AU")
	if len(r) != 1 || r[0].Details["new"] != "country" {
		t.Fatalf("new country raised %+v", r)
	}
	r = ok("u_1", "198.51.100.1", "FR")
	if len(r) != 1 || r[0].Details["new"] != "ip,country" {
		t.Fatalf("new IP and country raised %+v", r)
	}
	if r := ok("u_1", "198.51.100.1", "FR"); len(r) != 0 {
		t.Fatalf("repeat raised %+v", r)
	}
	// Another person's history is their own.
	ok("u_2", "198.51.100.1", "FR")
	if r := ok("u_2", "192.0.2.1", "NZ"); len(r) != 1 {
		t.Fatalf("u_2 new place raised %+v", r)
	}
	ns, _ := l.Notices(ctx, "t_a", 0)
	if len(ns) != 4 || ns[0].Kind != NoticeNewLocation {
		t.Fatalf("notices %+v", ns)
	}
	if _, err := l.CheckLogin(ctx, Event{TenantID: "t_a", Action: "note.read"}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("CheckLogin of a non-login: %v", err)
	}
	mustVerify(t, l, "t_a")
}

func TestRecordBatchAtomic(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	db.Exec(ctx, `CREATE TABLE side (k TEXT PRIMARY KEY)`)
	if _, err := l.RecordBatch(ctx, ev("t_a", "side.set", 1), []storage.Stmt{{Query: `INSERT INTO side (k) VALUES ('a')`}}); err != nil {
		t.Fatal(err)
	}
	// A failing extra statement takes the event with it, without spinning.
	_, err := l.RecordBatch(ctx, ev("t_a", "side.set", 2), []storage.Stmt{{Query: `INSERT INTO side (k) VALUES ('a')`}})
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("duplicate side row: %v", err)
	}
	if rep := mustVerify(t, l, "t_a"); rep.Events != 1 {
		t.Fatalf("report %+v", rep)
	}
	// Tenant purge removes every trace.
	record(t, l, "t_a", 2)
	if _, err := db.Batch(ctx, PurgeTenantStmts("t_a")); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, l, "t_a"); rep.Events != 0 || rep.HeadSeq != 0 {
		t.Fatalf("after purge %+v", rep)
	}
}

// TestStructuredDetails: details that are objects, arrays, integers and
// booleans are stored as such (not as JSON text inside a string), come back
// as such from Query, and are covered by the hash and the seal like text.
func TestStructuredDetails(t *testing.T) {
	l, db, _ := open(t)
	ctx := context.Background()
	type change struct {
		From any `json:"from"`
		To   any `json:"to"`
	}
	e := ev("t_a", "settings.changed", 1)
	e.Details = map[string]string{"why": "<script>"}
	e.Values = map[string]any{
		"changes": map[string]change{"name": {"Old & Co", "New <Co>"}, "session_idle_minutes": {30, 15}},
		"plain":   "a string value is kept as text",
		"neg":     -0.0,
	}
	if err := l.Record(ctx, e); err != nil {
		t.Fatal(err)
	}
	record(t, l, "t_a", 2) // text-only events after it keep version 1
	mustVerify(t, l, "t_a")

	rows, err := db.Query(ctx, `SELECT details FROM audit_events WHERE tenant_id = 't_a' AND seq = 1`)
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	rows.Scan(0, &stored)
	want := `{"changes":{"name":{"from":"Old \u0026 Co","to":"New \u003cCo\u003e"},"session_idle_minutes":{"from":30,"to":15}},"neg":0,"plain":"a string value is kept as text","why":"\u003cscript\u003e"}`
	if stored != want {
		t.Fatalf("stored details\n%s\nwant\n%s", stored, want)
	}
	p, err := l.Query(ctx, "t_a", Filter{Action: "settings."})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("query: %v %+v", err, p)
	}
	ch, ok := p.Events[0].Details["changes"].(map[string]any)
	if !ok {
		t.Fatalf("changes is %T, want an object", p.Events[0].Details["changes"])
	}
	if idle := ch["session_idle_minutes"].(map[string]any); idle["from"] != json.Number("30") || idle["to"] != json.Number("15") {
		t.Errorf("idle change %v", idle)
	}
	var buf bytes.Buffer
	if _, err := l.Export(ctx, "t_a", Filter{Action: "settings."}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"to":"New <Co>"`) || strings.Contains(buf.String(), `\u003c`) {
		t.Errorf("export escapes or loses the structure: %s", buf.String())
	}

	// Tampering with a structured value is caught: another number, the
	// same number as text (version 1 then), another spelling of it.
	for _, tc := range []struct{ name, details, problem string }{
		{"another number", strings.Replace(want, `"to":15`, `"to":120`, 1), ProblemEdited},
		{"number as text", strings.Replace(want, `"to":15`, `"to":"15"`, 1), ProblemEdited},
		{"all text", `{"changes":"{}","neg":"0","plain":"a string value is kept as text","why":"\u003cscript\u003e"}`, ProblemEdited},
		{"other spelling", strings.Replace(want, `"to":15`, `"to":15.0`, 1), ProblemMalformed},
		{"spacing", strings.Replace(want, `"to":15`, `"to": 15`, 1), ProblemMalformed},
		{"a fraction", strings.Replace(want, `"to":15`, `"to":1.5`, 1), ProblemMalformed},
		{"duplicate key", strings.Replace(want, `{"from":30,`, `{"from":30,"from":30,`, 1), ProblemMalformed},
	} {
		if _, err := db.Exec(ctx, `UPDATE audit_events SET details = ? WHERE tenant_id = 't_a' AND seq = 1`, tc.details); err != nil {
			t.Fatal(err)
		}
		rep, err := l.Verify(ctx, "t_a")
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.BadSeq != 1 || rep.Problem != tc.problem {
			t.Errorf("%s: report %s, want %s at 1", tc.name, rep, tc.problem)
		}
	}
	if _, err := db.Exec(ctx, `UPDATE audit_events SET details = ? WHERE tenant_id = 't_a' AND seq = 1`, want); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, l, "t_a")

	// What cannot be stored exactly is refused.
	for _, vals := range []map[string]any{
		{"x": 1.5}, {"x": uint64(1) << 63}, {"x": func() {}}, {"x": strings.Repeat("y", maxDetailLen+1)},
	} {
		e := ev("t_a", "x", 9)
		e.Values = vals
		if err := l.Record(ctx, e); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("Record with values %.40v: %v, want ErrInvalidEvent", vals, err)
		}
	}
	e = ev("t_a", "x", 9)
	e.Values = map[string]any{"i": 1}
	if err := l.Record(ctx, e); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("a key in Details and in Values: %v", err)
	}
}
