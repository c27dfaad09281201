package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// Notes are the first tenant-scoped resource: a note's title is sealed in
// its SQL row, its body and optional attachment are sealed blobs, and its
// non-secret metadata is cached in KV. Writing and reading one goes through
// every storage port.

const (
	maxNoteBody      = 64 << 10
	maxNoteTitle     = 200
	maxAttachment    = 32 << 20
	noteCacheTTL     = 5 * time.Minute
	notesPageSize    = 50
	noteRequestLimit = maxNoteBody*6 + 4<<10 // JSON escaping may grow a body up to 6x
)

type noteRequest struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type note struct {
	ID             string `json:"id"`
	Title          string `json:"title"`
	Body           string `json:"body,omitempty"`
	BodySize       int64  `json:"body_size"`
	AttachmentSize *int64 `json:"attachment_size"`
	Version        int64  `json:"version"`
	CreatedAt      string `json:"created_at"`
	UpdatedAt      string `json:"updated_at"`
	Cached         *bool  `json:"cached,omitempty"`
}

// noteMeta is what the KV cache holds: nothing sealed, nothing secret.
type noteMeta struct {
	BodySize int64 `json:"body_size"`
	Version  int64 `json:"version"`
}

func (s *tenantScope) blobKey(id, part string) string {
	return "t/" + s.tenant + "/notes/" + id + "/" + part
}

func (s *tenantScope) cacheKey(id string) string { return "t/" + s.tenant + "/notes/" + id }

func (a *app) createNote(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	var req noteRequest
	if err := decodeJSON(w, r, noteRequestLimit, &req); err != nil {
		return err
	}
	if err := validateNote(req); err != nil {
		return err
	}
	ctx := r.Context()
	id := newID("n")
	title, err := s.keys.Seal(ctx, s.tenant, "note.title", id, []byte(req.Title))
	if err != nil {
		return err
	}
	// The blob goes first and the row commits the note: a failure in between
	// leaves only an unreferenced sealed blob, never a row without its body.
	if err := s.putSealed(ctx, id, "body", strings.NewReader(req.Body), int64(len(req.Body))); err != nil {
		return err
	}
	now := a.p.Clock.Now().UnixMilli()
	if _, err := a.p.SQL.Exec(ctx, `INSERT INTO notes (tenant_id, id, title_sealed, body_size, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.tenant, id, title, len(req.Body), now, now); err != nil {
		s.p.Blobs.Delete(ctx, s.blobKey(id, "body"))
		return err
	}
	a.cacheMeta(ctx, s, id, noteMeta{BodySize: int64(len(req.Body)), Version: 1})
	n := note{ID: id, Title: req.Title, Body: req.Body, BodySize: int64(len(req.Body)), Version: 1,
		CreatedAt: millis(now), UpdatedAt: millis(now)}
	w.Header().Set("Location", "/v1/notes/"+id)
	writeJSON(w, http.StatusCreated, n)
	return nil
}

func validateNote(req noteRequest) error {
	switch {
	case strings.TrimSpace(req.Title) == "":
		return errorf(http.StatusBadRequest, "invalid_title", "title is required")
	case utf8.RuneCountInString(req.Title) > maxNoteTitle:
		return errorf(http.StatusBadRequest, "invalid_title", "title must be at most %d characters", maxNoteTitle)
	case len(req.Body) > maxNoteBody:
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "body must be at most %d bytes", maxNoteBody)
	}
	return nil
}

// cacheMeta is best effort: KV is a cache, the row is the truth.
func (a *app) cacheMeta(ctx context.Context, s *tenantScope, id string, m noteMeta) {
	b, _ := json.Marshal(m)
	a.p.KV.Put(ctx, s.cacheKey(id), b, storage.KVPutOptions{TTL: noteCacheTTL})
}

// putSealed stores a sealed blob; the store sees only ciphertext, so its
// content type is always octet-stream.
func (s *tenantScope) putSealed(ctx context.Context, id, part string, r io.Reader, size int64) error {
	sealed, err := s.keys.SealReader(ctx, s.tenant, "note."+part, id, r)
	if err != nil {
		return err
	}
	sealedSize := int64(-1)
	if size >= 0 {
		sealedSize = envelope.SealedSize(size)
	}
	_, err = s.p.Blobs.Put(ctx, s.blobKey(id, part), sealed, sealedSize, storage.BlobPutOptions{ContentType: "application/octet-stream"})
	return err
}

func (s *tenantScope) loadNote(ctx context.Context, id string) (*note, error) {
	if !validID("n", id) {
		return nil, errorf(http.StatusNotFound, "not_found", "no such note")
	}
	rows, err := s.p.SQL.Query(ctx, `SELECT title_sealed, body_size, attachment_size, version, created_at, updated_at FROM notes WHERE tenant_id = ? AND id = ?`, s.tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, errorf(http.StatusNotFound, "not_found", "no such note")
	}
	var sealed []byte
	var created, updated int64
	n := &note{ID: id}
	if err := rows.Scan(0, &sealed, &n.BodySize, &n.AttachmentSize, &n.Version, &created, &updated); err != nil {
		return nil, err
	}
	title, err := s.keys.Open(ctx, s.tenant, "note.title", id, sealed)
	if err != nil {
		return nil, err
	}
	n.Title, n.CreatedAt, n.UpdatedAt = string(title), millis(created), millis(updated)
	return n, nil
}

func (a *app) getNote(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := s.loadNote(ctx, id)
	if err != nil {
		return err
	}
	_, kvErr := a.p.KV.Get(ctx, s.cacheKey(id))
	cached := kvErr == nil
	n.Cached = &cached
	if !cached {
		a.cacheMeta(ctx, s, id, noteMeta{BodySize: n.BodySize, Version: n.Version})
	}
	body, err := s.readSealed(ctx, id, "body")
	if err != nil {
		return err
	}
	n.Body = string(body)
	if err := a.record(r, s, "note.read", "note:"+id, nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n)
	return nil
}

func (s *tenantScope) openSealed(ctx context.Context, id, part string) (io.Reader, io.Closer, error) {
	rc, _, err := s.p.Blobs.Get(ctx, s.blobKey(id, part))
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.keys.OpenReader(ctx, s.tenant, "note."+part, id, rc)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return pt, rc, nil
}

func (s *tenantScope) readSealed(ctx context.Context, id, part string) ([]byte, error) {
	pt, c, err := s.openSealed(ctx, id, part)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return io.ReadAll(pt)
}

func (a *app) listNotes(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	// D1 carries integers as JavaScript numbers, so nothing beyond 2^53
	// may reach SQL; that bound is far past any millisecond timestamp.
	before := int64(maxSafeInt)
	if c := r.URL.Query().Get("before"); c != "" {
		v, err := strconv.ParseInt(c, 10, 64)
		if err != nil || v <= 0 || v > maxSafeInt {
			return errorf(http.StatusBadRequest, "invalid_cursor", "before must be a positive integer cursor")
		}
		before = v
	}
	rows, err := s.p.SQL.Query(ctx, `SELECT id, title_sealed, body_size, version, created_at, updated_at FROM notes WHERE tenant_id = ? AND created_at < ? ORDER BY created_at DESC, id LIMIT ?`,
		s.tenant, before, notesPageSize)
	if err != nil {
		return err
	}
	out := make([]note, rows.Len())
	var last int64
	for i := range out {
		var sealed []byte
		var created, updated int64
		n := &out[i]
		if err := rows.Scan(i, &n.ID, &sealed, &n.BodySize, &n.Version, &created, &updated); err != nil {
			return err
		}
		title, err := s.keys.Open(ctx, s.tenant, "note.title", n.ID, sealed)
		if err != nil {
			return err
		}
		n.Title, n.CreatedAt, n.UpdatedAt = string(title), millis(created), millis(updated)
		last = created
	}
	if err := a.record(r, s, "notes.listed", "notes", map[string]string{"count": strconv.Itoa(len(out))}); err != nil {
		return err
	}
	resp := map[string]any{"notes": out}
	if len(out) == notesPageSize {
		resp["next"] = strconv.FormatInt(last, 10)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *app) deleteNote(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !validID("n", id) {
		return errorf(http.StatusNotFound, "not_found", "no such note")
	}
	res, err := s.p.SQL.Exec(ctx, `DELETE FROM notes WHERE tenant_id = ? AND id = ?`, s.tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return errorf(http.StatusNotFound, "not_found", "no such note")
	}
	// The row is gone, so the note is gone; leftover blobs are sealed and
	// unreferenced, and a failure here is not the client's problem.
	for _, part := range []string{"body", "attachment"} {
		s.p.Blobs.Delete(ctx, s.blobKey(id, part))
	}
	s.p.KV.Delete(ctx, s.cacheKey(id))
	if err := a.record(r, s, "note.deleted", "note:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putAttachment streams the request body, sealed chunk by chunk, into the
// blob store; memory use does not grow with the attachment's size.
func (a *app) putAttachment(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := s.loadNote(ctx, id)
	if err != nil {
		return err
	}
	if r.ContentLength > maxAttachment {
		return errorf(http.StatusRequestEntityTooLarge, "too_large", "attachment must be at most %d bytes", maxAttachment)
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, maxAttachment)}
	if err := s.putSealed(ctx, id, "attachment", body, r.ContentLength); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return classify(mbe)
		}
		return err
	}
	now := a.p.Clock.Now().UnixMilli()
	res, err := s.p.SQL.Exec(ctx, `UPDATE notes SET attachment_size = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
		body.n, now, s.tenant, id, n.Version)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return errorf(http.StatusConflict, "conflict", "the note changed while the attachment was uploading; retry")
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "attachment_size": body.n, "version": n.Version + 1})
	return nil
}

func (a *app) getAttachment(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := s.loadNote(ctx, id)
	if err != nil {
		return err
	}
	if n.AttachmentSize == nil {
		return errorf(http.StatusNotFound, "not_found", "this note has no attachment")
	}
	pt, c, err := s.openSealed(ctx, id, "attachment")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := a.record(r, s, "note.attachment.read", "note:"+id, nil); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(*n.AttachmentSize, 10))
	// Once the first byte is sent a failure can only cut the stream short;
	// the client sees fewer bytes than Content-Length.
	_, err = io.Copy(w, pt)
	if err != nil {
		a.logf("attachment %s: stream ended early: %v", id, err)
	}
	return nil
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

func millis(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// maxSafeInt is the largest integer every SQL home stores exactly (D1's
// numbers are IEEE doubles).
const maxSafeInt = 1<<53 - 1
