package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Routes are the HTTP handlers of this package; the route table in the
// root handlers package lists them with their permissions. The hooks are
// the other capabilities' statements a change must carry in its batch.
type Routes struct {
	Fanout       func(tenant, eventType, convID string, seq, now int64) storage.Stmt
	ScheduleWake func(tenant, convID string, until, now int64) storage.Stmt
	// PersonNames reads members' display names by user id (package
	// identity's), for the names the visitor sees on people's messages.
	PersonNames func(ctx context.Context, p storage.Platform, tenant string, ids []string) (map[string]string, error)
}

func (rt *Routes) store(s *web.Scope) *Store {
	st := NewStore(s.P, s.Keys, s.Tenant)
	if rt != nil {
		st.Fanout, st.ScheduleWake = rt.Fanout, rt.ScheduleWake
		if rt.PersonNames != nil {
			names, p, tenant := rt.PersonNames, s.P, s.Tenant
			st.PersonNames = func(ctx context.Context, ids []string) (map[string]string, error) { return names(ctx, p, tenant, ids) }
		}
	}
	st.Visitor, st.AgentName = s.VisitorID, s.Visitor.AgentName
	return st
}

func actorOf(s *web.Scope) Actor {
	if s.VisitorID != "" {
		return Actor{Type: "contact", ID: s.VisitorID}
	}
	if s.KeyID != "" {
		return Actor{Type: "api_key", ID: s.KeyID}
	}
	return Actor{Type: "user", ID: s.UserID}
}

// Body limits: a message's text may be 10,000 characters of up to 6 bytes
// each once JSON-escaped.
const (
	smallBody   = 4 << 10
	contactBody = MaxAttributesLen*6 + 4<<10
	messageBody = MaxText*6 + 4<<10
)

// IdempotencyHeader is the request header of sends.
const IdempotencyHeader = "Idempotency-Key"

func idempotencyKey(r *http.Request, required bool) (string, error) {
	v := r.Header.Values(IdempotencyHeader)
	switch {
	case len(v) == 0 && required:
		return "", fail(http.StatusBadRequest, "idempotency_key_required", "", "sending a message needs an %s header (a fresh random value per message, reused on retries)", IdempotencyHeader)
	case len(v) == 0:
		return "", nil
	case len(v) > 1 || !ValidIdempotencyKey(v[0]):
		return "", fail(http.StatusBadRequest, "invalid_idempotency_key", "", "%s is one value of 1 to %d visible ASCII characters", IdempotencyHeader, MaxIdemKey)
	}
	return v[0], nil
}

// --- contacts

func (rt *Routes) CreateContact(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in ContactInput
	if err := web.DecodeJSON(w, r, contactBody, &in); err != nil {
		return err
	}
	c, err := rt.store(s).CreateContact(r.Context(), in)
	if err != nil {
		return err
	}
	if err := s.Record(r, "contact.created", "contact:"+c.ID, nil); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/contacts/"+c.ID)
	web.WriteJSON(w, http.StatusCreated, c)
	return nil
}

func (rt *Routes) ListContacts(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	q := r.URL.Query()
	st := rt.store(s)
	ctx := r.Context()
	if q.Has("email") {
		out := []*Contact{}
		c, err := st.ContactByEmail(ctx, q.Get("email"))
		var ae *web.Error
		switch {
		case err == nil:
			out = append(out, c)
		case asError(err, &ae) && ae.Status == http.StatusNotFound:
		default:
			return err
		}
		if err := s.Record(r, "contacts.listed", "contacts", map[string]string{"by": "email", "count": strconv.Itoa(len(out))}); err != nil {
			return err
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"contacts": out})
		return nil
	}
	list, next, err := st.Contacts(ctx, q.Get("cursor"), PageSize)
	if err != nil {
		return err
	}
	if err := s.Record(r, "contacts.listed", "contacts", map[string]string{"count": strconv.Itoa(len(list))}); err != nil {
		return err
	}
	writeList(w, "contacts", list, next)
	return nil
}

func writeList[T any](w http.ResponseWriter, field string, list []T, next string) {
	resp := map[string]any{field: list}
	if next != "" {
		resp["next"] = next
	}
	web.WriteJSON(w, http.StatusOK, resp)
}

func (rt *Routes) GetContact(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	c, err := rt.store(s).Contact(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Record(r, "contact.read", "contact:"+c.ID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) UpdateContact(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in ContactInput
	if err := web.DecodeJSON(w, r, contactBody, &in); err != nil {
		return err
	}
	c, err := rt.store(s).UpdateContact(r.Context(), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	if err := s.Record(r, "contact.updated", "contact:"+c.ID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) DeleteContact(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if err := rt.store(s).DeleteContact(r.Context(), id); err != nil {
		return err
	}
	if err := s.Record(r, "contact.deleted", "contact:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ContactConversations is a contact's history: its conversations, merged
// ones included, most recent first.
func (rt *Routes) ContactConversations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	st := rt.store(s)
	id := r.PathValue("id")
	if _, err := st.Contact(ctx, id); err != nil {
		return err
	}
	return rt.listConversations(w, r, s, st, Filter{ContactID: id, Status: r.URL.Query().Get("status"), includeMerged: true})
}

// --- conversations

// created is a new conversation with its first message, if any.
type created struct {
	*Conversation
	Message *Message `json:"message,omitempty"`
}

func (rt *Routes) CreateConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	key, err := idempotencyKey(r, false)
	if err != nil {
		return err
	}
	var in CreateInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	c, m, replay, err := rt.store(s).CreateConversation(r.Context(), actorOf(s), in, key)
	if err != nil {
		return err
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	} else if err := s.Record(r, "conversation.created", "conversation:"+c.ID, nil); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/conversations/"+c.ID)
	web.WriteJSON(w, http.StatusCreated, created{c, m})
	return nil
}

func (rt *Routes) ListConversations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Assignee: q.Get("assignee"), Label: q.Get("label"), ContactID: q.Get("contact_id")}
	return rt.listConversations(w, r, s, rt.store(s), f)
}

func (rt *Routes) listConversations(w http.ResponseWriter, r *http.Request, s *web.Scope, st *Store, f Filter) error {
	list, next, err := st.Conversations(r.Context(), f, r.URL.Query().Get("cursor"), PageSize)
	if err != nil {
		return err
	}
	d := map[string]string{"count": strconv.Itoa(len(list))}
	if f.ContactID != "" {
		d["contact"] = f.ContactID
	}
	if err := s.Record(r, "conversations.listed", "conversations", d); err != nil {
		return err
	}
	writeList(w, "conversations", list, next)
	return nil
}

func (rt *Routes) GetConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	c, err := rt.store(s).Conversation(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.Record(r, "conversation.read", "conversation:"+c.ID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) UpdateConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in UpdateInput
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	c, changed, err := rt.store(s).UpdateConversation(r.Context(), actorOf(s), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		if err := s.Record(r, "conversation.updated", "conversation:"+c.ID, map[string]string{"changed": strings.Join(changed, ",")}); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) MergeConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in struct {
		SourceID string `json:"source_id"`
	}
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	c, n, err := rt.store(s).Merge(r.Context(), actorOf(s), r.PathValue("id"), in.SourceID)
	if err != nil {
		return err
	}
	if err := s.Record(r, "conversation.merged", "conversation:"+c.ID, map[string]string{"source": in.SourceID, "messages": strconv.FormatInt(n, 10)}); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) MarkRead(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	seq, err := rt.store(s).MarkRead(r.Context(), actorOf(s), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]int64{"read_seq": seq})
	return nil
}

func (rt *Routes) Typing(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in struct {
		Typing  *bool `json:"typing"`
		Private bool  `json:"private"`
	}
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	if in.Typing == nil {
		return fail(http.StatusBadRequest, "invalid_typing", "typing", "typing (true or false) is required")
	}
	seq, err := rt.store(s).Typing(r.Context(), actorOf(s), r.PathValue("id"), *in.Typing, in.Private)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]int64{"seq": seq})
	return nil
}

// --- messages

// SendMessage requires an Idempotency-Key: without one a client that times
// out cannot retry safely, so the API does not invent one for it (400).
// The first result, and every replay of it, is 201 with the message;
// replays also carry Idempotent-Replayed: true.
func (rt *Routes) SendMessage(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	var in SendInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	m, replay, err := rt.store(s).Send(r.Context(), actorOf(s), r.PathValue("id"), in, key)
	if err != nil {
		return err
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/conversations/"+m.ConversationID+"/messages?after="+strconv.FormatInt(m.Seq-1, 10))
	web.WriteJSON(w, http.StatusCreated, m)
	return nil
}

func (rt *Routes) ListMessages(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	after := int64(0)
	if v := r.URL.Query().Get("after"); v != "" {
		var err error
		if after, err = ParseSeq(v); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	list, next, err := rt.store(s).Messages(r.Context(), id, after, PageSize, AudienceTeam)
	if err != nil {
		return err
	}
	if err := s.Record(r, "messages.listed", "conversation:"+id, map[string]string{"count": strconv.Itoa(len(list))}); err != nil {
		return err
	}
	resp := map[string]any{"messages": list}
	if next != 0 {
		resp["next"] = next
	}
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// --- attachments

// PutAttachment streams the request body, sealed chunk by chunk, into the
// blob store as the message's attachment; memory use does not grow with
// its size. The body is the file's bytes, of any content type.
func (rt *Routes) PutAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if r.ContentLength > MaxAttachment {
		return errAttachmentTooLarge
	}
	var o attachOpts
	if q := r.URL.Query(); q.Has("name") {
		var err error
		if o.name, err = ParseFileName(q.Get("name")); err != nil {
			return err
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxAttachment)
	m, err := rt.store(s).attach(r.Context(), s.P.Blobs, actorOf(s), r.PathValue("id"), r.PathValue("mid"), body, r.ContentLength, o)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errAttachmentTooLarge
		}
		return err
	}
	// Like a send, the upload is recorded in the conversation's event log
	// with its actor, not in the audit log; reading it is data access.
	w.Header().Set("Location", "/v1/conversations/"+m.ConversationID+"/messages/"+m.ID+"/attachment")
	web.WriteJSON(w, http.StatusCreated, m)
	return nil
}

// GetAttachment streams a message's attachment back, opened chunk by
// chunk. It is data access, audited. It is served as a download
// (attachment disposition with its file name, nosniff), never rendered by
// a browser, typed application/octet-stream unless its content is on the
// allow-list (serveAttachment).
func (rt *Routes) GetAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	conv, msg := r.PathValue("id"), r.PathValue("mid")
	rc, m, err := rt.store(s).openAttachment(r.Context(), s.P.Blobs, conv, msg, AudienceTeam)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := s.Record(r, "message.attachment.read", "conversation:"+conv, map[string]string{"message": msg}); err != nil {
		return err
	}
	serveAttachment(w, rc, m)
	return nil
}

// CacheHeader says whether a read of events found its conversation in the
// KV cache ("hit") or read its row ("miss"): what the cache saves is
// visible, in every home.
const CacheHeader = "Pommy-Cache"

func cacheHeader(w http.ResponseWriter, st *Store) {
	v := "miss"
	if st.cacheHit {
		v = "hit"
	}
	w.Header().Set(CacheHeader, v)
}

// --- event streams (docs/realtime.md)

// streamCursor is Last-Event-ID (an SSE resume, or the home's re-poll) or
// else ?after=, else 0.
func streamCursor(r *http.Request) (int64, error) {
	if v := r.Header.Values("Last-Event-ID"); len(v) > 0 {
		if len(v) > 1 {
			return 0, fail(http.StatusBadRequest, "invalid_cursor", "Last-Event-ID", "one Last-Event-ID, please")
		}
		n, err := ParseSeq(v[0])
		if err != nil {
			err.(*web.Error).Field = "Last-Event-ID"
		}
		return n, err
	}
	if v, ok := r.URL.Query()["after"]; ok {
		if len(v) != 1 {
			return 0, fail(http.StatusBadRequest, "invalid_cursor", "after", "one after, please")
		}
		n, err := ParseSeq(v[0])
		if err != nil {
			err.(*web.Error).Field = "after"
		}
		return n, err
	}
	return 0, nil
}

// streamAnswer writes one answer of a stream route: the events so far, and
// the headers that tell the home how to hold the stream.
func streamAnswer[E any](w http.ResponseWriter, r *http.Request, topic string, sse bool, evs []E, cursor int64, more bool, frame func(E) (int64, string)) error {
	h := w.Header()
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		return err
	}
	if sse || wait > 0 {
		h.Set(storage.StreamTopicHeader, topic)
		h.Set(storage.StreamCursorHeader, strconv.FormatInt(cursor, 10))
		if more {
			h.Set(storage.StreamMoreHeader, "1")
		}
	}
	if !sse {
		if wait > 0 {
			h.Set(storage.StreamModeHeader, storage.StreamModeLongPoll)
			h.Set(storage.StreamWaitHeader, strconv.Itoa(wait))
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"events": evs, "cursor": cursor})
		return nil
	}
	h.Set(storage.StreamModeHeader, storage.StreamModeSSE)
	var b strings.Builder
	for _, e := range evs {
		seq, typ := frame(e)
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "id: %d\nevent: %s\ndata: %s\n\n", seq, typ, data)
	}
	h.Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte(b.String()))
	return err
}

func (rt *Routes) events(sse bool) web.Handler {
	return func(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
		after, err := streamCursor(r)
		if err != nil {
			return err
		}
		id := r.PathValue("id")
		st := rt.store(s)
		evs, cursor, more, err := st.Events(r.Context(), id, after, AudienceTeam)
		if err != nil {
			return err
		}
		cacheHeader(w, st)
		if !web.HomePoll(r) {
			action := "conversation.events.read"
			if sse {
				action = "conversation.subscribed"
			}
			if err := s.Record(r, action, "conversation:"+id, nil); err != nil {
				return err
			}
		}
		return streamAnswer(w, r, ConversationTopic(s.Tenant, id), sse, evs, cursor, more, func(e Event) (int64, string) { return e.Seq, e.Type })
	}
}

// Events is the long-poll (and plain poll) of a conversation's events.
func (rt *Routes) Events(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.events(false)(w, r, s)
}

// EventStream is the SSE stream of a conversation's events.
func (rt *Routes) EventStream(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.events(true)(w, r, s)
}

func (rt *Routes) inbox(sse bool) web.Handler {
	return func(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
		after, err := streamCursor(r)
		if err != nil {
			return err
		}
		evs, cursor, more, err := rt.store(s).InboxEvents(r.Context(), after)
		if err != nil {
			return err
		}
		if !web.HomePoll(r) {
			action := "inbox.events.read"
			if sse {
				action = "inbox.subscribed"
			}
			if err := s.Record(r, action, "inbox", nil); err != nil {
				return err
			}
		}
		return streamAnswer(w, r, InboxTopic(s.Tenant), sse, evs, cursor, more, func(e InboxEvent) (int64, string) { return e.Seq, e.Type })
	}
}

// InboxEvents is the long-poll of the tenant's inbox feed.
func (rt *Routes) InboxEvents(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.inbox(false)(w, r, s)
}

// InboxStream is the SSE stream of the tenant's inbox feed.
func (rt *Routes) InboxStream(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.inbox(true)(w, r, s)
}

// --- canned responses

func (rt *Routes) ListCanned(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	list, err := rt.store(s).CannedResponses(r.Context())
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"canned_responses": list})
	return nil
}

func (rt *Routes) CreateCanned(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in CannedInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	c, err := rt.store(s).CreateCanned(r.Context(), in)
	if err != nil {
		return err
	}
	if err := s.Record(r, "canned_response.created", "canned_response:"+c.ID, nil); err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/canned-responses/"+c.ID)
	web.WriteJSON(w, http.StatusCreated, c)
	return nil
}

func (rt *Routes) GetCanned(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	c, err := rt.store(s).CannedResponse(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) UpdateCanned(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var in CannedInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	c, err := rt.store(s).UpdateCanned(r.Context(), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	if err := s.Record(r, "canned_response.updated", "canned_response:"+c.ID, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (rt *Routes) DeleteCanned(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if err := rt.store(s).DeleteCanned(r.Context(), id); err != nil {
		return err
	}
	if err := s.Record(r, "canned_response.deleted", "canned_response:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
