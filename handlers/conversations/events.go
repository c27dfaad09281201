package conversations

import (
	"context"
	"encoding/json"
	"strings"
)

// Audience is who an event stream is rendered for. Rendering takes it, so
// that what a visitor may see is decided in one place.
type Audience int

const (
	// AudienceTeam: the tenant's people and API keys; they see everything.
	AudienceTeam Audience = iota
	// AudienceVisitor: the conversation's contact (the widget, next
	// issue). Never private notes, private typing, or the team's
	// internal bookkeeping (assignment, labels, priority).
	AudienceVisitor
)

// visible says whether an event reaches aud.
func visible(aud Audience, typ string, private bool) bool {
	if aud == AudienceTeam {
		return true
	}
	if private {
		return false
	}
	switch typ {
	case EvMessageCreated, EvAttachmentAdded, EvCreated, EvStatusChanged, EvMerged, EvTyping, EvRead, EvCSATSubmitted:
		return true
	}
	return false
}

// Event is an event as streams and long-polls carry it (docs/realtime.md
// §3). For message.created, data is the message.
type Event struct {
	Seq            int64           `json:"seq"`
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	At             string          `json:"at"`
	Actor          string          `json:"actor,omitempty"`
	Data           json.RawMessage `json:"data"`
}

// PageEvents is the most events one answer holds; when more remain the
// answer says so and the home polls again at once.
const PageEvents = 200

type eventRow struct {
	seq             int64
	typ, ref, actor string
	private         bool
	data            string
	at              int64
}

// Events reads conversation convID's events after seq after, for aud. It
// returns the events, the cursor (the last seq read, which may be past the
// last event returned when events aud may not see were skipped) and
// whether more remain.
func (s *Store) Events(ctx context.Context, convID string, after int64, aud Audience) ([]Event, int64, bool, error) {
	return s.events(ctx, convID, after, PageEvents, aud)
}

func (s *Store) events(ctx context.Context, convID string, after int64, page int, aud Audience) ([]Event, int64, bool, error) {
	contact, cached, err := s.exists(ctx, convID)
	if err != nil {
		return nil, 0, false, err
	}
	// A visitor reads only their own conversations; another's is the
	// same 404 as an unknown one.
	if aud == AudienceVisitor && (s.Visitor == "" || contact != s.Visitor) {
		return nil, 0, false, errNoConversation
	}
	s.cacheHit = cached
	rows, err := s.SQL.Query(ctx, `SELECT seq, type, ref, actor, private, data, at FROM conversation_events WHERE tenant_id = ? AND conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
		s.Tenant, convID, after, page+1)
	if err != nil {
		return nil, 0, false, err
	}
	more := rows.Len() > page
	n := min(rows.Len(), page)
	evs := make([]eventRow, 0, n)
	cursor := after
	var refs []string
	for i := range n {
		var e eventRow
		if err := rows.Scan(i, &e.seq, &e.typ, &e.ref, &e.actor, &e.private, &e.data, &e.at); err != nil {
			return nil, 0, false, err
		}
		cursor = e.seq
		if !visible(aud, e.typ, e.private) {
			continue
		}
		evs = append(evs, e)
		if e.typ == EvMessageCreated || aud == AudienceVisitor && e.typ == EvAttachmentAdded {
			refs = append(refs, e.ref)
		}
	}
	msgs, err := s.messagesByID(ctx, refs)
	if err != nil {
		return nil, 0, false, err
	}
	if aud == AudienceVisitor {
		out, err := s.visitorEvents(ctx, convID, evs, msgs)
		return out, cursor, more, err
	}
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		data := json.RawMessage(e.data)
		if e.typ == EvMessageCreated {
			m, ok := msgs[e.ref]
			if !ok {
				continue // cannot happen: written in one batch
			}
			b, err := json.Marshal(viewAt(m, convID, e.seq))
			if err != nil {
				return nil, 0, false, err
			}
			data = b
		}
		ev := Event{Seq: e.seq, Type: e.typ, ConversationID: convID, At: millis(e.at), Data: data}
		if aud == AudienceTeam {
			ev.Actor = e.actor
		}
		out = append(out, ev)
	}
	return out, cursor, more, nil
}

// messagesByID reads messages by id (a fresh copy each: viewAt changes them).
func (s *Store) messagesByID(ctx context.Context, ids []string) (map[string]*Message, error) {
	out := map[string]*Message{}
	if len(ids) == 0 {
		return out, nil
	}
	args := []any{s.Tenant}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.SQL.Query(ctx, `SELECT `+msgCols+` FROM messages m`+msgJoin+` WHERE m.tenant_id = ? AND m.id IN (`+strings.Repeat("?, ", len(ids)-1)+`?)`, args...)
	if err != nil {
		return nil, err
	}
	for i := range rows.Len() {
		m, err := s.scanMessage(ctx, rows, i)
		if err != nil {
			return nil, err
		}
		out[m.ID] = m
	}
	return out, nil
}

// InboxEvent is an event of the tenant's inbox feed: which conversation
// changed, how, and its state now (status, assignee, unread count). It
// carries no message text; the inbox reads the conversation for that.
type InboxEvent struct {
	Seq            int64           `json:"seq"`
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	At             string          `json:"at"`
	Actor          string          `json:"actor,omitempty"`
	Data           json.RawMessage `json:"data"`
}

type inboxData struct {
	ConversationSeq int64           `json:"conversation_seq"`
	Event           json.RawMessage `json:"event,omitempty"`
	MessageID       string          `json:"message_id,omitempty"`
	AuthorType      string          `json:"author_type,omitempty"`
	Status          string          `json:"status"`
	AssigneeID      *string         `json:"assignee_id"`
	Unread          int64           `json:"unread"`
	LastActivityAt  string          `json:"last_activity_at"`
}

// InboxEvents reads the tenant's inbox feed after seq after.
func (s *Store) InboxEvents(ctx context.Context, after int64) ([]InboxEvent, int64, bool, error) {
	rows, err := s.SQL.Query(ctx, `SELECT i.seq, i.type, i.conversation_id, i.conversation_seq, i.at, e.actor, e.data, e.ref, `+
		`c.status, c.assignee_id, c.unread, c.last_activity_at, m.author_type `+
		`FROM inbox_events i `+
		`JOIN conversation_events e ON e.tenant_id = i.tenant_id AND e.conversation_id = i.conversation_id AND e.seq = i.conversation_seq `+
		`JOIN conversations c ON c.tenant_id = i.tenant_id AND c.id = i.conversation_id `+
		`LEFT JOIN messages m ON m.tenant_id = i.tenant_id AND m.id = e.ref AND i.type = 'message.created' `+
		`WHERE i.tenant_id = ? AND i.seq > ? ORDER BY i.seq LIMIT ?`, s.Tenant, after, PageEvents+1)
	if err != nil {
		return nil, 0, false, err
	}
	more := rows.Len() > PageEvents
	n := min(rows.Len(), PageEvents)
	out := make([]InboxEvent, 0, n)
	cursor := after
	for i := range n {
		var ev InboxEvent
		var d inboxData
		var at, activity int64
		var data, ref string
		var assignee, author any
		if err := rows.Scan(i, &ev.Seq, &ev.Type, &ev.ConversationID, &d.ConversationSeq, &at, &ev.Actor, &data, &ref,
			&d.Status, &assignee, &d.Unread, &activity, &author); err != nil {
			return nil, 0, false, err
		}
		cursor = ev.Seq
		ev.At, d.LastActivityAt = millis(at), millis(activity)
		if a, ok := assignee.(string); ok {
			d.AssigneeID = &a
		}
		if ev.Type == EvMessageCreated {
			d.MessageID = ref
			d.AuthorType, _ = author.(string)
		} else if data != "{}" {
			d.Event = json.RawMessage(data)
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, 0, false, err
		}
		ev.Data = b
		out = append(out, ev)
	}
	return out, cursor, more, nil
}
