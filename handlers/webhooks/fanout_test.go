// These tests run natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package webhooks

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openPlatform(t *testing.T) (storage.Platform, *storagetest.Clock) {
	t.Helper()
	clk := storagetest.NewClock(t0)
	return localtest.Open(t, clk), clk
}

func insertHook(t *testing.T, p storage.Platform, tenant, id, events string, enabled bool) {
	t.Helper()
	if _, err := p.SQL.Exec(context.Background(), `INSERT INTO webhooks (tenant_id, id, url, events, enabled, secret_sealed, created_at, updated_at) VALUES (?, ?, 'https://example.com/h', ?, ?, x'00', 1, 1)`,
		tenant, id, events, enabled); err != nil {
		t.Fatal(err)
	}
}

func TestFanout(t *testing.T) {
	p, _ := openPlatform(t)
	ctx := context.Background()
	insertHook(t, p, "t1", "wh_a", "message.created conversation.created", true)
	insertHook(t, p, "t1", "wh_b", "conversation.created", true)
	insertHook(t, p, "t1", "wh_c", "message.created", false) // disabled
	insertHook(t, p, "t2", "wh_d", "message.created", true)  // another tenant
	insertHook(t, p, "t1", "wh_e", "message.created_x", true)

	for range 2 { // the same event twice enqueues once
		if _, err := p.SQL.Batch(ctx, []storage.Stmt{Fanout("t1", "message.created", "c_1", 7, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := p.SQL.Query(ctx, `SELECT id, kind, ref, payload, state, run_at, max_attempts FROM jobs WHERE tenant_id = ? ORDER BY id`, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Len() != 1 {
		t.Fatalf("%d jobs, want 1 (wh_a only): %v", rows.Len(), rows.Values)
	}
	var id, kind, ref, payload, state string
	var runAt, max int64
	if err := rows.Scan(0, &id, &kind, &ref, &payload, &state, &runAt, &max); err != nil {
		t.Fatal(err)
	}
	if id != "msg_a_c_1_7" || kind != KindDeliver || ref != "wh_a" || state != "queued" || runAt != 1000 || max != MaxAttempts {
		t.Fatalf("job %s %s %s %s %d %d", id, kind, ref, state, runAt, max)
	}
	var pl deliveryPayload
	if err := json.Unmarshal([]byte(payload), &pl); err != nil || pl != (deliveryPayload{"wh_a", "message.created", "c_1", 7}) {
		t.Fatalf("payload %s: %+v %v", payload, pl, err)
	}
	if rows, _ := p.SQL.Query(ctx, `SELECT id FROM jobs WHERE tenant_id = ?`, "t2"); rows.Len() != 0 {
		t.Fatal("another tenant's subscription got a job")
	}
}

func TestFanoutRefusesUnknownType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Fanout("t1", "message.deleted", "c", 1, 1)
}
