// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package identity

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

// noticeEnv is a tenant with owners owners and one agent, and a notice
// raised about the agent.
func noticeEnv(t *testing.T, owners int, toOwners bool) (storage.Platform, *jobs.Registry, string) {
	t.Helper()
	clk := storagetest.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
	p := localtest.Open(t, clk)
	ctx := context.Background()
	flag := 0
	if toOwners {
		flag = 1
	}
	stmts := []storage.Stmt{{Query: `INSERT INTO tenants (id, name, created_at, notices_to_owners) VALUES ('t_n', 'Owners Co', 0, ?)`, Args: []any{flag}}}
	add := func(id, role string, at int) {
		stmts = append(stmts,
			storage.Stmt{Query: `INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at) VALUES (?, ?, '', 'x', 0, 0)`,
				Args: []any{id, id + "@example.com"}},
			storage.Stmt{Query: `INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) VALUES ('t_n', ?, ?, 'active', ?, ?)`,
				Args: []any{id, role, at, at}})
	}
	for i := range owners {
		add(fmt.Sprintf("u_owner%02d", i), "owner", i)
	}
	add("u_agent", "agent", 1000)
	if _, err := p.SQL.Batch(ctx, stmts); err != nil {
		t.Fatal(err)
	}
	log := audit.New(p.SQL, p.Clock).Sealed(p.Keys)
	if ok, err := log.Raise(ctx, "t_n", audit.NoticeLoginBurst, "burst:account:user:u_agent:1", "5 or more failed logins for user:u_agent",
		audit.Event{TenantID: "t_n", ActorType: audit.ActorSystem, Action: audit.ActionLoginBurst, Target: "user:u_agent"}); err != nil || !ok {
		t.Fatalf("raise: %v %v", ok, err)
	}
	reg := jobs.NewRegistry()
	reg.Log = func(string, ...any) {}
	RegisterNotices(reg, p)
	return p, reg, "t_n"
}

func mailTo(t *testing.T, p storage.Platform, tenant string) map[string]bool {
	t.Helper()
	rows, err := p.SQL.Query(context.Background(), `SELECT to_addr FROM mail_log WHERE tenant_id = ? AND template = ?`, tenant, mail.TemplateSecurityNotice)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for i := range rows.Len() {
		var a string
		rows.Scan(i, &a)
		out[a] = true
	}
	return out
}

// A notice reaches at most maxNoticeOwners owners (the longest-standing),
// plus the person it is about; run twice, it queues nothing more.
func TestNoticeOwnersAreBounded(t *testing.T) {
	p, reg, tenant := noticeEnv(t, maxNoticeOwners+2, true)
	for range 2 {
		if _, err := reg.Run(context.Background(), p, jobs.RunOptions{Limit: 10}); err != nil {
			t.Fatal(err)
		}
		// The same delivery queued again (a retry) adds nothing.
		if _, err := p.SQL.Batch(context.Background(), []storage.Stmt{
			{Query: `UPDATE jobs SET state = 'queued', attempts = 0 WHERE tenant_id = ? AND kind = ?`, Args: []any{tenant, audit.NoticeJobKind}}}); err != nil {
			t.Fatal(err)
		}
	}
	got := mailTo(t, p, tenant)
	if len(got) != maxNoticeOwners+1 || !got["u_agent@example.com"] || !got["u_owner00@example.com"] ||
		!got[fmt.Sprintf("u_owner%02d@example.com", maxNoticeOwners-1)] || got[fmt.Sprintf("u_owner%02d@example.com", maxNoticeOwners)] {
		t.Fatalf("%d recipients: %v", len(got), got)
	}
	rows, _ := p.SQL.Query(context.Background(), `SELECT COUNT(*) FROM jobs WHERE tenant_id = ? AND kind = ?`, tenant, mail.KindSend)
	if rows.Values[0][0] != int64(maxNoticeOwners+1) {
		t.Fatalf("%v mail jobs", rows.Values)
	}
}

// With notices to owners off, only the person the notice is about.
func TestNoticeOwnersOptedOut(t *testing.T) {
	p, reg, tenant := noticeEnv(t, 2, false)
	if _, err := reg.Run(context.Background(), p, jobs.RunOptions{Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if got := mailTo(t, p, tenant); len(got) != 1 || !got["u_agent@example.com"] {
		t.Fatalf("recipients %v", got)
	}
}
