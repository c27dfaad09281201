package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// A message may carry one attachment: bytes streamed, sealed chunk by
// chunk, into the blob store, never held whole in memory (the host seals
// them natively when the guest hands it the sealing reader). It is written
// once, by the principal that sent the message, after the message; the
// conversation's log then gets a message.attachment_added event.

// MaxAttachment is the largest attachment, and the largest request body
// of any route.
const MaxAttachment = 32 << 20

const (
	kindAttachment     = "message.attachment"
	kindAttachmentName = "message.attachment_name"
	kindAnnounced      = "message.announced"
)

// DefaultVisitorAttachment is a visitor's largest file when the tenant's
// widget settings name no smaller one.
const DefaultVisitorAttachment = 10 << 20

// EvAttachmentAdded is appended when a message's attachment is stored.
const EvAttachmentAdded = "message.attachment_added"

// attachmentBlobKey is where one upload of a message's attachment is
// stored. Every upload has its own key, so that two racing uploads never
// write over each other; the one whose row commits is the attachment.
func attachmentBlobKey(tenant, msg, upload string) string {
	return "t/" + tenant + "/messages/" + msg + "/" + upload
}

// attachmentAD is the sealed stream's id: the message and the upload, so
// that a blob cannot be moved under another message or swapped for
// another upload of the same message.
func attachmentAD(msg, upload string) string { return msg + "/" + upload }

// logMessage is a message as conversation conv's log shows it (merged
// messages included), with who sent it and its attachment, if any.
type logMessage struct {
	*Message
	actor     string // the principal that sent it (its event's actor)
	upload    string // the attachment's upload id; "" when it has none
	announced []byte // the sealed Announcement of a visitor's file, nil for none
}

var errNoMessage = fail(http.StatusNotFound, "not_found", "", "no such message in this conversation")

// logMessage reads message msgID as conversation convID shows it. An
// unknown conversation, a message of another conversation, another
// tenant's ids and malformed ones are the same 404; a visitor never finds
// a private note.
func (s *Store) logMessage(ctx context.Context, convID, msgID string, aud Audience) (*convRow, *logMessage, error) {
	cv, err := s.load(ctx, convID)
	if err != nil {
		return nil, nil, err
	}
	if !validID("m", msgID) {
		return nil, nil, errNoMessage
	}
	rows, err := s.SQL.Query(ctx, `SELECT e.seq, e.actor, a.upload_id, m.announced_sealed, `+msgCols+` FROM conversation_events e `+
		`JOIN messages m ON m.tenant_id = e.tenant_id AND m.id = e.ref `+
		`LEFT JOIN message_attachments a ON a.tenant_id = m.tenant_id AND a.message_id = m.id `+
		`WHERE e.tenant_id = ? AND e.conversation_id = ? AND e.type = 'message.created' AND e.ref = ?`, s.Tenant, convID, msgID)
	if err != nil {
		return nil, nil, err
	}
	if rows.Len() == 0 {
		return nil, nil, errNoMessage
	}
	var seq int64
	var upload any
	lm := &logMessage{}
	m, err := s.scanMessage(ctx, rows, 0, &seq, &lm.actor, &upload, &lm.announced)
	if err != nil {
		return nil, nil, err
	}
	if aud == AudienceVisitor && m.Private {
		return nil, nil, errNoMessage
	}
	lm.Message = viewAt(m, convID, seq)
	lm.upload, _ = upload.(string)
	return cv, lm, nil
}

// Attach stores r (size bytes, or -1 if unknown; at most MaxAttachment) as
// the attachment of message msgID of conversation convID, without a file
// name (the API's PUT without ?name=).
func (s *Store) Attach(ctx context.Context, blobs storage.Blobs, actor Actor, convID, msgID string, r io.Reader, size int64) (*Message, error) {
	return s.attach(ctx, blobs, actor, convID, msgID, r, size, attachOpts{})
}

// attachOpts are what differs between the team's uploads and a visitor's.
type attachOpts struct {
	// name is the sanitized file name (ParseFileName); "" for none. A
	// visitor's comes from their message's announcement instead.
	name string
	// visitor: the widget's upload: only on a message that announced a
	// file, its type must be on the allow-list (by content), at most
	// limit bytes.
	visitor bool
	limit   int64 // 0: MaxAttachment
}

// attach stores r as the attachment of message msgID of conversation
// convID. Only the message's sender may attach, once; a private note's
// attachment is as private as the note. The blob is written first and the
// row commits the attachment, in one batch with its event: a failure in
// between leaves only an unreferenced sealed blob, never a message whose
// attachment is missing. The type is sniffed from the bytes as they
// stream through the sealing (sniff.go), never taken from the name or a
// header.
func (s *Store) attach(ctx context.Context, blobs storage.Blobs, actor Actor, convID, msgID string, r io.Reader, size int64, o attachOpts) (*Message, error) {
	limit, tooLarge := int64(MaxAttachment), errAttachmentTooLarge
	if o.visitor {
		limit = o.limit
		if limit <= 0 || limit > MaxAttachment {
			limit = DefaultVisitorAttachment
		}
		tooLarge = errVisitorTooLarge(limit)
	}
	cv, lm, err := s.logMessage(ctx, convID, msgID, AudienceTeam)
	if err != nil {
		return nil, err
	}
	switch {
	case cv.Status == StatusMerged:
		return nil, errMerged(cv.MergedInto)
	case lm.actor != actor.String():
		return nil, fail(http.StatusForbidden, "not_message_sender", "", "only the sender of a message may attach a file to it")
	case lm.upload != "":
		return nil, errAttached
	case o.visitor && lm.announced == nil:
		return nil, fail(http.StatusConflict, "attachment_not_announced", "",
			"this message announced no file; send a message with {\"attachment\": {\"name\", \"size\"}} first")
	case size > limit:
		return nil, tooLarge
	}
	if o.visitor {
		b, err := s.Keys.Open(ctx, s.Tenant, kindAnnounced, msgID, lm.announced)
		if err != nil {
			return nil, err
		}
		var a Announcement
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, err
		}
		o.name = a.Name
	}
	upload := newID("up")
	key := attachmentBlobKey(s.Tenant, msgID, upload)
	// One byte past the limit is read, to tell a body at the limit from
	// one over it.
	sn := newSniffer(io.LimitReader(r, limit+1))
	body := &countingReader{r: sn}
	sealed, err := s.Keys.SealReader(ctx, s.Tenant, kindAttachment, attachmentAD(msgID, upload), body)
	if err != nil {
		return nil, err
	}
	sealedSize := int64(-1)
	if size >= 0 {
		sealedSize = envelope.SealedSize(size)
	}
	if _, err := blobs.Put(ctx, key, sealed, sealedSize, storage.BlobPutOptions{ContentType: "application/octet-stream"}); err != nil {
		return nil, err
	}
	if body.n > limit {
		blobs.Delete(ctx, key)
		return nil, tooLarge
	}
	ctype := sn.Type()
	if ctype == "" {
		if o.visitor {
			blobs.Delete(ctx, key)
			return nil, errUnsupportedType
		}
		ctype = "application/octet-stream"
	}
	var name any
	if o.name != "" {
		if name, err = s.Keys.Seal(ctx, s.Tenant, kindAttachmentName, msgID, []byte(o.name)); err != nil {
			blobs.Delete(ctx, key)
			return nil, err
		}
	}
	err = retry(func() error {
		cv, err := s.load(ctx, convID)
		if err != nil {
			return err
		}
		if cv.Status == StatusMerged {
			return errMerged(cv.MergedInto)
		}
		now := s.now()
		err = s.apply(ctx, cv, actor, now, change{
			before: []storage.Stmt{{Query: `INSERT INTO message_attachments (tenant_id, message_id, upload_id, size, created_at, name_sealed, content_type) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				Args: []any{s.Tenant, msgID, upload, body.n, now, name, ctype}}},
			events: []event{{Type: EvAttachmentAdded, Ref: msgID, Private: lm.Private, Data: map[string]any{"message_id": msgID, "size": body.n, "seq": lm.Seq}}},
		})
		if errors.Is(err, storage.ErrConflict) {
			// The seq race (try again), or another upload of the same
			// message won: its row is there.
			if _, other, lerr := s.logMessage(ctx, convID, msgID, AudienceTeam); lerr == nil && other.upload != "" {
				return errAttached
			}
		}
		return err
	})
	if err != nil {
		// An API error (conflict, merged, busy) means no batch committed:
		// the blob is nobody's. After a storage error the commit is
		// unknown, so the blob stays (sealed, and referenced only if the
		// row made it).
		var we *web.Error
		if errors.As(err, &we) {
			blobs.Delete(ctx, key)
		}
		return nil, err
	}
	lm.AttachmentSize = &body.n
	lm.AttachmentType = ctype
	if o.name != "" {
		lm.AttachmentName = &o.name
	}
	return lm.Message, nil
}

var (
	errAttached = fail(http.StatusConflict, "attachment_exists", "",
		"this message already has an attachment; attachments are written once (send another message for another file)")
	errAttachmentTooLarge = fail(http.StatusRequestEntityTooLarge, "too_large", "", "an attachment is at most %d bytes", MaxAttachment)
	errUnsupportedType    = fail(http.StatusUnsupportedMediaType, "unsupported_file_type", "",
		"this file's content is not an allowed type: PNG, JPEG, GIF, WebP, PDF or plain UTF-8 text (decided by content, not by name)")
)

func errVisitorTooLarge(limit int64) error {
	return fail(http.StatusRequestEntityTooLarge, "attachment_too_large", "", "a file is at most %d bytes (%s)", limit, humanBytes(limit))
}

// humanBytes writes n in KiB or MiB for a person reading the message.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// OpenAttachment returns the plaintext of message msgID's attachment in
// conversation convID, for aud, with its size. The caller closes it.
func (s *Store) OpenAttachment(ctx context.Context, blobs storage.Blobs, convID, msgID string, aud Audience) (io.ReadCloser, int64, error) {
	rc, m, err := s.openAttachment(ctx, blobs, convID, msgID, aud)
	if err != nil {
		return nil, 0, err
	}
	return rc, *m.AttachmentSize, nil
}

// openAttachment is OpenAttachment with the message (its attachment's
// size, name and type).
func (s *Store) openAttachment(ctx context.Context, blobs storage.Blobs, convID, msgID string, aud Audience) (io.ReadCloser, *Message, error) {
	_, lm, err := s.logMessage(ctx, convID, msgID, aud)
	if err != nil {
		return nil, nil, err
	}
	if lm.upload == "" || lm.AttachmentSize == nil {
		return nil, nil, fail(http.StatusNotFound, "not_found", "", "this message has no attachment")
	}
	rc, _, err := blobs.Get(ctx, attachmentBlobKey(s.Tenant, msgID, lm.upload))
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.Keys.OpenReader(ctx, s.Tenant, kindAttachment, attachmentAD(msgID, lm.upload), rc)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return readCloser{pt, rc}, lm.Message, nil
}

// serveAttachment writes an opened attachment: as a download, never
// rendered (attachment disposition, nosniff), with its sniffed type only
// when that type is on the allow-list.
func serveAttachment(w http.ResponseWriter, rc io.Reader, m *Message) {
	h := w.Header()
	name := ""
	if m.AttachmentName != nil {
		name = *m.AttachmentName
	}
	h.Set("Content-Type", servedType(m.AttachmentType))
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.FormatInt(*m.AttachmentSize, 10))
	// Once the first byte is sent a failure can only cut the stream short.
	_, err := io.Copy(w, rc)
	logEarlyEnd(m.ID, err)
}

type readCloser struct {
	io.Reader
	io.Closer
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// logEarlyEnd reports an attachment download cut short after its first
// byte: the client sees fewer bytes than Content-Length.
func logEarlyEnd(msg string, err error) {
	if err != nil {
		log.Printf("attachment of %s: stream ended early: %v", msg, err)
	}
}
