package conversations

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// SendInput is a message to send.
type SendInput struct {
	Text string `json:"text"`
	// Private notes are for the tenant's people only; visitors never see
	// them, and only people may write them.
	Private bool `json:"private"`
	// AuthorType: people always write as "person". An API key (an
	// integration) writes as "visitor" (the conversation's contact; the
	// default) or "system". "agent" is the AI agent's, written by the
	// application itself.
	AuthorType string `json:"author_type"`

	// announce: a visitor's message that announces a file (the widget's
	// send); its text may then be empty.
	announce *Announcement
	// reopen: the widget's send, which brings a resolved or snoozed
	// conversation back to open (the visitor is writing again).
	reopen bool
}

// Announcement is the file a visitor's message says it carries, uploaded
// next (visitor.go).
type Announcement struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Message is a message as the API shows it.
type Message struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversation_id"`
	// Seq is the message's position in the conversation it is read from
	// (its message.created event).
	Seq        int64  `json:"seq"`
	AuthorType string `json:"author_type"`
	AuthorID   string `json:"author_id"`
	Private    bool   `json:"private"`
	Text       string `json:"text"`
	CreatedAt  string `json:"created_at"`
	// MergedFrom is set on a message that was written to another
	// conversation, later merged into this one.
	MergedFrom *Origin `json:"merged_from,omitempty"`
	// AttachmentSize is the size in bytes of the message's attachment
	// (GET .../messages/{id}/attachment), absent when it has none.
	AttachmentSize *int64 `json:"attachment_size,omitempty"`
	// AttachmentName is the file name its sender gave (sanitized), absent
	// when none was given; AttachmentType is the type sniffed from its
	// content (an allow-listed type, else application/octet-stream).
	AttachmentName *string `json:"attachment_name,omitempty"`
	AttachmentType string  `json:"attachment_type,omitempty"`
}

// Origin is where a merged message was first written.
type Origin struct {
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
}

const kindText = "message.text"

// newMessage is a validated, sealed message about to be written.
type newMessage struct {
	id, authorType, authorID string
	private                  bool
	text                     string
	sealed                   []byte
	announced                []byte // sealed Announcement, nil for none
}

// checkText applies the text rules; field prefixes the field name.
func checkText(text, field string) error {
	if strings.TrimSpace(text) == "" {
		return fail(http.StatusBadRequest, "invalid_text", field+"text", "text is required")
	}
	if n := utf8.RuneCountInString(text); n > MaxText {
		return fail(http.StatusUnprocessableEntity, "text_too_long", field+"text", "text is at most %d characters; this one has %d", MaxText, n)
	}
	return nil
}

// prepareMessage decides the author and seals the text.
func (s *Store) prepareMessage(ctx context.Context, actor Actor, contact string, in SendInput, field string) (*newMessage, error) {
	if in.announce == nil {
		if err := checkText(in.Text, field); err != nil {
			return nil, err
		}
	} else if n := utf8.RuneCountInString(in.Text); n > MaxText {
		return nil, fail(http.StatusUnprocessableEntity, "text_too_long", field+"text", "text is at most %d characters; this one has %d", MaxText, n)
	}
	m := &newMessage{id: newID("m"), private: in.Private, text: in.Text}
	switch actor.Type {
	case "user":
		if in.AuthorType != "" && in.AuthorType != "person" {
			return nil, fail(http.StatusUnprocessableEntity, "invalid_author_type", field+"author_type", "people write as person")
		}
		m.authorType, m.authorID = "person", actor.ID
	case "api_key":
		switch in.AuthorType {
		case "", "visitor":
			m.authorType, m.authorID = "visitor", contact
		case "system":
			m.authorType, m.authorID = "system", actor.ID
		default:
			return nil, fail(http.StatusUnprocessableEntity, "invalid_author_type", field+"author_type", "an API key writes as visitor or system")
		}
	case "contact":
		m.authorType, m.authorID = "visitor", actor.ID
	case "system":
		m.authorType, m.authorID = "system", "system"
		if in.AuthorType == "agent" {
			m.authorType, m.authorID = "agent", "agent"
		}
	}
	if m.private && actor.Type != "user" {
		return nil, fail(http.StatusForbidden, "private_notes_people_only", field+"private", "only people may write private notes")
	}
	sealed, err := s.Keys.Seal(ctx, s.Tenant, kindText, m.id, []byte(in.Text))
	if err != nil {
		return nil, err
	}
	m.sealed = sealed
	if in.announce != nil {
		b, _ := json.Marshal(in.announce)
		if m.announced, err = s.Keys.Seal(ctx, s.Tenant, kindAnnounced, m.id, b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *newMessage) insert(tenant, conv string, seq, now int64) storage.Stmt {
	var announced any // NULL, not an empty blob, when there is none
	if m.announced != nil {
		announced = m.announced
	}
	return storage.Stmt{
		Query: `INSERT INTO messages (tenant_id, id, conversation_id, seq, author_type, author_id, private, text_sealed, created_at, announced_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{tenant, m.id, conv, seq, m.authorType, m.authorID, m.private, m.sealed, now, announced}}
}

func (m *newMessage) event() event {
	// A private note does not enter the inbox feed (nothing changes for
	// the contact's side and unread counts only visitors' messages).
	return event{Type: EvMessageCreated, Ref: m.id, Private: m.private, Inbox: !m.private}
}

func (m *newMessage) message(conv string, seq, now int64) *Message {
	return &Message{ID: m.id, ConversationID: conv, Seq: seq, AuthorType: m.authorType, AuthorID: m.authorID,
		Private: m.private, Text: m.text, CreatedAt: millis(now)}
}

// Send appends a message to a conversation. The message row, its event,
// the inbox row and the idempotency key are one batch: with a key, a retry
// of a send that committed finds the key's row (the batch's insert of the
// same key fails whole) and returns the first message; a retry of a send
// that did not commit finds nothing and sends. replay reports the former.
func (s *Store) Send(ctx context.Context, actor Actor, convID string, in SendInput, idemKey string) (msg *Message, replay bool, err error) {
	if idemKey != "" && !ValidIdempotencyKey(idemKey) {
		return nil, false, fail(http.StatusBadRequest, "invalid_idempotency_key", "", "Idempotency-Key is 1 to %d visible ASCII characters", MaxIdemKey)
	}
	hash := requestHash("send", convID, in)
	if in.announce != nil {
		hash = requestHash("send", convID, struct {
			SendInput
			Attachment *Announcement `json:"attachment"`
		}{in, in.announce})
	}
	var m *newMessage
	err = retry(func() error {
		cv, err := s.load(ctx, convID)
		if err != nil {
			return err
		}
		if cv.Status == StatusMerged {
			// A retry of a send that landed before the merge still
			// gets its first result.
			if idemKey != "" {
				if msg, replay, err = s.replaySend(ctx, actor, idemKey, hash); msg != nil || err != nil {
					return err
				}
			}
			return errMerged(cv.MergedInto)
		}
		if m == nil {
			if m, err = s.prepareMessage(ctx, actor, cv.ContactID, in, ""); err != nil {
				return err
			}
		}
		now := s.now()
		seq := cv.LastSeq + 1
		c := change{set: "last_activity_at = ?, unread = unread + ?", args: []any{now, 0}}
		if in.reopen && (cv.Status == StatusResolved || cv.Status == StatusSnoozed) {
			// In the same batch, before the message: the team's inbox
			// shows the conversation open again with its new message. A
			// pending snooze wake-up then finds it not snoozed and does
			// nothing.
			c.set = "status = 'open', snoozed_until = NULL, " + c.set
			c.events = append(c.events, event{Type: EvStatusChanged, Inbox: true,
				Data: map[string]any{"from": cv.Status, "to": StatusOpen, "reason": "visitor_message"}})
			seq++
		}
		c.after = []storage.Stmt{m.insert(s.Tenant, cv.ID, seq, now)}
		c.events = append(c.events, m.event())
		if m.authorType == "visitor" {
			c.args[1] = 1
		}
		if idemKey != "" {
			c.before = []storage.Stmt{idemStmt(s.Tenant, actor, idemKey, hash, cv.ID, m.id, now)}
		}
		err = s.apply(ctx, cv, actor, now, c)
		if errors.Is(err, storage.ErrConflict) && idemKey != "" {
			if msg, replay, err = s.replaySend(ctx, actor, idemKey, hash); msg != nil || err != nil {
				return err
			}
			return storage.ErrConflict // the seq race, not the key: again
		}
		if err != nil {
			return err
		}
		msg = m.message(cv.ID, seq, now)
		return nil
	})
	return msg, replay, err
}

func (s *Store) replaySend(ctx context.Context, actor Actor, key string, hash []byte) (*Message, bool, error) {
	k, err := s.idem(ctx, actor, key, hash)
	if err != nil || k == nil {
		return nil, false, err
	}
	if k.message == "" {
		return nil, false, errKeyReused
	}
	m, err := s.message(ctx, k.message)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

var errKeyReused = fail(http.StatusUnprocessableEntity, "idempotency_key_reused", "",
	"this Idempotency-Key was already used for a different request; use a new key for a new request")

// requestHash identifies a request for its idempotency key: what it does,
// to which conversation, with which body (as decoded, so that spacing and
// key order do not matter).
func requestHash(op, conv string, body any) []byte {
	b, _ := json.Marshal(body)
	h := sha256.New()
	h.Write([]byte(op + "\n" + conv + "\n"))
	h.Write(b)
	return h.Sum(nil)
}

func idemStmt(tenant string, actor Actor, key string, hash []byte, conv, msg string, now int64) storage.Stmt {
	return storage.Stmt{
		Query: `INSERT INTO idempotency_keys (tenant_id, principal, key, request_hash, conversation_id, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		Args:  []any{tenant, actor.String(), key, hash, conv, msg, now}}
}

type idemRow struct{ conversation, message string }

// idem reads a stored key of actor's: nil if there is none; 422 if it was
// used for another request.
func (s *Store) idem(ctx context.Context, actor Actor, key string, hash []byte) (*idemRow, error) {
	rows, err := s.SQL.Query(ctx, `SELECT request_hash, conversation_id, message_id FROM idempotency_keys WHERE tenant_id = ? AND principal = ? AND key = ?`,
		s.Tenant, actor.String(), key)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	var stored []byte
	var k idemRow
	if err := rows.Scan(0, &stored, &k.conversation, &k.message); err != nil {
		return nil, err
	}
	if !bytes.Equal(stored, hash) {
		return nil, errKeyReused
	}
	return &k, nil
}

// IdempotencyRetention is how long keys are kept; a retry later than this
// is a new request.
const IdempotencyRetention = 7 * 24 * 60 * 60 * 1000

// PruneIdempotencyKeys deletes keys older than the retention, across all
// tenants (the scheduler's sweep), a bounded number per call.
func PruneIdempotencyKeys(ctx context.Context, p storage.Platform) error {
	cut := p.Clock.Now().UnixMilli() - IdempotencyRetention
	// tenant-lookup: a global sweep by age; it never reads a tenant's data.
	_, err := p.SQL.Exec(ctx, `DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT 1000)`, cut)
	return err
}

// msgCols are a message's columns as scanMessage reads them, from messages
// m joined with msgJoin.
const msgCols = `m.id, m.conversation_id, m.seq, m.author_type, m.author_id, m.private, m.text_sealed, m.created_at, a.size, a.name_sealed, a.content_type`

// msgJoin adds a message's attachment, if any, to a query of messages m.
const msgJoin = ` LEFT JOIN message_attachments a ON a.tenant_id = m.tenant_id AND a.message_id = m.id`

func (s *Store) scanMessage(ctx context.Context, rows *storage.Rows, i int, prefix ...any) (*Message, error) {
	m := &Message{}
	var sealed, name []byte
	var created int64
	dest := append(prefix, &m.ID, &m.ConversationID, &m.Seq, &m.AuthorType, &m.AuthorID, &m.Private, &sealed, &created, &m.AttachmentSize,
		&name, &m.AttachmentType)
	if err := rows.Scan(i, dest...); err != nil {
		return nil, err
	}
	text, err := s.Keys.Open(ctx, s.Tenant, kindText, m.ID, sealed)
	if err != nil {
		return nil, err
	}
	m.Text, m.CreatedAt = string(text), millis(created)
	if name != nil {
		n, err := s.Keys.Open(ctx, s.Tenant, kindAttachmentName, m.ID, name)
		if err != nil {
			return nil, err
		}
		ns := string(n)
		m.AttachmentName = &ns
	}
	return m, nil
}

// message reads one message by id, as written.
func (s *Store) message(ctx context.Context, id string) (*Message, error) {
	rows, err := s.SQL.Query(ctx, `SELECT `+msgCols+` FROM messages m`+msgJoin+` WHERE m.tenant_id = ? AND m.id = ?`, s.Tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, fail(http.StatusNotFound, "not_found", "", "no such message")
	}
	return s.scanMessage(ctx, rows, 0)
}

// Messages lists a conversation's messages after seq, in seq order, as its
// log shows them (merged messages included, at the seq of their event).
// Private notes are included only for the team audience.
func (s *Store) Messages(ctx context.Context, convID string, after int64, limit int, aud Audience) ([]*Message, int64, error) {
	if _, err := s.load(ctx, convID); err != nil {
		return nil, 0, err
	}
	q := `SELECT e.seq, ` + msgCols + ` ` +
		`FROM conversation_events e JOIN messages m ON m.tenant_id = e.tenant_id AND m.id = e.ref` + msgJoin + ` ` +
		`WHERE e.tenant_id = ? AND e.conversation_id = ? AND e.type = 'message.created' AND e.seq > ?`
	if aud == AudienceVisitor {
		q += ` AND e.private = 0`
	}
	rows, err := s.SQL.Query(ctx, q+` ORDER BY e.seq LIMIT ?`, s.Tenant, convID, after, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*Message, rows.Len())
	next := int64(0)
	for i := range out {
		var seq int64
		m, err := s.scanMessage(ctx, rows, i, &seq)
		if err != nil {
			return nil, 0, err
		}
		out[i] = viewAt(m, convID, seq)
		next = seq
	}
	if len(out) < limit {
		next = 0
	}
	return out, next, nil
}

// viewAt shows message m as seen in conversation conv at seq.
func viewAt(m *Message, conv string, seq int64) *Message {
	if m.ConversationID != conv {
		m.MergedFrom = &Origin{ConversationID: m.ConversationID, Seq: m.Seq}
	}
	m.ConversationID, m.Seq = conv, seq
	return m
}
