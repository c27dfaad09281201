// This test runs natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package handlers

import (
	"context"
	"regexp"
	"testing"
	"time"

	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

// TestTenantPurgesCoverEveryTable: deleting a tenant removes its rows from
// every table that has a tenant_id column, as the migrations define them
// today, so a capability that adds a table and forgets its purge fails here.
func TestTenantPurgesCoverEveryTable(t *testing.T) {
	p := localtest.Open(t, storagetest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	ctx := context.Background()
	rows, err := p.SQL.Query(ctx, `SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c
		WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY m.name`) // tenant-lookup: the schema, not data
	if err != nil {
		t.Fatal(err)
	}
	purged := map[string]bool{}
	del := regexp.MustCompile(`(?i)^\s*DELETE\s+FROM\s+(\w+)\s+WHERE\s+tenant_id\s*=\s*\?`)
	for _, purge := range tenantPurges {
		for _, st := range purge("t_x") {
			if m := del.FindStringSubmatch(st.Query); m != nil {
				purged[m[1]] = true
			}
		}
	}
	// tenant_keys goes with the data key itself (crypto-shredding), by
	// the key custodian, after the batch.
	exempt := map[string]bool{"tenant_keys": true}
	for i := range rows.Len() {
		var table string
		if err := rows.Scan(i, &table); err != nil {
			t.Fatal(err)
		}
		if !purged[table] && !exempt[table] {
			t.Errorf("table %s has a tenant_id column but no capability's PurgeTenantStmts deletes from it", table)
		}
	}
}
