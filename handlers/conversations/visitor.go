package conversations

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
)

// The visitor's side of conversations: the routes the widget calls, with a
// visitor scope (web.Scope.VisitorID, made by package widget from the
// widget and visitor tokens). A visitor sees only their own
// conversations, rendered for AudienceVisitor (visitor_store.go).
//
// A visitor's reads are not audited: they read their own chat, which is
// not the team's data access. Their writes are in the conversation's event
// log with the actor "contact:ct_…", which is the record.

func visitorOf(s *web.Scope) Visitor {
	return Visitor{ID: s.VisitorID, Verified: s.VisitorVerified, Name: s.VisitorName, Email: s.VisitorEmail}
}

// visitorScope refuses a scope that is not a visitor's (a route of
// permission visitor is only ever given one; this is the second lock).
func visitorScope(s *web.Scope) error {
	if s == nil || s.VisitorID == "" {
		return web.Errorf(http.StatusUnauthorized, "visitor_token_invalid", "a visitor token is required")
	}
	return nil
}

// visitorLimit is the largest file the visitor may attach.
func visitorLimit(s *web.Scope) int64 {
	if n := s.Visitor.AttachmentMaxBytes; n > 0 && n <= MaxAttachment {
		return n
	}
	return DefaultVisitorAttachment
}

// VisitorUpdate sets the visitor's custom attributes (merged into what the
// contact has; null removes one), making their contact if missing.
func (rt *Routes) VisitorUpdate(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	var in struct {
		Attributes json.RawMessage `json:"attributes"`
	}
	if err := web.DecodeJSON(w, r, contactBody, &in); err != nil {
		return err
	}
	if in.Attributes == nil {
		return fail(http.StatusBadRequest, "invalid_attributes", "attributes", "attributes (an object) is required")
	}
	attrs, err := rt.store(s).VisitorAttributes(r.Context(), visitorOf(s), in.Attributes)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"visitor_id": s.VisitorID, "attributes": attrs})
	return nil
}

func (rt *Routes) VisitorConversations(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	list, next, err := rt.store(s).VisitorConversations(r.Context(), s.VisitorID, r.URL.Query().Get("cursor"), PageSize)
	if err != nil {
		return err
	}
	writeList(w, "conversations", list, next)
	return nil
}

// VisitorStartInput is the body of a new conversation from the widget.
type VisitorStartInput struct {
	Text    *string  `json:"text"`
	PreChat *PreChat `json:"pre_chat"`
}

func (rt *Routes) VisitorStart(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	var in VisitorStartInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	text := ""
	if in.Text != nil {
		text = *in.Text
	}
	c, m, replay, err := rt.store(s).VisitorStart(r.Context(), visitorOf(s), text, in.PreChat, key)
	if err != nil {
		return err
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/widget/conversations/"+c.ID)
	web.WriteJSON(w, http.StatusCreated, map[string]any{"conversation": c, "message": m})
	return nil
}

func (rt *Routes) VisitorConversation(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	c, err := rt.store(s).VisitorConversation(r.Context(), s.VisitorID, r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, c)
	return nil
}

// Visitor message pages: limit is 1..MaxVisitorPage, default PageSize.
const MaxVisitorPage = 200

// ParseLimit reads a page size: a decimal 1..max; "" is def.
func ParseLimit(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := ParseSeq(v)
	if err != nil || n < 1 || n > int64(max) {
		return 0, fail(http.StatusBadRequest, "invalid_limit", "limit", "limit is a whole number from 1 to %d", max)
	}
	return int(n), nil
}

func (rt *Routes) VisitorMessages(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	q := r.URL.Query()
	after := int64(0)
	if v := q.Get("after"); v != "" {
		var err error
		if after, err = ParseSeq(v); err != nil {
			err.(*web.Error).Field = "after"
			return err
		}
	}
	limit, err := ParseLimit(q.Get("limit"), PageSize, MaxVisitorPage)
	if err != nil {
		return err
	}
	list, more, err := rt.store(s).VisitorMessages(r.Context(), s.VisitorID, r.PathValue("id"), after, limit)
	if err != nil {
		return err
	}
	next := after
	if len(list) > 0 {
		next = list[len(list)-1].Seq
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"messages": list, "next_after": next, "more": more})
	return nil
}

// VisitorSendInput is a visitor's message: text, or a file announced (the
// text may then be empty) and uploaded next to .../attachment.
type VisitorSendInput struct {
	Text       string         `json:"text"`
	Attachment *AnnounceInput `json:"attachment"`
}

// AnnounceInput is the file a message announces.
type AnnounceInput struct {
	Name *string `json:"name"`
	Size *int64  `json:"size"`
}

// ParseAnnouncement checks an announced file against the visitor's limit:
// a usable name (ParseFileName) and a size 0..limit.
func ParseAnnouncement(in *AnnounceInput, limit int64) (*Announcement, error) {
	if in == nil {
		return nil, nil
	}
	if in.Name == nil {
		return nil, fail(http.StatusBadRequest, "invalid_file_name", "attachment.name", "attachment.name is required")
	}
	name, err := ParseFileName(*in.Name)
	if err != nil {
		err.(*web.Error).Field = "attachment.name"
		return nil, err
	}
	if in.Size == nil || *in.Size < 0 {
		return nil, fail(http.StatusBadRequest, "invalid_size", "attachment.size", "attachment.size is the file's size in bytes")
	}
	if *in.Size > limit {
		return nil, errVisitorTooLarge(limit)
	}
	return &Announcement{Name: name, Size: *in.Size}, nil
}

// VisitorSend: like the team's send, an Idempotency-Key is required; the
// first result is 201, a replay 200 with Idempotent-Replayed: true.
func (rt *Routes) VisitorSend(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	key, err := idempotencyKey(r, true)
	if err != nil {
		return err
	}
	var in VisitorSendInput
	if err := web.DecodeJSON(w, r, messageBody, &in); err != nil {
		return err
	}
	ann, err := ParseAnnouncement(in.Attachment, visitorLimit(s))
	if err != nil {
		return err
	}
	m, replay, err := rt.store(s).VisitorSend(r.Context(), visitorOf(s), r.PathValue("id"), in.Text, ann, key)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/widget/conversations/"+m.ConversationID+"/messages?after="+strconv.FormatInt(m.Seq-1, 10))
	web.WriteJSON(w, status, m)
	return nil
}

// VisitorPutAttachment stores the file the visitor's message announced:
// its length known up front and at most the tenant's visitor limit, its
// type sniffed from content against the allow-list (415 otherwise).
func (rt *Routes) VisitorPutAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	limit := visitorLimit(s)
	if r.ContentLength < 0 {
		return fail(http.StatusLengthRequired, "length_required", "", "an upload needs a Content-Length")
	}
	if r.ContentLength > limit {
		return errVisitorTooLarge(limit)
	}
	st := rt.store(s)
	conv, msg := r.PathValue("id"), r.PathValue("mid")
	if _, err := st.visitorConv(r.Context(), s.VisitorID, conv); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	m, err := st.attach(r.Context(), s.P.Blobs, visitorOf(s).actor(), conv, msg, body, r.ContentLength, attachOpts{visitor: true, limit: limit})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errVisitorTooLarge(limit)
		}
		return err
	}
	ms, err := st.vmessages(r.Context(), []*Message{m})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, ms[0])
	return nil
}

// VisitorGetAttachment serves a file of the visitor's conversation (never
// a private note's) as a download; private, not cached.
func (rt *Routes) VisitorGetAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	st := rt.store(s)
	conv, msg := r.PathValue("id"), r.PathValue("mid")
	if _, err := st.visitorConv(r.Context(), s.VisitorID, conv); err != nil {
		return err
	}
	rc, m, err := st.openAttachment(r.Context(), s.P.Blobs, conv, msg, AudienceVisitor)
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Cache-Control", "private, no-store")
	serveAttachment(w, rc, m)
	return nil
}

func (rt *Routes) VisitorTyping(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	var in struct {
		Typing *bool `json:"typing"`
	}
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	if in.Typing == nil {
		return fail(http.StatusBadRequest, "invalid_typing", "typing", "typing (true or false) is required")
	}
	st := rt.store(s)
	if _, err := st.visitorConv(r.Context(), s.VisitorID, r.PathValue("id")); err != nil {
		return err
	}
	seq, err := st.Typing(r.Context(), visitorOf(s).actor(), r.PathValue("id"), *in.Typing, false)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]int64{"seq": seq})
	return nil
}

func (rt *Routes) VisitorRead(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	var in struct {
		Seq *int64 `json:"seq"`
	}
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	if in.Seq != nil && (*in.Seq < 0 || *in.Seq > maxSafeInt) {
		return fail(http.StatusBadRequest, "invalid_seq", "seq", "seq is a whole number from 0 to 2^53-1")
	}
	seq, err := rt.store(s).VisitorRead(r.Context(), visitorOf(s), r.PathValue("id"), in.Seq)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]int64{"seq": seq})
	return nil
}

func (rt *Routes) VisitorCSAT(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	if err := visitorScope(s); err != nil {
		return err
	}
	var in CSATInput
	if err := web.DecodeJSON(w, r, smallBody, &in); err != nil {
		return err
	}
	rating, comment, err := ParseCSAT(in)
	if err != nil {
		return err
	}
	if !s.Visitor.CSAT {
		return fail(http.StatusConflict, "csat_disabled", "", "this organization does not ask for ratings")
	}
	c, err := rt.store(s).SubmitCSAT(r.Context(), visitorOf(s).actor(), r.PathValue("id"), rating, comment)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, c)
	return nil
}

// visitorEvents answers the visitor's long-poll and SSE stream with the
// same hand-off to the home as the team's (streamAnswer; docs/realtime.md):
// the topic is the conversation's, so a person's write wakes the visitor's
// stream and the visitor's wakes the team's.
func (rt *Routes) visitorEvents(sse bool) web.Handler {
	return func(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
		if err := visitorScope(s); err != nil {
			return err
		}
		after, err := streamCursor(r)
		if err != nil {
			return err
		}
		id := r.PathValue("id")
		st := rt.store(s)
		evs, cursor, more, err := st.Events(r.Context(), id, after, AudienceVisitor)
		if err != nil {
			return err
		}
		cacheHeader(w, st)
		return streamAnswer(w, r, ConversationTopic(s.Tenant, id), sse, evs, cursor, more, func(e Event) (int64, string) { return e.Seq, e.Type })
	}
}

func (rt *Routes) VisitorEvents(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.visitorEvents(false)(w, r, s)
}

func (rt *Routes) VisitorEventStream(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	return rt.visitorEvents(true)(w, r, s)
}
