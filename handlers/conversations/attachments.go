package conversations

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"

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

const kindAttachment = "message.attachment"

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
	actor  string // the principal that sent it (its event's actor)
	upload string // the attachment's upload id; "" when it has none
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
	rows, err := s.SQL.Query(ctx, `SELECT e.seq, e.actor, a.upload_id, `+msgCols+` FROM conversation_events e `+
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
	m, err := s.scanMessage(ctx, rows, 0, &seq, &lm.actor, &upload)
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
// the attachment of message msgID of conversation convID. Only the message's
// sender may attach, once; a private note's attachment is as private as
// the note. The blob is written first and the row commits the attachment,
// in one batch with its event: a failure in between leaves only an
// unreferenced sealed blob, never a message whose attachment is missing.
func (s *Store) Attach(ctx context.Context, blobs storage.Blobs, actor Actor, convID, msgID string, r io.Reader, size int64) (*Message, error) {
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
	case size > MaxAttachment:
		return nil, errAttachmentTooLarge
	}
	upload := newID("up")
	key := attachmentBlobKey(s.Tenant, msgID, upload)
	// One byte past the limit is read, to tell a body at the limit from
	// one over it.
	body := &countingReader{r: io.LimitReader(r, MaxAttachment+1)}
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
	if body.n > MaxAttachment {
		blobs.Delete(ctx, key)
		return nil, errAttachmentTooLarge
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
			before: []storage.Stmt{{Query: `INSERT INTO message_attachments (tenant_id, message_id, upload_id, size, created_at) VALUES (?, ?, ?, ?, ?)`,
				Args: []any{s.Tenant, msgID, upload, body.n, now}}},
			events: []event{{Type: EvAttachmentAdded, Ref: msgID, Private: lm.Private, Data: map[string]any{"message_id": msgID, "size": body.n}}},
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
	return lm.Message, nil
}

var (
	errAttached = fail(http.StatusConflict, "attachment_exists", "",
		"this message already has an attachment; attachments are written once (send another message for another file)")
	errAttachmentTooLarge = fail(http.StatusRequestEntityTooLarge, "too_large", "", "an attachment is at most %d bytes", MaxAttachment)
)

// OpenAttachment returns the plaintext of message msgID's attachment in
// conversation convID, for aud, with its size. The caller closes it.
func (s *Store) OpenAttachment(ctx context.Context, blobs storage.Blobs, convID, msgID string, aud Audience) (io.ReadCloser, int64, error) {
	_, lm, err := s.logMessage(ctx, convID, msgID, aud)
	if err != nil {
		return nil, 0, err
	}
	if lm.upload == "" || lm.AttachmentSize == nil {
		return nil, 0, fail(http.StatusNotFound, "not_found", "", "this message has no attachment")
	}
	rc, _, err := blobs.Get(ctx, attachmentBlobKey(s.Tenant, msgID, lm.upload))
	if err != nil {
		return nil, 0, err
	}
	pt, err := s.Keys.OpenReader(ctx, s.Tenant, kindAttachment, attachmentAD(msgID, lm.upload), rc)
	if err != nil {
		rc.Close()
		return nil, 0, err
	}
	return readCloser{pt, rc}, *lm.AttachmentSize, nil
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
