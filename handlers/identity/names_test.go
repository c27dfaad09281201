//go:build !js && !wasip1

package identity

import (
	"context"
	"fmt"
	"testing"
	"time"

	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

// TestMemberNames: names of the tenant's members only (another tenant's
// member, an unknown id and an empty name are absent), in batches larger
// than one statement binds.
func TestMemberNames(t *testing.T) {
	p := localtest.Open(t, storagetest.NewClock(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := p.SQL.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range []string{"t_a", "t_b"} {
		exec(`INSERT INTO tenants (id, name, created_at) VALUES (?, ?, 0)`, tn, tn)
	}
	member := func(tenant, id, name string) {
		exec(`INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at) VALUES (?, ?, ?, 'x', 0, 0) ON CONFLICT DO NOTHING`, id, id+"@example.com", name)
		exec(`INSERT INTO memberships (tenant_id, user_id, role, created_at, updated_at) VALUES (?, ?, 'agent', 0, 0)`, tenant, id)
	}
	member("t_a", "u_ayse", "Ayşe")
	member("t_a", "u_noname", "")
	member("t_b", "u_bob", "Bob")
	ids := []string{"u_ayse", "u_noname", "u_bob", "u_nobody"}
	for i := range 200 {
		id := fmt.Sprintf("u_m%03d", i)
		member("t_a", id, fmt.Sprintf("Member %d", i))
		ids = append(ids, id)
	}
	got, err := MemberNames(ctx, p, "t_a", ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 201 || got["u_ayse"] != "Ayşe" || got["u_m199"] != "Member 199" {
		t.Fatalf("%d names: %v", len(got), got["u_ayse"])
	}
	for _, absent := range []string{"u_noname", "u_bob", "u_nobody"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s is named", absent)
		}
	}
	if got, err := MemberNames(ctx, p, "t_a", nil); err != nil || len(got) != 0 {
		t.Fatalf("no ids: %v %v", got, err)
	}
}
