package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// The visitor's view of conversations: what the widget shows. A visitor
// sees only their own conversations (contact_id = their id), never private
// notes or private typing, never the team's bookkeeping (assignee, labels,
// priority, subject), and never a person's id or email: people appear by
// their display name only.

// VConversation is a conversation as its visitor sees it.
type VConversation struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	LastSeq        int64  `json:"last_seq"`
	CreatedAt      string `json:"created_at"`
	LastActivityAt string `json:"last_activity_at"`
	TeamReadSeq    int64  `json:"team_read_seq"`
	VisitorReadSeq int64  `json:"visitor_read_seq"`
	CSAT           *VCSAT `json:"csat"`
}

// VCSAT is the visitor's rating of the conversation's current resolution.
type VCSAT struct {
	Rating int64  `json:"rating"`
	At     string `json:"at"`
}

// VMessage is a message as the visitor sees it.
type VMessage struct {
	ID             string       `json:"id"`
	ConversationID string       `json:"conversation_id"`
	Seq            int64        `json:"seq"`
	AuthorType     string       `json:"author_type"`
	AuthorName     string       `json:"author_name"`
	Text           string       `json:"text"`
	CreatedAt      string       `json:"created_at"`
	Attachment     *VAttachment `json:"attachment"`
}

// VAttachment is a message's file, once uploaded.
type VAttachment struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	Type string `json:"type"`
	URL  string `json:"url"`
}

// Visitor is the widget's visitor as the widget capability authenticated
// them (web.Scope's visitor fields).
type Visitor struct {
	ID       string
	Verified bool
	// Name and Email: a verified visitor's identity claims.
	Name, Email string
}

func (v Visitor) actor() Actor { return Actor{Type: "contact", ID: v.ID} }

// visitorConv loads conversation id if it is visitor's: another contact's
// is the same 404 as an unknown id, so ids cannot be probed.
func (s *Store) visitorConv(ctx context.Context, visitor, id string) (*convRow, error) {
	cv, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if visitor == "" || cv.ContactID != visitor {
		return nil, errNoConversation
	}
	return cv, nil
}

func vconv(c *convRow) *VConversation {
	out := &VConversation{ID: c.ID, Status: c.Status, LastSeq: c.LastSeq, CreatedAt: millis(c.Created),
		LastActivityAt: millis(c.LastActivity), TeamReadSeq: c.ReadSeq, VisitorReadSeq: c.VisitorReadSeq}
	// Only a rating of the current resolution counts for the widget: a
	// conversation reopened and resolved again asks again.
	if c.Status == StatusResolved && c.CSATSeq != nil && *c.CSATSeq == c.ResolvedSeq && c.CSATRating != nil && c.CSATAt != nil {
		out.CSAT = &VCSAT{Rating: *c.CSATRating, At: millis(*c.CSATAt)}
	}
	return out
}

// VisitorConversation is one of the visitor's conversations. A merged one
// is gone for the visitor (its messages live on in the target, which the
// merged event named).
func (s *Store) VisitorConversation(ctx context.Context, visitor, id string) (*VConversation, error) {
	cv, err := s.visitorConv(ctx, visitor, id)
	if err != nil {
		return nil, err
	}
	if cv.Status == StatusMerged {
		return nil, errNoConversation
	}
	return vconv(cv), nil
}

// VisitorConversations lists the visitor's conversations, most recent
// activity first (keyset cursor as the team's list).
func (s *Store) VisitorConversations(ctx context.Context, visitor, cursor string, limit int) ([]*VConversation, string, error) {
	q := `SELECT ` + convCols + ` FROM conversations WHERE tenant_id = ? AND contact_id = ? AND status != 'merged'`
	args := []any{s.Tenant, visitor}
	return pageByActivity(ctx, s, q, args, cursor, limit, func(_ context.Context, c *convRow) (*VConversation, error) { return vconv(c), nil })
}

// PreChat is what the widget's pre-chat form asked.
type PreChat struct {
	Name  *string `json:"name"`
	Email *string `json:"email"`
}

// ensureContact makes the visitor's contact row the first time they start
// a conversation or set attributes: a visitor token names a contact id
// that may not exist yet (minting one writes nothing). Its PII is the
// verified claims, else what the pre-chat form gave. Only an email the
// tenant vouched for (the identity JWT's claim) enters the blind index
// that finds a contact by email: an email typed into the pre-chat form is
// kept, sealed, but unindexed, so a visitor who types someone else's
// address never becomes the contact the team finds for it (and the real
// owner, arriving verified later, does). If a verified email's index is
// already another contact's, the contact is made without it: two contacts
// are never merged silently.
func (s *Store) ensureContact(ctx context.Context, v Visitor, pre *PreChat) error {
	if !validID("ct", v.ID) {
		return errNoContact
	}
	rows, err := s.SQL.Query(ctx, `SELECT 1 FROM contacts WHERE tenant_id = ? AND id = ?`, s.Tenant, v.ID)
	if err != nil {
		return err
	}
	if rows.Len() > 0 {
		return s.fillContact(ctx, v, pre)
	}
	p := pii{Attributes: json.RawMessage("{}")}
	vouched, err := fillPII(&p, v, pre)
	if err != nil {
		return err
	}
	sealed, idx, err := s.sealContact(ctx, v.ID, p)
	if err != nil {
		return err
	}
	if !vouched {
		idx = nil
	}
	now := s.now()
	_, err = s.SQL.Exec(ctx, `INSERT INTO contacts (tenant_id, id, pii_sealed, email_index, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.Tenant, v.ID, sealed, idx, now, now)
	if errors.Is(err, storage.ErrConflict) {
		// Made meanwhile by a racing request (then this changes nothing),
		// or the email is another contact's: keep the email sealed in the
		// PII, without the index.
		_, err = s.SQL.Exec(ctx, `INSERT OR IGNORE INTO contacts (tenant_id, id, pii_sealed, email_index, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)`,
			s.Tenant, v.ID, sealed, now, now)
	}
	return err
}

// fillPII fills p's empty name and email: from a verified visitor's claims
// first, then from the pre-chat form. vouched: the email now in p came
// from the claims (and may be indexed).
func fillPII(p *pii, v Visitor, pre *PreChat) (vouched bool, err error) {
	if v.Verified {
		if p.Name == "" {
			if n := strings.TrimSpace(v.Name); utf8.ValidString(n) {
				if utf8.RuneCountInString(n) > MaxName {
					n = string([]rune(n)[:MaxName])
				}
				p.Name = n
			}
		}
		if p.Email == "" {
			if e, err := NormalizeEmail(v.Email); err == nil {
				p.Email, vouched = e, true
			}
		}
	}
	if pre != nil {
		in := ContactInput{}
		if p.Name == "" {
			in.Name = pre.Name
		}
		if p.Email == "" {
			in.Email = pre.Email
		}
		if err := in.apply(p); err != nil {
			return false, err
		}
	}
	return vouched, nil
}

// fillContact fills an existing contact's empty name and email (a visitor
// whose contact was made by setting attributes, then answers the
// pre-chat form): what the contact has is never overwritten.
func (s *Store) fillContact(ctx context.Context, v Visitor, pre *PreChat) error {
	if pre == nil && !v.Verified {
		return nil
	}
	return retry(func() error {
		c, p, err := s.contact(ctx, v.ID)
		if err != nil {
			return err
		}
		name, email := p.Name, p.Email
		vouched, err := fillPII(&p, v, pre)
		if err != nil {
			return err
		}
		if p.Name == name && p.Email == email {
			return nil
		}
		sealed, idx, err := s.sealContact(ctx, v.ID, p)
		if err != nil {
			return err
		}
		now := s.now()
		q := `UPDATE contacts SET pii_sealed = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`
		args := []any{sealed, now, s.Tenant, v.ID, c.Version}
		if vouched && p.Email != email {
			res, err := s.SQL.Exec(ctx, `UPDATE contacts SET pii_sealed = ?, email_index = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
				sealed, idx, now, s.Tenant, v.ID, c.Version)
			if err == nil {
				if res.RowsAffected == 0 {
					return storage.ErrConflict
				}
				return nil
			}
			if !errors.Is(err, storage.ErrConflict) {
				return err
			}
			// The email is another contact's: kept without the index.
		}
		res, err := s.SQL.Exec(ctx, q, args...)
		if err != nil {
			return err
		}
		if res.RowsAffected == 0 {
			return storage.ErrConflict // changed since read: again
		}
		return nil
	})
}

// checkPreChat validates the pre-chat form before anything is written.
func checkPreChat(pre *PreChat) error {
	if pre == nil {
		return nil
	}
	var p pii
	if err := (ContactInput{Name: pre.Name, Email: pre.Email}).apply(&p); err != nil {
		var we *web.Error
		if errors.As(err, &we) && we.Field != "" {
			we.Field = "pre_chat." + we.Field
		}
		return err
	}
	return nil
}

// VisitorStart makes a conversation for the visitor, with their first
// message if text is not empty; their contact is made first if missing.
func (s *Store) VisitorStart(ctx context.Context, v Visitor, text string, pre *PreChat, idemKey string) (*VConversation, *VMessage, bool, error) {
	if err := checkPreChat(pre); err != nil {
		return nil, nil, false, err
	}
	in := CreateInput{ContactID: v.ID}
	if text != "" {
		in.Message = &SendInput{Text: text}
		if err := checkText(text, ""); err != nil {
			return nil, nil, false, err
		}
	}
	if err := s.ensureContact(ctx, v, pre); err != nil {
		return nil, nil, false, err
	}
	c, m, replay, err := s.CreateConversation(ctx, v.actor(), in, idemKey)
	if err != nil {
		return nil, nil, false, err
	}
	cv, err := s.visitorConv(ctx, v.ID, c.ID)
	if err != nil {
		return nil, nil, false, err
	}
	var vm *VMessage
	if m != nil {
		ms, err := s.vmessages(ctx, []*Message{m})
		if err != nil {
			return nil, nil, false, err
		}
		vm = ms[0]
	}
	return vconv(cv), vm, replay, nil
}

// VisitorSend sends the visitor's message; announce, if not nil, is the
// file the message carries (uploaded next, VisitorAttach). A resolved or
// snoozed conversation opens again: the visitor is writing.
func (s *Store) VisitorSend(ctx context.Context, v Visitor, convID, text string, announce *Announcement, idemKey string) (*VMessage, bool, error) {
	if _, err := s.visitorConv(ctx, v.ID, convID); err != nil {
		return nil, false, err
	}
	m, replay, err := s.Send(ctx, v.actor(), convID, SendInput{Text: text, announce: announce, reopen: true}, idemKey)
	if err != nil {
		return nil, false, err
	}
	ms, err := s.vmessages(ctx, []*Message{m})
	if err != nil {
		return nil, false, err
	}
	return ms[0], replay, nil
}

// VisitorMessages lists the visitor's conversation's messages after seq
// after (no private notes), at most limit, and whether more remain.
func (s *Store) VisitorMessages(ctx context.Context, visitor, convID string, after int64, limit int) ([]*VMessage, bool, error) {
	if _, err := s.visitorConv(ctx, visitor, convID); err != nil {
		return nil, false, err
	}
	list, _, err := s.Messages(ctx, convID, after, limit+1, AudienceVisitor)
	if err != nil {
		return nil, false, err
	}
	more := len(list) > limit
	if more {
		list = list[:limit]
	}
	out, err := s.vmessages(ctx, list)
	return out, more, err
}

// VisitorRead records how far the visitor has read: the last message at
// or before seq (nil: the newest), so that read and typing events, which
// every read itself appends, never count as unread and two clients that
// mark read on every event cannot wake each other forever. Nothing new
// since the last read: no event. It returns the visitor's read position.
func (s *Store) VisitorRead(ctx context.Context, v Visitor, convID string, seq *int64) (int64, error) {
	var out int64
	err := retry(func() error {
		cv, err := s.visitorConv(ctx, v.ID, convID)
		if err != nil {
			return err
		}
		upTo := cv.LastSeq
		if seq != nil && *seq < upTo {
			upTo = *seq
		}
		rows, err := s.SQL.Query(ctx, `SELECT MAX(seq) FROM conversation_events WHERE tenant_id = ? AND conversation_id = ? AND seq <= ? AND private = 0 AND type IN (?, ?)`,
			s.Tenant, convID, upTo, EvMessageCreated, EvAttachmentAdded)
		if err != nil {
			return err
		}
		var read int64
		if err := rows.Scan(0, &read); err != nil {
			return err
		}
		if read <= cv.VisitorReadSeq {
			out = cv.VisitorReadSeq
			return nil
		}
		out = read
		return s.apply(ctx, cv, v.actor(), s.now(), change{set: "visitor_read_seq = ?", args: []any{read},
			events: []event{{Type: EvRead, Data: map[string]any{"by": "visitor", "seq": read}}}})
	})
	return out, err
}

// VisitorAttributes merges attrs into the visitor's contact's custom
// attributes (a key set to null is removed), making the contact if
// missing, and returns them all. The rules are the contacts' (ParseAttributes).
func (s *Store) VisitorAttributes(ctx context.Context, v Visitor, attrs json.RawMessage) (json.RawMessage, error) {
	add, err := ParseAttributes(attrs)
	if err != nil {
		return nil, err
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(add, &set); err != nil {
		return nil, err
	}
	if err := s.ensureContact(ctx, v, nil); err != nil {
		return nil, err
	}
	var out json.RawMessage
	err = retry(func() error {
		c, p, err := s.contact(ctx, v.ID)
		if err != nil {
			return err
		}
		have := map[string]json.RawMessage{}
		if len(p.Attributes) > 0 {
			if err := json.Unmarshal(p.Attributes, &have); err != nil {
				return err
			}
		}
		for k, val := range set {
			if string(val) == "null" {
				delete(have, k)
			} else {
				have[k] = val
			}
		}
		merged, _ := json.Marshal(have)
		if p.Attributes, err = ParseAttributes(merged); err != nil {
			return err // the merged set crosses a limit
		}
		sealed, _, err := s.sealContact(ctx, v.ID, p)
		if err != nil {
			return err
		}
		// Attributes never change the email, so its index (or its
		// absence: unvouched, or taken) stays as it is.
		res, err := s.SQL.Exec(ctx, `UPDATE contacts SET pii_sealed = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
			sealed, s.now(), s.Tenant, v.ID, c.Version)
		if err != nil {
			return err
		}
		if res.RowsAffected == 0 {
			return storage.ErrConflict
		}
		out = p.Attributes
		return nil
	})
	return out, err
}

// names reads people's display names by user id (the PersonNames hook).
func (s *Store) names(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 || s.PersonNames == nil {
		return map[string]string{}, nil
	}
	return s.PersonNames(ctx, ids)
}

// vmessage is m as the visitor sees it, in conversation conv at seq.
func (s *Store) vmessage(m *Message, conv string, seq int64, names map[string]string) *VMessage {
	out := &VMessage{ID: m.ID, ConversationID: conv, Seq: seq, AuthorType: m.AuthorType, Text: m.Text, CreatedAt: m.CreatedAt}
	switch m.AuthorType {
	case "person":
		out.AuthorName = names[m.AuthorID]
	case "agent":
		out.AuthorName = s.AgentName
	}
	if m.AttachmentSize != nil {
		a := &VAttachment{Size: *m.AttachmentSize, Type: servedType(m.AttachmentType),
			URL: "/v1/widget/conversations/" + conv + "/messages/" + m.ID + "/attachment"}
		if m.AttachmentName != nil {
			a.Name = *m.AttachmentName
		}
		out.Attachment = a
	}
	return out
}

// vmessages renders messages already viewed in their conversation (viewAt).
func (s *Store) vmessages(ctx context.Context, list []*Message) ([]*VMessage, error) {
	names, err := s.names(ctx, personIDs(list, nil))
	if err != nil {
		return nil, err
	}
	out := make([]*VMessage, len(list))
	for i, m := range list {
		out[i] = s.vmessage(m, m.ConversationID, m.Seq, names)
	}
	return out, nil
}

func personIDs(list []*Message, more []string) []string {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, m := range list {
		if m.AuthorType == "person" {
			add(m.AuthorID)
		}
	}
	for _, id := range more {
		add(id)
	}
	return ids
}

// Visitor event types: the visitor's stream names events as the widget's
// protocol does (docs/realtime.md), shorter than the team's.
var visitorTypes = map[string]string{
	EvStatusChanged:   "status.changed",
	EvAttachmentAdded: "attachment.added",
	EvMerged:          "merged",
}

// visitorEvents renders events the visitor may see (visible already
// decided which): messages as VMessages with their authors' names, and
// every other event's data cut to what the widget needs. No actor, no
// person's id.
func (s *Store) visitorEvents(ctx context.Context, convID string, evs []eventRow, msgs map[string]*Message) ([]Event, error) {
	var list []*Message
	for _, m := range msgs {
		list = append(list, m)
	}
	var typers []string
	for _, e := range evs {
		if e.typ == EvTyping && strings.HasPrefix(e.actor, "user:") {
			typers = append(typers, strings.TrimPrefix(e.actor, "user:"))
		}
	}
	names, err := s.names(ctx, personIDs(list, typers))
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(evs))
	for _, e := range evs {
		typ := e.typ
		if t, ok := visitorTypes[typ]; ok {
			typ = t
		}
		var stored map[string]any
		json.Unmarshal([]byte(e.data), &stored)
		var data any
		switch e.typ {
		case EvMessageCreated:
			m, ok := msgs[e.ref]
			if !ok {
				continue
			}
			data = s.vmessage(m, convID, e.seq, names)
		case EvAttachmentAdded:
			m, ok := msgs[e.ref]
			if !ok {
				continue
			}
			// The event names the message's seq in this conversation (a
			// merged message is attached in its target); before it did,
			// attachments were added in the message's own conversation.
			seq := m.Seq
			if v, ok := stored["seq"].(float64); ok {
				seq = int64(v)
			}
			data = s.vmessage(m, convID, seq, names)
		case EvCreated:
			data = map[string]any{"status": stored["status"]}
		case EvStatusChanged:
			data = map[string]any{"from": stored["from"], "to": stored["to"]}
		case EvMerged:
			d := map[string]any{}
			for _, k := range []string{"into", "from"} {
				if v, ok := stored[k]; ok {
					d[k] = v
				}
			}
			data = d
		case EvTyping:
			by, name := "person", ""
			switch {
			case strings.HasPrefix(e.actor, "contact:"):
				by = "visitor"
			case strings.HasPrefix(e.actor, "user:"):
				name = names[strings.TrimPrefix(e.actor, "user:")]
			default: // the system's AI agent, or an integration's bot
				by, name = "agent", s.AgentName
			}
			data = map[string]any{"by": by, "typing": stored["typing"] == true, "name": name}
		case EvRead:
			if strings.HasPrefix(e.actor, "contact:") {
				data = map[string]any{"by": "visitor", "seq": stored["seq"]}
			} else {
				data = map[string]any{"by": "team", "seq": stored["read_seq"]}
			}
		case EvCSATSubmitted:
			data = map[string]any{"rating": stored["rating"]}
		default:
			continue
		}
		b, err := json.Marshal(data)
		if err != nil {
			return nil, err
		}
		out = append(out, Event{Seq: e.seq, Type: typ, ConversationID: convID, At: millis(e.at), Data: b})
	}
	return out, nil
}
