package conversations

import (
	"context"
	"encoding/json"
	"fmt"

	"pommy.ai/edge/storage"
)

// Renderer renders conversation events for webhook deliveries
// (webhooks.Renderer): the event as the team sees it, message text
// included, read at delivery time (nothing is copied into the job). Private
// notes never reach it: their events are not fanned out.
type Renderer struct{ P storage.Platform }

// Event returns event seq of conversation convID; storage.ErrNotFound when
// it is gone (the tenant was deleted).
func (r Renderer) Event(ctx context.Context, tenant, convID string, seq int64) (string, json.RawMessage, error) {
	if seq < 1 {
		return "", nil, storage.ErrNotFound
	}
	evs, _, _, err := NewStore(r.P, nil, tenant).events(ctx, convID, seq-1, 1, AudienceTeam)
	if err != nil {
		if err == errNoConversation {
			return "", nil, fmt.Errorf("conversation %s: %w", convID, storage.ErrNotFound)
		}
		return "", nil, err
	}
	if len(evs) != 1 || evs[0].Seq != seq {
		return "", nil, storage.ErrNotFound
	}
	b, err := json.Marshal(evs[0])
	return evs[0].Type, b, err
}

// WakeKind is the job kind of a snoozed conversation's wake-up, enqueued
// in the batch that snoozes it, to run at the snooze's end.
const WakeKind = "conversation.wake"

type wakePayload struct {
	ConversationID string `json:"conversation_id"`
	Until          int64  `json:"until"`
}

// WakePayload is the job's payload: ids and a time, nothing sealed.
func WakePayload(convID string, until int64) json.RawMessage {
	b, _ := json.Marshal(wakePayload{convID, until})
	return b
}

// RunWake runs a wake job: Wake is conditional on the conversation still
// being snoozed until the same time, so a job that runs twice, or after a
// re-snooze, changes nothing.
func RunWake(ctx context.Context, p storage.Platform, tenant string, payload json.RawMessage) error {
	var w wakePayload
	if err := json.Unmarshal(payload, &w); err != nil || !validID("c", w.ConversationID) {
		return fmt.Errorf("conversations: malformed wake payload")
	}
	_, err := NewStore(p, nil, tenant).Wake(ctx, w.ConversationID, w.Until)
	if err == errNoConversation {
		return nil // the tenant is gone: nothing to wake
	}
	return err
}

// PurgeTenantStmts delete a tenant's conversations, contacts, messages and
// their logs (tenant deletion; the sealed data is already unreadable once
// the tenant's key is shredded, this removes the rows). Attachment blobs
// stay behind, sealed under the shredded key: unreadable.
func PurgeTenantStmts(tenant string) []storage.Stmt {
	var out []storage.Stmt
	for _, t := range []string{"contacts", "conversations", "messages", "conversation_events", "inbox_heads", "inbox_events",
		"idempotency_keys", "conversation_merges", "canned_responses", "message_attachments", "conversation_csat"} {
		out = append(out, storage.Stmt{Query: `DELETE FROM ` + t + ` WHERE tenant_id = ?`, Args: []any{tenant}})
	}
	return out
}
