package conversations

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// Satisfaction ratings (CSAT): a visitor rates a resolved conversation 1
// to 5, with an optional comment, once per resolution. The rating row, the
// conversation's copy of it and the csat.submitted event are one batch,
// conditional on the conversation's seq like every change, and the
// (conversation, resolution) key refuses a second rating of the same
// resolution even from a racing request.

// EvCSATSubmitted is appended when the contact rates a resolution.
const EvCSATSubmitted = "csat.submitted"

// MaxCSATComment is the longest comment, in characters.
const MaxCSATComment = 1000

const kindCSATComment = "conversation.csat_comment"

// csatCommentID is the sealed comment's id: the conversation and the
// resolution it rates.
func csatCommentID(conv string, resolution int64) string {
	return conv + "/" + strconv.FormatInt(resolution, 10)
}

// CSAT is a rating as the team sees it (the conversation's csat field).
type CSAT struct {
	Rating  int64  `json:"rating"`
	Comment string `json:"comment"`
	At      string `json:"at"`
}

// csatOf is conversation c's newest rating with its comment opened.
func (s *Store) csatOf(ctx context.Context, c *convRow) (*CSAT, error) {
	if c.CSATSeq == nil || c.CSATRating == nil || c.CSATAt == nil {
		return nil, nil
	}
	out := &CSAT{Rating: *c.CSATRating, At: millis(*c.CSATAt)}
	if len(c.CSATComment) > 0 {
		b, err := s.Keys.Open(ctx, s.Tenant, kindCSATComment, csatCommentID(c.ID, *c.CSATSeq), c.CSATComment)
		if err != nil {
			return nil, err
		}
		out.Comment = string(b)
	}
	return out, nil
}

// CSATInput is the body of a rating.
type CSATInput struct {
	Rating  *int64  `json:"rating"`
	Comment *string `json:"comment"`
}

// ParseCSAT checks a rating: 1..5, and a comment of at most MaxCSATComment
// characters of valid UTF-8 (trimmed; empty is none).
func ParseCSAT(in CSATInput) (int64, string, error) {
	if in.Rating == nil || *in.Rating < 1 || *in.Rating > 5 {
		return 0, "", fail(http.StatusBadRequest, "invalid_rating", "rating", "rating is a whole number from 1 to 5")
	}
	comment := ""
	if in.Comment != nil {
		comment = strings.TrimSpace(*in.Comment)
		if !utf8.ValidString(comment) {
			return 0, "", fail(http.StatusBadRequest, "invalid_comment", "comment", "comment must be valid UTF-8 text")
		}
		if n := utf8.RuneCountInString(comment); n > MaxCSATComment {
			return 0, "", fail(http.StatusUnprocessableEntity, "comment_too_long", "comment", "a comment is at most %d characters; this one has %d", MaxCSATComment, n)
		}
	}
	return *in.Rating, comment, nil
}

var (
	errNotResolved = fail(http.StatusConflict, "not_resolved", "", "only a resolved conversation can be rated")
	errCSATGiven   = fail(http.StatusConflict, "csat_already_given", "", "this conversation was already rated since it was resolved")
)

// lastResolution is the seq of the status event that last resolved
// conversation convID, for a conversation resolved before resolved_seq was
// kept (migration 0012).
func (s *Store) lastResolution(ctx context.Context, convID string) (int64, error) {
	rows, err := s.SQL.Query(ctx, `SELECT MAX(seq) FROM conversation_events WHERE tenant_id = ? AND conversation_id = ? AND type = ? AND json_extract(data, '$.to') = 'resolved'`,
		s.Tenant, convID, EvStatusChanged)
	if err != nil {
		return 0, err
	}
	var seq int64
	if rows.Len() == 1 {
		err = rows.Scan(0, &seq)
	}
	return seq, err
}

// SubmitCSAT records the visitor's rating of their resolved conversation.
func (s *Store) SubmitCSAT(ctx context.Context, actor Actor, convID string, rating int64, comment string) (*CSAT, error) {
	var out *CSAT
	err := retry(func() error {
		cv, err := s.visitorConv(ctx, actor.ID, convID)
		if err != nil {
			return err
		}
		if cv.Status != StatusResolved {
			return errNotResolved
		}
		res := cv.ResolvedSeq
		if res == 0 {
			if res, err = s.lastResolution(ctx, convID); err != nil {
				return err
			}
		}
		if cv.CSATSeq != nil && *cv.CSATSeq == res {
			return errCSATGiven
		}
		var sealed any
		if comment != "" {
			if sealed, err = s.Keys.Seal(ctx, s.Tenant, kindCSATComment, csatCommentID(convID, res), []byte(comment)); err != nil {
				return err
			}
		}
		now := s.now()
		err = s.apply(ctx, cv, actor, now, change{
			set:  "csat_rating = ?, csat_seq = ?, csat_at = ?, csat_comment_sealed = ?, resolved_seq = ?",
			args: []any{rating, res, now, sealed, res},
			before: []storage.Stmt{{Query: `INSERT INTO conversation_csat (tenant_id, conversation_id, resolution_seq, contact_id, rating, comment_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				Args: []any{s.Tenant, convID, res, cv.ContactID, rating, sealed, now}}},
			// The comment is content: it stays sealed in the row, and the
			// event carries only the rating (the team reads the comment on
			// the conversation).
			events: []event{{Type: EvCSATSubmitted, Data: map[string]any{"rating": rating, "resolution_seq": res}, Inbox: true}},
		})
		if errors.Is(err, storage.ErrConflict) {
			rows, qerr := s.SQL.Query(ctx, `SELECT 1 FROM conversation_csat WHERE tenant_id = ? AND conversation_id = ? AND resolution_seq = ?`, s.Tenant, convID, res)
			if qerr == nil && rows.Len() > 0 {
				return errCSATGiven
			}
		}
		if err != nil {
			return err
		}
		out = &CSAT{Rating: rating, Comment: comment, At: millis(now)}
		return nil
	})
	return out, err
}
