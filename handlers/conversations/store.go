package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// Store is one tenant's conversations, contacts and messages, for one
// request (or one job). It is made from an authenticated scope (or, for
// system work, a tenant id the platform itself read from SQL).
type Store struct {
	SQL    storage.SQL
	Keys   *envelope.Keyring // seals and opens under the tenant's data key
	MAC    storage.Keys      // the custodian's MAC, for the email blind index
	Clock  storage.Clock
	RT     storage.Realtime // nil: no wake-ups
	KV     storage.KV       // nil: no cache
	Tenant string

	// cacheHit: the last read of events found its conversation in the
	// KV cache (cache.go).
	cacheHit bool

	// Hooks wired by the route table (nil in package tests): a statement
	// appended to the batch of every change that produces a webhook event,
	// and one that schedules a snoozed conversation's wake-up.
	Fanout       func(tenant, eventType, convID string, seq, now int64) storage.Stmt
	ScheduleWake func(tenant, convID string, until, now int64) storage.Stmt

	// For the visitor's view (visitor.go): people's display names by user
	// id (nil: none known, every person is shown without a name) and the
	// AI agent's name from the tenant's widget settings.
	PersonNames func(ctx context.Context, ids []string) (map[string]string, error)
	AgentName   string
	// Visitor is the contact id of the widget's visitor this store serves
	// ("" for the team): what AudienceVisitor reads must be theirs.
	Visitor string
}

// NewStore is the store over a home's platform for tenant.
func NewStore(p storage.Platform, keys *envelope.Keyring, tenant string) *Store {
	clk := p.Clock
	if clk == nil {
		clk = storage.SystemClock{}
	}
	if keys == nil {
		keys = envelope.New(p)
	}
	return &Store{SQL: p.SQL, Keys: keys, MAC: p.Keys, Clock: clk, RT: p.Realtime, KV: p.KV, Tenant: tenant}
}

func (s *Store) now() int64 { return s.Clock.Now().UnixMilli() }

// Actor is who makes a change: a person, an API key (an integration), the
// contact (a visitor, through the widget), or the system (scheduler, jobs).
type Actor struct {
	Type string // "user", "api_key", "contact", "system"
	ID   string
}

// System is the actor of scheduled work.
var System = Actor{Type: "system"}

func (a Actor) String() string {
	if a.Type == "system" {
		return "system"
	}
	return a.Type + ":" + a.ID
}

func (a Actor) person() bool { return a.Type == "user" }

// maxAttempts bounds the retries of a change that lost the race for its
// conversation's next seq to another writer. Each round one writer wins,
// so this is also how many concurrent writers of one conversation are
// served before the rest get 503 busy (nothing written, safe to retry).
const maxAttempts = 64

var errBusy = &web.Error{Status: http.StatusServiceUnavailable, Code: "busy",
	Message: "this conversation is changing too fast to apply the request; nothing was written; retry", RetryAfter: 1}

// Conversation statuses.
const (
	StatusOpen     = "open"
	StatusPending  = "pending" // with the AI agent
	StatusSnoozed  = "snoozed"
	StatusResolved = "resolved"
	StatusMerged   = "merged" // final: merged_into names the target
)

var priorities = []string{"none", "low", "medium", "high", "urgent"}

// convRow is a conversation as stored.
type convRow struct {
	ID, ContactID, Status string
	SnoozedUntil          *int64
	Assignee              string
	Labels                []string
	Priority              string
	Subject               []byte // sealed
	MergedInto            string
	LastSeq               int64
	LastActivity          int64
	Unread, ReadSeq       int64
	Created, Updated      int64
	VisitorReadSeq        int64
	ResolvedSeq           int64
	// The latest rating (csat.go); CSATSeq is nil when there is none.
	CSATRating, CSATSeq, CSATAt *int64
	CSATComment                 []byte // sealed
}

const convCols = `id, contact_id, status, snoozed_until, assignee_id, labels, priority, subject_sealed, merged_into, last_seq, last_activity_at, unread, read_seq, created_at, updated_at, ` +
	`visitor_read_seq, resolved_seq, csat_rating, csat_seq, csat_at, csat_comment_sealed`

func scanConv(rows *storage.Rows, i int) (*convRow, error) {
	c := &convRow{}
	var labels, assignee, merged string
	var assigneeV, mergedV any
	if err := rows.Scan(i, &c.ID, &c.ContactID, &c.Status, &c.SnoozedUntil, &assigneeV, &labels, &c.Priority, &c.Subject,
		&mergedV, &c.LastSeq, &c.LastActivity, &c.Unread, &c.ReadSeq, &c.Created, &c.Updated,
		&c.VisitorReadSeq, &c.ResolvedSeq, &c.CSATRating, &c.CSATSeq, &c.CSATAt, &c.CSATComment); err != nil {
		return nil, err
	}
	assignee, _ = assigneeV.(string)
	merged, _ = mergedV.(string)
	c.Assignee, c.MergedInto = assignee, merged
	if err := json.Unmarshal([]byte(labels), &c.Labels); err != nil {
		return nil, fmt.Errorf("conversation %s: labels: %w", c.ID, err)
	}
	return c, nil
}

var errNoConversation = fail(http.StatusNotFound, "not_found", "", "no such conversation")

// load reads one of the tenant's conversations; an unknown id, another
// tenant's id or a malformed one are the same 404.
func (s *Store) load(ctx context.Context, id string) (*convRow, error) {
	if !validID("c", id) {
		return nil, errNoConversation
	}
	rows, err := s.SQL.Query(ctx, `SELECT `+convCols+` FROM conversations WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, errNoConversation
	}
	return scanConv(rows, 0)
}

// event is one event to append.
type event struct {
	Type    string
	Ref     string
	Private bool
	Data    any // marshalled to the data column; nil is {}
	// Inbox: the event also enters the tenant's inbox feed.
	Inbox bool
}

// Event types.
const (
	EvMessageCreated  = "message.created"
	EvCreated         = "conversation.created"
	EvStatusChanged   = "conversation.status_changed"
	EvAssigned        = "conversation.assigned"
	EvLabelsChanged   = "conversation.labels_changed"
	EvPriorityChanged = "conversation.priority_changed"
	EvMerged          = "conversation.merged"
	EvTyping          = "typing"
	EvRead            = "read"
)

// webhookEvents are the types a webhook subscription can receive.
var webhookEvents = map[string]bool{EvMessageCreated: true, EvCreated: true, EvStatusChanged: true, EvAssigned: true}

// appendStmts are the statements that append evs to conversation conv
// starting at seq first: the event rows, their inbox feed rows, and the
// webhook fan-out. A private event never reaches a webhook.
func (s *Store) appendStmts(conv string, first int64, actor Actor, now int64, evs []event) ([]storage.Stmt, error) {
	var out []storage.Stmt
	for i, e := range evs {
		seq := first + int64(i)
		data := []byte("{}")
		if e.Data != nil {
			var err error
			if data, err = json.Marshal(e.Data); err != nil {
				return nil, err
			}
		}
		out = append(out, storage.Stmt{
			Query: `INSERT INTO conversation_events (tenant_id, conversation_id, seq, type, ref, actor, private, data, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			Args:  []any{s.Tenant, conv, seq, e.Type, e.Ref, actor.String(), e.Private, string(data), now}})
		if e.Inbox {
			out = append(out, inboxStmts(s.Tenant, conv, seq, e.Type, now)...)
		}
		if s.Fanout != nil && webhookEvents[e.Type] && !e.Private {
			out = append(out, s.Fanout(s.Tenant, e.Type, conv, seq, now))
		}
	}
	return out, nil
}

// inboxStmts append one row to the tenant's inbox feed. The head row is
// taken by an upsert in the same batch, so the feed's seq never races.
func inboxStmts(tenant, conv string, convSeq int64, typ string, now int64) []storage.Stmt {
	return []storage.Stmt{
		{Query: `INSERT INTO inbox_heads (tenant_id, last_seq) VALUES (?, 1) ON CONFLICT (tenant_id) DO UPDATE SET last_seq = last_seq + 1`,
			Args: []any{tenant}},
		{Query: `INSERT INTO inbox_events (tenant_id, seq, conversation_id, conversation_seq, type, at) SELECT tenant_id, last_seq, ?, ?, ?, ? FROM inbox_heads WHERE tenant_id = ?`,
			Args: []any{conv, convSeq, typ, now, tenant}},
	}
}

// change is one attempt at changing a conversation: the SET clause for the
// row (besides last_seq and updated_at), the statements to run after the
// row's update (a message insert), and the events, appended at
// observed.LastSeq+1, ...
type change struct {
	set    string
	args   []any
	before []storage.Stmt // run first (an idempotency key: its conflict is the replay)
	after  []storage.Stmt
	events []event
}

// apply runs c as one batch, conditional on the conversation still being
// at seq c's caller observed. If another writer got there first, the
// UPDATE matches nothing and the first event's insert hits the existing
// event with that seq: the batch fails whole with storage.ErrConflict and
// nothing is written, and the caller re-reads and tries again.
func (s *Store) apply(ctx context.Context, cv *convRow, actor Actor, now int64, c change) error {
	set := "last_seq = ?, updated_at = ?"
	args := []any{cv.LastSeq + int64(len(c.events)), now}
	if c.set != "" {
		set = c.set + ", " + set
		args = append(append([]any(nil), c.args...), args...)
	}
	args = append(args, s.Tenant, cv.ID, cv.LastSeq)
	stmts := append([]storage.Stmt{}, c.before...)
	stmts = append(stmts, storage.Stmt{Query: `UPDATE conversations SET ` + set + ` WHERE tenant_id = ? AND id = ? AND last_seq = ?`, Args: args})
	stmts = append(stmts, c.after...)
	ev, err := s.appendStmts(cv.ID, cv.LastSeq+1, actor, now, c.events)
	if err != nil {
		return err
	}
	stmts = append(stmts, ev...)
	if _, err := s.SQL.Batch(ctx, stmts); err != nil {
		return err
	}
	s.publish(ctx, cv.ID, c.events)
	return nil
}

// Topics of the realtime port (docs/realtime.md).
func ConversationTopic(tenant, conv string) string { return "t/" + tenant + "/c/" + conv }
func InboxTopic(tenant string) string              { return "t/" + tenant + "/inbox" }

// publish wakes the conversation's watchers (and the inbox's, when an
// event entered it) after a committed batch. A lost wake-up costs latency,
// never an event, so a failure is logged and ignored.
func (s *Store) publish(ctx context.Context, conv string, evs []event) {
	if s.RT == nil {
		return
	}
	if err := s.RT.Publish(ctx, ConversationTopic(s.Tenant, conv)); err != nil {
		log.Printf("realtime: publish %s: %v", conv, err)
	}
	for _, e := range evs {
		if e.Inbox {
			if err := s.RT.Publish(ctx, InboxTopic(s.Tenant)); err != nil {
				log.Printf("realtime: publish inbox: %v", err)
			}
			return
		}
	}
}

// retry runs attempt until it does not lose a race (storage.ErrConflict),
// at most maxAttempts times.
func retry(attempt func() error) error {
	for range maxAttempts {
		err := attempt()
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	return errBusy
}
