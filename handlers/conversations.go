package handlers

import (
	"context"
	"errors"
	"fmt"

	"pommy.ai/edge/handlers/conversations"
	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/storage"
)

// convs is the conversations capability, with the statements of other
// capabilities that its changes carry in their batches (webhook fan-out
// and the snooze wake-up job) and the members' names a widget visitor
// sees on people's messages.
func (a *app) convs() *conversations.Routes {
	return &conversations.Routes{Fanout: webhooks.Fanout, ScheduleWake: scheduleWake, PersonNames: identity.MemberNames}
}

// scheduleWake enqueues a snoozed conversation's wake-up at its snooze's
// end. The job id is derived from the conversation and the time, so a
// repeated snooze to the same time enqueues one job.
func scheduleWake(tenant, conv string, until, now int64) storage.Stmt {
	return jobs.Enqueue(jobs.Spec{Tenant: tenant, Kind: conversations.WakeKind, ID: fmt.Sprintf("wake_%s_%d", conv, until),
		Ref: conv, Payload: conversations.WakePayload(conv, until), RunAt: until, MaxAttempts: 20}, now)
}

// registerConversationJobs adds the conversations capability's job kinds
// to a registry (the snooze wake-up).
func registerConversationJobs(reg *jobs.Registry, p storage.Platform) {
	reg.Register(conversations.WakeKind, func(ctx context.Context, j jobs.Job) error {
		return conversations.RunWake(ctx, p, j.Tenant, j.Payload)
	})
}

// conversationRenderer renders conversation events for webhook deliveries.
func conversationRenderer(p storage.Platform) webhooks.Renderer { return conversations.Renderer{P: p} }

// conversationSweeps is the capability's periodic work: snoozes that are
// due (the wake job is the exact path; this sweep wakes what a lost or
// dead job left asleep, and Wake is idempotent, so both may run) and
// idempotency keys past their retention.
func conversationSweeps(ctx context.Context, p storage.Platform) error {
	_, err := conversations.WakeDue(ctx, p, 100)
	return errors.Join(err, conversations.PruneIdempotencyKeys(ctx, p))
}
