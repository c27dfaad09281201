// Package webhooks delivers a tenant's conversation events to the HTTPS
// endpoints it subscribes, signed as the Standard Webhooks specification
// says (https://www.standardwebhooks.com/): headers webhook-id,
// webhook-timestamp and webhook-signature ("v1," and the base64 HMAC-SHA256
// of "id.timestamp.body" under the endpoint's whsec_ secret).
//
// A change that produces an event appends Fanout's one statement to its own
// SQL batch: a delivery job per active subscription, referring to the
// event by conversation and sequence number (nothing sealed is copied into
// the jobs table). The delivery job (kind KindDeliver, handlers/jobs)
// renders the event at delivery time through a Renderer, signs it with the
// subscription's sealed secret and posts it; retries, backoff and the dead
// letter are the jobs engine's. A subscription whose deliveries keep dying
// is disabled with a notice to the tenant's owners (see Disable rules in
// docs/api.md).
package webhooks

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"pommy.ai/edge/storage"
)

// KindDeliver is the job kind of one delivery.
const KindDeliver = "webhook.deliver"

// EventTypes are the event types a subscription may name.
var EventTypes = []string{
	"message.created",
	"conversation.created",
	"conversation.status_changed",
	"conversation.assigned",
}

// ValidEventType reports whether t is one of EventTypes.
func ValidEventType(t string) bool { return slices.Contains(EventTypes, t) }

// Renderer turns a conversation event into what a receiver sees. The
// conversations package implements it; it is wired in the root handlers
// package.
type Renderer interface {
	// Event returns the JSON payload `data` of a conversation event as a webhook receiver sees it.
	Event(ctx context.Context, tenant, convID string, seq int64) (eventType string, data json.RawMessage, err error)
}

// MaxAttempts is a delivery's number of tries before it is dead: with the
// backoff of DeliveryPolicy, about ten hours of retries on average.
const MaxAttempts = 12

// Fanout returns the one statement that enqueues a delivery job for every active subscription of
// tenant to eventType, referring to event seq of conversation convID (nothing sealed is copied).
//
// The job id, which is also the webhook-id receivers deduplicate on, is
// derived from the subscription, the conversation and the sequence number,
// so the same event is never enqueued twice for one endpoint.
func Fanout(tenant, eventType, convID string, seq int64, now int64) storage.Stmt {
	if !ValidEventType(eventType) {
		panic("webhooks: Fanout of unknown event type " + eventType)
	}
	// CAST: D1 binds every number as a REAL, which an expression keeps
	// ('_' || 2.0 is "_2.0", json_object gives 2.0); only a column's
	// INTEGER affinity turns it back (docs/decisions.md, "D1 binds numbers
	// as REAL").
	payload := `json_object('webhook_id', id, 'event_type', ?, 'conversation_id', ?, 'seq', CAST(? AS INTEGER))`
	return storage.Stmt{
		// The trailing WHERE keeps SQLite's INSERT … SELECT … ON CONFLICT unambiguous.
		Query: `INSERT INTO jobs (tenant_id, id, kind, ref, payload, state, run_at, attempts, max_attempts, created_at, updated_at)
			SELECT tenant_id, 'msg_' || substr(id, 4) || '_' || ? || '_' || CAST(? AS INTEGER), '` + KindDeliver + `', id, ` + payload + `, 'queued', ?, 0, ?, ?, ?
			FROM webhooks WHERE tenant_id = ? AND enabled = 1 AND instr(' ' || events || ' ', ?) > 0
			ON CONFLICT (tenant_id, id) DO NOTHING`,
		Args: []any{convID, seq, eventType, convID, seq, now, MaxAttempts, now, now, tenant, " " + eventType + " "},
	}
}

// deliveryPayload is a delivery job's payload, as Fanout writes it.
type deliveryPayload struct {
	WebhookID      string `json:"webhook_id"`
	EventType      string `json:"event_type"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
}

// eventList is a subscription's events as stored: space-separated.
func eventList(s string) []string { return strings.Fields(s) }

// PurgeTenantStmts delete a tenant's subscriptions and their delivery log
// (tenant deletion; the sealed secrets were unreadable once the tenant's
// key was shredded, this removes the rows).
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{
		{Query: `DELETE FROM webhook_attempts WHERE tenant_id = ?`, Args: []any{tenant}},
		{Query: `DELETE FROM webhooks WHERE tenant_id = ?`, Args: []any{tenant}},
	}
}
