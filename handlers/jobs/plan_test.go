// This test runs natively, against the local home's real SQLite.
//
//go:build !js && !wasip1

package jobs

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/wasm/host/local/localtest"
)

// TestPageQueryUsesAnIndex: every shape of the jobs view's statement is
// answered from an index in its order, so a page costs its length, not a
// sort of all of the tenant's retained jobs.
func TestPageQueryUsesAnIndex(t *testing.T) {
	p := localtest.Open(t, storagetest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	for _, q := range []Query{
		{Limit: 50},
		{State: "dead", Limit: 50},
		{State: "dead", Kind: "webhook.deliver", Limit: 50, After: Cursor{At: 1, ID: "job_x"}},
		{Kind: "conversation.wake", Limit: 50, After: Cursor{At: 1, ID: "job_x"}},
	} {
		query, args := pageQuery("t_a", q)
		rows, err := p.SQL.Query(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for i := range rows.Len() {
			plan = append(plan, fmt.Sprint(rows.Values[i][len(rows.Values[i])-1]))
		}
		all := strings.Join(plan, "; ")
		if strings.Contains(all, "TEMP B-TREE") || !strings.Contains(all, "INDEX jobs_list") {
			t.Errorf("%+v: plan %q: want an index of migration 0010 and no sort", q, all)
		}
	}
}
