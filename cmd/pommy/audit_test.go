package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/wasm/host/local"
)

// TestAuditVerifyCommand runs `pommy audit verify` in-process against a
// data directory: 0 when intact, 1 once a row is edited, 2 on usage errors.
func TestAuditVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := local.Open(ctx, local.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l := audit.New(p.SQL, p.Clock).Sealed(p.Keys)
	for _, tenant := range []string{"t_a", "t_b"} {
		for i := 0; i < 3; i++ {
			if err := l.Record(ctx, audit.Event{TenantID: tenant, ActorType: audit.ActorSystem, Action: "test.event"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.Close()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := auditMain(ctx, args, func(string) string { return "" }, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("verify", "--data", dir); code != 0 || !strings.Contains(out, "t_a: OK, 3 events") || !strings.Contains(out, "t_b: OK") {
		t.Fatalf("intact: %d\n%s%s", code, out, errs)
	}

	p, err = local.Open(ctx, local.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SQL.Exec(ctx, `UPDATE audit_events SET action = 'test.other' WHERE tenant_id = 't_b' AND seq = 2`); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if code, out, _ := run("verify", "--data", dir); code != 1 || !strings.Contains(out, "t_b: TAMPERED at seq 2 (edited)") || !strings.Contains(out, "t_a: OK") {
		t.Fatalf("tampered: %d\n%s", code, out)
	}
	if code, out, _ := run("verify", "--data", dir, "--tenant", "t_a"); code != 0 || strings.Contains(out, "t_b") {
		t.Fatalf("one tenant: %d\n%s", code, out)
	}
	for _, args := range [][]string{{}, {"check"}, {"verify", "--data", t.TempDir()}, {"verify", "--bogus"}, {"verify", "--data", dir, "extra"}} {
		if code, _, _ := run(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
