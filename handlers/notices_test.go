package handlers

import (
	"encoding/json"
	"reflect"
	"testing"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/jobs"
)

// TestNoticeJobIsAJobsRow: the audit package queues a notice's delivery
// with its own statement (it sits below the jobs package); that statement
// must be exactly the row jobs.Enqueue writes, so that the runner, the
// listing and the retry treat it like every other job.
func TestNoticeJobIsAJobsRow(t *testing.T) {
	got := audit.NoticeJob("t_a", "ntc_1", "u_1", 1234)
	payload, _ := json.Marshal(audit.NoticePayload{Tenant: "t_a", Notice: "ntc_1", User: "u_1"})
	want := jobs.Enqueue(jobs.Spec{Tenant: "t_a", Kind: audit.NoticeJobKind, ID: "deliver_ntc_1", Ref: "ntc_1",
		Payload: payload, MaxAttempts: jobs.DefaultMaxAttempts}, 1234)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("audit.NoticeJob\n%#v\nis not jobs.Enqueue's\n%#v", got, want)
	}
}
