// Package notes is the placeholder tenant resource: a note's title is
// sealed in its SQL row, its body and optional attachment are sealed blobs,
// and its non-secret metadata is cached in KV, so writing and reading one
// goes through every storage port. Conversations take its place (issue 7);
// until then the acceptance suite and the benchmarks use it.
//
// Its routes need nothing but the caller's scope: they are web.Handlers.
package notes

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

const (
	maxNoteBody  = 64 << 10
	maxNoteTitle = 200
	// MaxAttachment is the largest attachment, the largest body of any
	// route.
	MaxAttachment    = 32 << 20
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

func blobKey(s *web.Scope, id, part string) string {
	return "t/" + s.Tenant + "/notes/" + id + "/" + part
}

func cacheKey(s *web.Scope, id string) string { return "t/" + s.Tenant + "/notes/" + id }

func Create(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req noteRequest
	if err := web.DecodeJSON(w, r, noteRequestLimit, &req); err != nil {
		return err
	}
	if err := validateNote(req); err != nil {
		return err
	}
	ctx := r.Context()
	id := web.NewID("n")
	title, err := s.Keys.Seal(ctx, s.Tenant, "note.title", id, []byte(req.Title))
	if err != nil {
		return err
	}
	// The blob goes first and the row commits the note: a failure in between
	// leaves only an unreferenced sealed blob, never a row without its body.
	if err := putSealed(ctx, s, id, "body", strings.NewReader(req.Body), int64(len(req.Body))); err != nil {
		return err
	}
	now := s.P.Clock.Now().UnixMilli()
	if _, err := s.P.SQL.Exec(ctx, `INSERT INTO notes (tenant_id, id, title_sealed, body_size, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.Tenant, id, title, len(req.Body), now, now); err != nil {
		s.P.Blobs.Delete(ctx, blobKey(s, id, "body"))
		return err
	}
	cacheMeta(ctx, s, id, noteMeta{BodySize: int64(len(req.Body)), Version: 1})
	n := note{ID: id, Title: req.Title, Body: req.Body, BodySize: int64(len(req.Body)), Version: 1,
		CreatedAt: web.Millis(now), UpdatedAt: web.Millis(now)}
	w.Header().Set("Location", "/v1/notes/"+id)
	web.WriteJSON(w, http.StatusCreated, n)
	return nil
}

func validateNote(req noteRequest) error {
	switch {
	case strings.TrimSpace(req.Title) == "":
		return web.Errorf(http.StatusBadRequest, "invalid_title", "title is required")
	case utf8.RuneCountInString(req.Title) > maxNoteTitle:
		return web.Errorf(http.StatusBadRequest, "invalid_title", "title must be at most %d characters", maxNoteTitle)
	case len(req.Body) > maxNoteBody:
		return web.Errorf(http.StatusRequestEntityTooLarge, "too_large", "body must be at most %d bytes", maxNoteBody)
	}
	return nil
}

// cacheMeta is best effort: KV is a cache, the row is the truth.
func cacheMeta(ctx context.Context, s *web.Scope, id string, m noteMeta) {
	b, _ := json.Marshal(m)
	s.P.KV.Put(ctx, cacheKey(s, id), b, storage.KVPutOptions{TTL: noteCacheTTL})
}

// putSealed stores a sealed blob; the store sees only ciphertext, so its
// content type is always octet-stream.
func putSealed(ctx context.Context, s *web.Scope, id, part string, r io.Reader, size int64) error {
	sealed, err := s.Keys.SealReader(ctx, s.Tenant, "note."+part, id, r)
	if err != nil {
		return err
	}
	sealedSize := int64(-1)
	if size >= 0 {
		sealedSize = envelope.SealedSize(size)
	}
	_, err = s.P.Blobs.Put(ctx, blobKey(s, id, part), sealed, sealedSize, storage.BlobPutOptions{ContentType: "application/octet-stream"})
	return err
}

func loadNote(ctx context.Context, s *web.Scope, id string) (*note, error) {
	if !web.ValidID("n", id) {
		return nil, web.Errorf(http.StatusNotFound, "not_found", "no such note")
	}
	rows, err := s.P.SQL.Query(ctx, `SELECT title_sealed, body_size, attachment_size, version, created_at, updated_at FROM notes WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, web.Errorf(http.StatusNotFound, "not_found", "no such note")
	}
	var sealed []byte
	var created, updated int64
	n := &note{ID: id}
	if err := rows.Scan(0, &sealed, &n.BodySize, &n.AttachmentSize, &n.Version, &created, &updated); err != nil {
		return nil, err
	}
	title, err := s.Keys.Open(ctx, s.Tenant, "note.title", id, sealed)
	if err != nil {
		return nil, err
	}
	n.Title, n.CreatedAt, n.UpdatedAt = string(title), web.Millis(created), web.Millis(updated)
	return n, nil
}

func Get(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := loadNote(ctx, s, id)
	if err != nil {
		return err
	}
	_, kvErr := s.P.KV.Get(ctx, cacheKey(s, id))
	cached := kvErr == nil
	n.Cached = &cached
	if !cached {
		cacheMeta(ctx, s, id, noteMeta{BodySize: n.BodySize, Version: n.Version})
	}
	body, err := readSealed(ctx, s, id, "body")
	if err != nil {
		return err
	}
	n.Body = string(body)
	if err := s.Record(r, "note.read", "note:"+id, nil); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, n)
	return nil
}

func openSealed(ctx context.Context, s *web.Scope, id, part string) (io.Reader, io.Closer, error) {
	rc, _, err := s.P.Blobs.Get(ctx, blobKey(s, id, part))
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.Keys.OpenReader(ctx, s.Tenant, "note."+part, id, rc)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return pt, rc, nil
}

func readSealed(ctx context.Context, s *web.Scope, id, part string) ([]byte, error) {
	pt, c, err := openSealed(ctx, s, id, part)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return io.ReadAll(pt)
}

func List(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	// D1 carries integers as JavaScript numbers, so nothing beyond 2^53
	// may reach SQL; that bound is far past any millisecond timestamp.
	before := int64(web.MaxSafeInt)
	if c := r.URL.Query().Get("before"); c != "" {
		v, err := strconv.ParseInt(c, 10, 64)
		if err != nil || v <= 0 || v > web.MaxSafeInt {
			return web.Errorf(http.StatusBadRequest, "invalid_cursor", "before must be a positive integer cursor")
		}
		before = v
	}
	rows, err := s.P.SQL.Query(ctx, `SELECT id, title_sealed, body_size, version, created_at, updated_at FROM notes WHERE tenant_id = ? AND created_at < ? ORDER BY created_at DESC, id LIMIT ?`,
		s.Tenant, before, notesPageSize)
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
		title, err := s.Keys.Open(ctx, s.Tenant, "note.title", n.ID, sealed)
		if err != nil {
			return err
		}
		n.Title, n.CreatedAt, n.UpdatedAt = string(title), web.Millis(created), web.Millis(updated)
		last = created
	}
	if err := s.Record(r, "notes.listed", "notes", map[string]string{"count": strconv.Itoa(len(out))}); err != nil {
		return err
	}
	resp := map[string]any{"notes": out}
	if len(out) == notesPageSize {
		resp["next"] = strconv.FormatInt(last, 10)
	}
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func Delete(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !web.ValidID("n", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such note")
	}
	res, err := s.P.SQL.Exec(ctx, `DELETE FROM notes WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such note")
	}
	// The row is gone, so the note is gone; leftover blobs are sealed and
	// unreferenced, and a failure here is not the client's problem.
	for _, part := range []string{"body", "attachment"} {
		s.P.Blobs.Delete(ctx, blobKey(s, id, part))
	}
	s.P.KV.Delete(ctx, cacheKey(s, id))
	if err := s.Record(r, "note.deleted", "note:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PutAttachment streams the request body, sealed chunk by chunk, into the
// blob store; memory use does not grow with the attachment's size.
func PutAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := loadNote(ctx, s, id)
	if err != nil {
		return err
	}
	if r.ContentLength > MaxAttachment {
		return web.Errorf(http.StatusRequestEntityTooLarge, "too_large", "attachment must be at most %d bytes", MaxAttachment)
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, MaxAttachment)}
	if err := putSealed(ctx, s, id, "attachment", body, r.ContentLength); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return web.Classify(mbe)
		}
		return err
	}
	now := s.P.Clock.Now().UnixMilli()
	res, err := s.P.SQL.Exec(ctx, `UPDATE notes SET attachment_size = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
		body.n, now, s.Tenant, id, n.Version)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusConflict, "conflict", "the note changed while the attachment was uploading; retry")
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "attachment_size": body.n, "version": n.Version + 1})
	return nil
}

func GetAttachment(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	n, err := loadNote(ctx, s, id)
	if err != nil {
		return err
	}
	if n.AttachmentSize == nil {
		return web.Errorf(http.StatusNotFound, "not_found", "this note has no attachment")
	}
	pt, c, err := openSealed(ctx, s, id, "attachment")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := s.Record(r, "note.attachment.read", "note:"+id, nil); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(*n.AttachmentSize, 10))
	// Once the first byte is sent a failure can only cut the stream short;
	// the client sees fewer bytes than Content-Length.
	_, err = io.Copy(w, pt)
	if err != nil {
		log.Printf("attachment %s: stream ended early: %v", id, err)
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

// PurgeTenantStmts delete a tenant's notes, for the tenant's deletion (the
// blobs stay behind, unreadable once the tenant's data key is gone).
func PurgeTenantStmts(tenant string) []storage.Stmt {
	return []storage.Stmt{{Query: `DELETE FROM notes WHERE tenant_id = ?`, Args: []any{tenant}}}
}
