// Package conversations is the chat core: contacts (a tenant's visitors and
// customers), conversations with them, their messages, the per-conversation
// event log with its sequence numbers, the tenant's inbox feed, canned
// responses, and the HTTP routes and stream answers over them.
//
// Every change to a conversation is one SQL batch that updates the
// conversation row and appends its events at last_seq+1, ...: the event
// table's key makes a batch that raced another one fail whole, and the
// writer retries on the fresh row (docs/decisions.md, "Sequence numbers in
// a batch"). Message text, contact PII and subjects are sealed with the
// tenant's data key; events refer to messages and never copy their text.
package conversations
