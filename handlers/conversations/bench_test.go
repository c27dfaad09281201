//go:build !js && !wasip1

package conversations

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"pommy.ai/edge/handlers/audit"
)

// BenchmarkSend measures sends of one tenant, several conversations at
// once, natively on the local SQLite: without an audit record (what the
// application does: the event log records the actor) and with one audit
// record per send (what recording every message in the audit chain would
// cost, since each record takes the tenant's chain head).
//
//	go test ./handlers/conversations -run '^$' -bench Send -benchtime 2000x
func BenchmarkSend(b *testing.B) {
	for _, withAudit := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit=%v", withAudit), func(b *testing.B) {
			f := open(b)
			ctx := context.Background()
			convs := make([]string, 8)
			for i := range convs {
				convs[i] = f.conv(b)
			}
			log := audit.New(f.p.SQL, f.clk).Sealed(f.p.Keys)
			var n atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					conv := convs[int(i)%len(convs)]
					if _, _, err := f.s.Send(ctx, f.key, conv, SendInput{Text: "hello there"}, fmt.Sprintf("k%d", i)); err != nil {
						b.Error(err)
						return
					}
					if withAudit {
						if err := log.Record(ctx, audit.Event{TenantID: "t_a", ActorType: audit.ActorAPIKey, ActorID: "key_a",
							Action: "message.created", Target: "conversation:" + conv}); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
