package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Conversation is a conversation as the API shows it.
type Conversation struct {
	ID             string   `json:"id"`
	ContactID      string   `json:"contact_id"`
	Status         string   `json:"status"`
	SnoozedUntil   *string  `json:"snoozed_until"`
	AssigneeID     *string  `json:"assignee_id"`
	Labels         []string `json:"labels"`
	Priority       string   `json:"priority"`
	Subject        string   `json:"subject,omitempty"`
	MergedInto     *string  `json:"merged_into,omitempty"`
	LastSeq        int64    `json:"last_seq"`
	LastActivityAt string   `json:"last_activity_at"`
	Unread         int64    `json:"unread"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	// CSAT is the newest satisfaction rating the contact gave (csat.go),
	// null when none.
	CSAT *CSAT `json:"csat"`
}

const kindSubject = "conversation.subject"

func (s *Store) render(ctx context.Context, c *convRow) (*Conversation, error) {
	out := &Conversation{ID: c.ID, ContactID: c.ContactID, Status: c.Status, Labels: c.Labels, Priority: c.Priority,
		LastSeq: c.LastSeq, LastActivityAt: millis(c.LastActivity), Unread: c.Unread,
		CreatedAt: millis(c.Created), UpdatedAt: millis(c.Updated)}
	if c.SnoozedUntil != nil {
		t := millis(*c.SnoozedUntil)
		out.SnoozedUntil = &t
	}
	if c.Assignee != "" {
		out.AssigneeID = &c.Assignee
	}
	if c.MergedInto != "" {
		out.MergedInto = &c.MergedInto
	}
	if out.Labels == nil {
		out.Labels = []string{}
	}
	if len(c.Subject) > 0 {
		b, err := s.Keys.Open(ctx, s.Tenant, kindSubject, c.ID, c.Subject)
		if err != nil {
			return nil, err
		}
		out.Subject = string(b)
	}
	if c.CSATSeq != nil {
		var err error
		if out.CSAT, err = s.csatOf(ctx, c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Conversation reads one conversation.
func (s *Store) Conversation(ctx context.Context, id string) (*Conversation, error) {
	c, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, c)
}

// CreateInput creates a conversation, optionally with its first message.
type CreateInput struct {
	ContactID  string     `json:"contact_id"`
	Subject    string     `json:"subject"`
	Status     string     `json:"status"` // open (default) or pending
	Priority   string     `json:"priority"`
	Labels     []string   `json:"labels"`
	AssigneeID string     `json:"assignee_id"`
	Message    *SendInput `json:"message"`
}

func validPriority(p string) error {
	if !slices.Contains(priorities, p) {
		return fail(http.StatusBadRequest, "invalid_priority", "priority", "priority is one of none, low, medium, high, urgent")
	}
	return nil
}

// checkAssignee: only an active member of the tenant can be assigned.
func (s *Store) checkAssignee(ctx context.Context, user string) error {
	rows, err := s.SQL.Query(ctx, `SELECT 1 FROM memberships WHERE tenant_id = ? AND user_id = ? AND status = 'active'`, s.Tenant, user)
	if err != nil {
		return err
	}
	if rows.Len() == 0 {
		return fail(http.StatusUnprocessableEntity, "invalid_assignee", "assignee_id", "the assignee must be an active member of this organization")
	}
	return nil
}

// CreateConversation makes a conversation with one of the tenant's
// contacts: event 1 is conversation.created, event 2 the first message if
// there is one. With an idempotency key, a retry returns the first result.
func (s *Store) CreateConversation(ctx context.Context, actor Actor, in CreateInput, idemKey string) (*Conversation, *Message, bool, error) {
	if in.Status == "" {
		in.Status = StatusOpen
	}
	if in.Status != StatusOpen && in.Status != StatusPending {
		return nil, nil, false, fail(http.StatusBadRequest, "invalid_status", "status", "a new conversation is open or pending")
	}
	if in.Priority == "" {
		in.Priority = "none"
	}
	if err := validPriority(in.Priority); err != nil {
		return nil, nil, false, err
	}
	labels, err := ParseLabels(in.Labels)
	if err != nil {
		return nil, nil, false, err
	}
	in.Subject = strings.TrimSpace(in.Subject)
	if utf8.RuneCountInString(in.Subject) > MaxSubject {
		return nil, nil, false, fail(http.StatusUnprocessableEntity, "subject_too_long", "subject", "a subject is at most %d characters", MaxSubject)
	}
	if err := s.contactExists(ctx, in.ContactID); err != nil {
		return nil, nil, false, err
	}
	if in.AssigneeID != "" {
		if err := s.checkAssignee(ctx, in.AssigneeID); err != nil {
			return nil, nil, false, err
		}
	}
	id := newID("c")
	var m *newMessage
	if in.Message != nil {
		if m, err = s.prepareMessage(ctx, actor, in.ContactID, *in.Message, "message."); err != nil {
			return nil, nil, false, err
		}
	}
	hash := requestHash("create", "", in)
	var subject []byte
	if in.Subject != "" {
		if subject, err = s.Keys.Seal(ctx, s.Tenant, kindSubject, id, []byte(in.Subject)); err != nil {
			return nil, nil, false, err
		}
	}
	now := s.now()
	labelsJSON, _ := json.Marshal(labels)
	evs := []event{{Type: EvCreated, Data: map[string]any{"status": in.Status, "contact_id": in.ContactID}, Inbox: true}}
	unread := 0
	var stmts []storage.Stmt
	if idemKey != "" {
		msgID := ""
		if m != nil {
			msgID = m.id
		}
		stmts = append(stmts, idemStmt(s.Tenant, actor, idemKey, hash, id, msgID, now))
	}
	var assignee any
	if in.AssigneeID != "" {
		assignee = in.AssigneeID
	}
	if m != nil {
		evs = append(evs, m.event())
		if m.authorType == "visitor" {
			unread = 1
		}
	}
	stmts = append(stmts, storage.Stmt{
		Query: `INSERT INTO conversations (tenant_id, id, contact_id, status, assignee_id, labels, priority, subject_sealed, last_seq, last_activity_at, unread, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{s.Tenant, id, in.ContactID, in.Status, assignee, string(labelsJSON), in.Priority, subject, len(evs), now, unread, now, now}})
	if m != nil {
		stmts = append(stmts, m.insert(s.Tenant, id, 2, now))
	}
	ev, err := s.appendStmts(id, 1, actor, now, evs)
	if err != nil {
		return nil, nil, false, err
	}
	if _, err := s.SQL.Batch(ctx, append(stmts, ev...)); err != nil {
		if errors.Is(err, storage.ErrConflict) && idemKey != "" {
			return s.replayCreate(ctx, actor, idemKey, hash)
		}
		return nil, nil, false, err
	}
	s.publish(ctx, id, evs)
	cv := &convRow{ID: id, ContactID: in.ContactID, Status: in.Status, Assignee: in.AssigneeID, Labels: labels, Priority: in.Priority,
		Subject: subject, LastSeq: int64(len(evs)), LastActivity: now, Unread: int64(unread), Created: now, Updated: now}
	s.cacheConv(ctx, cv)
	c, err := s.render(ctx, cv)
	if err != nil {
		return nil, nil, false, err
	}
	var msg *Message
	if m != nil {
		msg = m.message(id, 2, now)
	}
	return c, msg, false, nil
}

func (s *Store) replayCreate(ctx context.Context, actor Actor, key string, hash []byte) (*Conversation, *Message, bool, error) {
	k, err := s.idem(ctx, actor, key, hash)
	if err != nil {
		return nil, nil, false, err
	}
	if k == nil || k.message == "" && k.conversation == "" {
		return nil, nil, false, storage.ErrConflict
	}
	c, err := s.Conversation(ctx, k.conversation)
	if err != nil {
		return nil, nil, false, err
	}
	var m *Message
	if k.message != "" {
		if m, err = s.message(ctx, k.message); err != nil {
			return nil, nil, false, err
		}
	}
	return c, m, true, nil
}

// Filter selects conversations in a list.
type Filter struct {
	Status    string // one status, or "" for all but merged
	Assignee  string // a user id, or "none" for unassigned
	Label     string
	ContactID string
	// includeMerged: with Status "", merged conversations too (a
	// contact's history).
	includeMerged bool
}

// Conversations lists conversations, most recent activity first, with a
// keyset cursor on (last_activity_at, id). A conversation whose activity
// changes while a client pages moves to the front: the client sees it on
// the inbox stream; the pages it is reading neither skip nor repeat the
// others.
func (s *Store) Conversations(ctx context.Context, f Filter, cursor string, limit int) ([]*Conversation, string, error) {
	q := `SELECT ` + convCols + ` FROM conversations WHERE tenant_id = ?`
	args := []any{s.Tenant}
	switch {
	case f.Status == "" && f.includeMerged:
	case f.Status == "":
		q += ` AND status != 'merged'`
	case slices.Contains([]string{StatusOpen, StatusPending, StatusSnoozed, StatusResolved, StatusMerged}, f.Status):
		q += ` AND status = ?`
		args = append(args, f.Status)
	default:
		return nil, "", fail(http.StatusBadRequest, "invalid_status", "status", "status is one of open, pending, snoozed, resolved, merged")
	}
	switch {
	case f.Assignee == "none":
		q += ` AND assignee_id IS NULL`
	case f.Assignee != "":
		q += ` AND assignee_id = ?`
		args = append(args, f.Assignee)
	}
	if f.Label != "" {
		l := strings.ToLower(strings.TrimSpace(f.Label))
		if !validLabel(l) {
			return nil, "", fail(http.StatusBadRequest, "invalid_label", "label", "not a label")
		}
		q += ` AND EXISTS (SELECT 1 FROM json_each(conversations.labels) WHERE json_each.value = ?)`
		args = append(args, l)
	}
	if f.ContactID != "" {
		q += ` AND contact_id = ?`
		args = append(args, f.ContactID)
	}
	return pageByActivity(ctx, s, q, args, cursor, limit, s.render)
}

// pageByActivity runs a conversations query (q, its WHERE clause open) for
// one page, most recent activity first, with the keyset cursor on
// (last_activity_at, id) that the team's and the visitor's lists share,
// and renders each row for its reader.
func pageByActivity[T any](ctx context.Context, s *Store, q string, args []any, cursor string, limit int, render func(context.Context, *convRow) (T, error)) ([]T, string, error) {
	if cursor != "" {
		c, err := parseKeyCursor(cursor, "c")
		if err != nil {
			return nil, "", err
		}
		q += ` AND (last_activity_at < ? OR last_activity_at = ? AND id < ?)`
		args = append(args, c.At, c.At, c.ID)
	}
	rows, err := s.SQL.Query(ctx, q+` ORDER BY last_activity_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, rows.Len())
	var last keyCursor
	for i := range out {
		cv, err := scanConv(rows, i)
		if err != nil {
			return nil, "", err
		}
		if out[i], err = render(ctx, cv); err != nil {
			return nil, "", err
		}
		last = keyCursor{At: cv.LastActivity, ID: cv.ID}
	}
	next := ""
	if len(out) == limit {
		next = last.encode()
	}
	return out, next, nil
}

// UpdateInput changes a conversation. Absent fields are kept. assignee_id
// null unassigns. labels replaces the set; add_labels and remove_labels
// change it relative to what is stored (safe for concurrent editors).
type UpdateInput struct {
	Status       *string         `json:"status"`
	SnoozedUntil *string         `json:"snoozed_until"`
	AssigneeID   json.RawMessage `json:"assignee_id"`
	Labels       *[]string       `json:"labels"`
	AddLabels    []string        `json:"add_labels"`
	RemoveLabels []string        `json:"remove_labels"`
	Priority     *string         `json:"priority"`
}

// maxSnooze bounds how far ahead a conversation can be snoozed.
const maxSnooze = 366 * 24 * time.Hour

var errMerged = func(into string) error {
	return fail(http.StatusConflict, "conversation_merged", "", "this conversation was merged into %s; use that one", into)
}

// UpdateConversation applies in: each field that changes appends its
// event, all in one batch with the row's update.
func (s *Store) UpdateConversation(ctx context.Context, actor Actor, id string, in UpdateInput) (*Conversation, []string, error) {
	// Validate what does not depend on the stored state once.
	var status string
	var until *int64
	if in.Status != nil {
		status = *in.Status
		if !slices.Contains([]string{StatusOpen, StatusPending, StatusSnoozed, StatusResolved}, status) {
			return nil, nil, fail(http.StatusBadRequest, "invalid_status", "status", "status is one of open, pending, snoozed, resolved (merging has its own route)")
		}
	}
	if in.SnoozedUntil != nil {
		t, err := time.Parse(time.RFC3339Nano, *in.SnoozedUntil)
		if err != nil {
			return nil, nil, fail(http.StatusBadRequest, "invalid_snoozed_until", "snoozed_until", "snoozed_until is an RFC 3339 time")
		}
		now := s.Clock.Now()
		if !t.After(now) || t.Sub(now) > maxSnooze {
			return nil, nil, fail(http.StatusUnprocessableEntity, "invalid_snoozed_until", "snoozed_until", "snoozed_until must be in the future, at most a year ahead")
		}
		ms := t.UnixMilli()
		until = &ms
		if status == "" {
			status = StatusSnoozed
		}
		if status != StatusSnoozed {
			return nil, nil, fail(http.StatusBadRequest, "invalid_snoozed_until", "snoozed_until", "snoozed_until goes with status snoozed")
		}
	}
	if status == StatusSnoozed && until == nil {
		return nil, nil, fail(http.StatusBadRequest, "invalid_snoozed_until", "snoozed_until", "a snoozed conversation needs snoozed_until")
	}
	var assignee *string // nil: unchanged; "": unassign
	if in.AssigneeID != nil {
		var a *string
		if err := json.Unmarshal(in.AssigneeID, &a); err != nil {
			return nil, nil, fail(http.StatusBadRequest, "invalid_assignee", "assignee_id", "assignee_id is a user id or null")
		}
		if a == nil {
			a = new(string)
		}
		if *a != "" {
			if err := s.checkAssignee(ctx, *a); err != nil {
				return nil, nil, err
			}
		}
		assignee = a
	}
	var setLabels, add, remove []string
	if in.Labels != nil {
		var err error
		if setLabels, err = ParseLabels(*in.Labels); err != nil {
			return nil, nil, err
		}
	}
	for _, x := range []struct {
		in  []string
		out *[]string
		f   string
	}{{in.AddLabels, &add, "add_labels"}, {in.RemoveLabels, &remove, "remove_labels"}} {
		if x.in != nil {
			l, err := ParseLabels(x.in)
			if err != nil {
				if ae, ok := err.(*web.Error); ok {
					ae.Field = strings.Replace(ae.Field, "labels", x.f, 1)
				}
				return nil, nil, err
			}
			*x.out = l
		}
	}
	if in.Priority != nil {
		if err := validPriority(*in.Priority); err != nil {
			return nil, nil, err
		}
	}

	var out *Conversation
	var changed []string
	err := retry(func() error {
		cv, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if cv.Status == StatusMerged {
			return errMerged(cv.MergedInto)
		}
		now := s.now()
		var c change
		changed = changed[:0]
		set := func(col string, v any) {
			if c.set != "" {
				c.set += ", "
			}
			c.set += col + " = ?"
			c.args = append(c.args, v)
		}
		if status != "" && (status != cv.Status || status == StatusSnoozed && (cv.SnoozedUntil == nil || *cv.SnoozedUntil != *until)) {
			set("status", status)
			var u any
			data := map[string]any{"from": cv.Status, "to": status}
			if until != nil {
				u = *until
				data["snoozed_until"] = millis(*until)
				if s.ScheduleWake != nil {
					c.after = append(c.after, s.ScheduleWake(s.Tenant, cv.ID, *until, now))
				}
			}
			set("snoozed_until", u)
			if status == StatusResolved {
				// The status event is this change's first: its seq names
				// the resolution a rating belongs to (csat.go).
				set("resolved_seq", cv.LastSeq+1)
			}
			c.events = append(c.events, event{Type: EvStatusChanged, Data: data, Inbox: true})
			changed = append(changed, "status")
		}
		if assignee != nil && *assignee != cv.Assignee {
			var v any
			if *assignee != "" {
				v = *assignee
			}
			set("assignee_id", v)
			c.events = append(c.events, event{Type: EvAssigned, Data: map[string]any{"from": nullable(cv.Assignee), "to": v}, Inbox: true})
			changed = append(changed, "assignee_id")
		}
		labels := cv.Labels
		if setLabels != nil {
			labels = setLabels
		}
		labels = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(labels), add...))))
		labels = slices.DeleteFunc(labels, func(l string) bool { return slices.Contains(remove, l) })
		if len(labels) > MaxLabels {
			return fail(http.StatusUnprocessableEntity, "too_many_labels", "labels", "a conversation has at most %d labels", MaxLabels)
		}
		if !slices.Equal(labels, cv.Labels) && !(len(labels) == 0 && len(cv.Labels) == 0) {
			b, _ := json.Marshal(labels)
			set("labels", string(b))
			c.events = append(c.events, event{Type: EvLabelsChanged, Data: map[string]any{
				"added": diff(labels, cv.Labels), "removed": diff(cv.Labels, labels), "labels": labels}, Inbox: true})
			changed = append(changed, "labels")
		}
		if in.Priority != nil && *in.Priority != cv.Priority {
			set("priority", *in.Priority)
			c.events = append(c.events, event{Type: EvPriorityChanged, Data: map[string]any{"from": cv.Priority, "to": *in.Priority}, Inbox: true})
			changed = append(changed, "priority")
		}
		if len(c.events) > 0 {
			if err := s.apply(ctx, cv, actor, now, c); err != nil {
				return err
			}
			if cv, err = s.load(ctx, id); err != nil {
				return err
			}
		}
		out, err = s.render(ctx, cv)
		return err
	})
	return out, changed, err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// diff is a minus b, for sorted sets.
func diff(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// Merge merges conversation source into target (same contact). In one
// batch: source becomes merged (final; sends to it get 409) with a last
// conversation.merged event; every message.created event of source's log
// is appended to target's log, in order, referring to the same messages
// (no text is copied), followed by a conversation.merged event naming
// source. Clients of target therefore see the merged messages as new
// events after their cursor; the messages keep their ids, authors and
// times, and their seq in target is the seq of those events.
func (s *Store) Merge(ctx context.Context, actor Actor, targetID, sourceID string) (*Conversation, int64, error) {
	if targetID == sourceID {
		return nil, 0, fail(http.StatusBadRequest, "invalid_merge", "source_id", "a conversation cannot be merged into itself")
	}
	var out *Conversation
	var moved int64
	err := retry(func() error {
		t, err := s.load(ctx, targetID)
		if err != nil {
			return err
		}
		src, err := s.load(ctx, sourceID)
		if err != nil {
			return fail(http.StatusNotFound, "not_found", "source_id", "no such conversation")
		}
		if t.Status == StatusMerged {
			return errMerged(t.MergedInto)
		}
		if src.Status == StatusMerged {
			return fail(http.StatusConflict, "conversation_merged", "source_id", "the source conversation was already merged into %s", src.MergedInto)
		}
		if t.ContactID != src.ContactID {
			return fail(http.StatusUnprocessableEntity, "different_contacts", "source_id", "only conversations of the same contact can be merged")
		}
		rows, err := s.SQL.Query(ctx, `SELECT COUNT(*) FROM conversation_events WHERE tenant_id = ? AND conversation_id = ? AND type = 'message.created'`, s.Tenant, src.ID)
		if err != nil {
			return err
		}
		var n int64
		if err := rows.Scan(0, &n); err != nil {
			return err
		}
		now := s.now()
		activity := max(t.LastActivity, src.LastActivity)
		stmts := []storage.Stmt{
			{Query: `INSERT INTO conversation_merges (tenant_id, source_id, target_id, merged_at) VALUES (?, ?, ?, ?)`,
				Args: []any{s.Tenant, src.ID, t.ID, now}},
			{Query: `UPDATE conversations SET status = 'merged', merged_into = ?, snoozed_until = NULL, last_seq = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND last_seq = ?`,
				Args: []any{t.ID, src.LastSeq + 1, now, s.Tenant, src.ID, src.LastSeq}},
		}
		ev, err := s.appendStmts(src.ID, src.LastSeq+1, actor, now, []event{{Type: EvMerged, Ref: t.ID, Data: map[string]any{"into": t.ID}, Inbox: true}})
		if err != nil {
			return err
		}
		stmts = append(stmts, ev...)
		stmts = append(stmts,
			storage.Stmt{Query: `UPDATE conversations SET last_seq = ?, last_activity_at = ?, unread = unread + ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND last_seq = ?`,
				Args: []any{t.LastSeq + n + 1, activity, src.Unread, now, s.Tenant, t.ID, t.LastSeq}},
			// The copies sit at target's seq+1 .. seq+n: if target moved
			// on since it was read, the first collides and the batch fails.
			storage.Stmt{Query: `INSERT INTO conversation_events (tenant_id, conversation_id, seq, type, ref, actor, private, data, at) ` +
				`SELECT tenant_id, ?, ? + ROW_NUMBER() OVER (ORDER BY seq), type, ref, actor, private, json_object('merged_from', conversation_id, 'origin_seq', seq), at ` +
				`FROM conversation_events WHERE tenant_id = ? AND conversation_id = ? AND type = 'message.created'`,
				Args: []any{t.ID, t.LastSeq, s.Tenant, src.ID}})
		ev, err = s.appendStmts(t.ID, t.LastSeq+n+1, actor, now, []event{{Type: EvMerged, Ref: src.ID, Data: map[string]any{"from": src.ID, "messages": n}, Inbox: true}})
		if err != nil {
			return err
		}
		if _, err := s.SQL.Batch(ctx, append(stmts, ev...)); err != nil {
			return err
		}
		s.publish(ctx, src.ID, []event{{Inbox: true}})
		s.publish(ctx, t.ID, nil)
		moved = n
		t, err = s.load(ctx, targetID)
		if err != nil {
			return err
		}
		out, err = s.render(ctx, t)
		return err
	})
	return out, moved, err
}

// MarkRead records that the team read the conversation up to now: unread
// goes to 0 and a read event is appended (and enters the inbox feed, whose
// unread counts change). Nothing new since the last read: no event.
func (s *Store) MarkRead(ctx context.Context, actor Actor, id string) (int64, error) {
	var seq int64
	err := retry(func() error {
		cv, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if cv.ReadSeq >= cv.LastSeq && cv.Unread == 0 {
			seq = cv.ReadSeq
			return nil
		}
		seq = cv.LastSeq + 1
		return s.apply(ctx, cv, actor, s.now(), change{set: "unread = 0, read_seq = ?", args: []any{seq},
			events: []event{{Type: EvRead, Data: map[string]any{"read_seq": seq}, Inbox: true}}})
	})
	return seq, err
}

// Typing appends a typing event (not a message, not in the inbox feed).
// private marks a person typing a private note: visitors do not see it.
func (s *Store) Typing(ctx context.Context, actor Actor, id string, on, private bool) (int64, error) {
	var seq int64
	err := retry(func() error {
		cv, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if cv.Status == StatusMerged {
			return errMerged(cv.MergedInto)
		}
		seq = cv.LastSeq + 1
		return s.apply(ctx, cv, actor, s.now(), change{events: []event{{Type: EvTyping, Private: private, Data: map[string]any{"typing": on}}}})
	})
	return seq, err
}

// Wake ends a snooze that is due: if the conversation is still snoozed
// until exactly until, it becomes open with a status event by the system.
// Anything else (woken, re-snoozed, resolved) makes it a no-op, so a wake
// that runs twice, or late, changes nothing.
func (s *Store) Wake(ctx context.Context, id string, until int64) (bool, error) {
	woke := false
	err := retry(func() error {
		cv, err := s.load(ctx, id)
		if err != nil {
			return err
		}
		if cv.Status != StatusSnoozed || cv.SnoozedUntil == nil || *cv.SnoozedUntil != until || s.now() < until {
			return nil
		}
		woke = true
		return s.apply(ctx, cv, System, s.now(), change{set: "status = 'open', snoozed_until = NULL",
			events: []event{{Type: EvStatusChanged, Data: map[string]any{"from": StatusSnoozed, "to": StatusOpen, "reason": "snooze_ended"}, Inbox: true}}})
	})
	return woke, err
}

// WakeDue wakes, across all tenants, up to limit snoozed conversations
// whose time has come. It is the scheduler's sweep; each wake is its own
// conditional batch (Wake), so overlapping sweeps and the wake job agree.
func WakeDue(ctx context.Context, p storage.Platform, limit int) (int, error) {
	now := p.Clock.Now().UnixMilli()
	// tenant-lookup: the scheduler's sweep spans every tenant; each wake below is tenant-scoped.
	rows, err := p.SQL.Query(ctx, `SELECT tenant_id, id, snoozed_until FROM conversations WHERE status = 'snoozed' AND snoozed_until <= ? ORDER BY snoozed_until LIMIT ?`, now, limit)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i := range rows.Len() {
		var tenant, id string
		var until int64
		if err := rows.Scan(i, &tenant, &id, &until); err != nil {
			return n, err
		}
		woke, err := NewStore(p, nil, tenant).Wake(ctx, id, until)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if woke {
			n++
		}
	}
	return n, errors.Join(errs...)
}
