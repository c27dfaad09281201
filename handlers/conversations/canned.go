package conversations

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"pommy.ai/edge/storage"
)

// Canned responses: a tenant's saved replies, each a short code people
// type (e.g. "refund-policy") and a sealed text.

// Canned is a canned response as the API shows it.
type Canned struct {
	ID        string `json:"id"`
	Code      string `json:"code"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// CannedInput creates or changes a canned response; on update an absent
// field is kept.
type CannedInput struct {
	Code *string `json:"code"`
	Text *string `json:"text"`
}

const kindCanned = "canned.text"

// MaxCanned bounds a tenant's canned responses (each list is one page).
const MaxCanned = 500

func checkCode(c string) (string, error) {
	c = strings.ToLower(strings.TrimSpace(c))
	if len(c) > MaxCannedCode || !validLabel(c) {
		return "", fail(http.StatusBadRequest, "invalid_code", "code", "a code is 1 to %d characters of a-z, 0-9, '_', '-', ':' or '.'", MaxCannedCode)
	}
	return c, nil
}

var (
	errNoCanned   = fail(http.StatusNotFound, "not_found", "", "no such canned response")
	errCodeTaken  = fail(http.StatusConflict, "code_taken", "code", "another canned response has this code")
	errCannedFull = fail(http.StatusUnprocessableEntity, "too_many_canned_responses", "", "an organization has at most %d canned responses", MaxCanned)
)

// CreateCanned stores a canned response. The count bound is part of the
// insert, so concurrent creates cannot pass it.
func (s *Store) CreateCanned(ctx context.Context, in CannedInput) (*Canned, error) {
	if in.Code == nil || in.Text == nil {
		return nil, fail(http.StatusBadRequest, "invalid_canned_response", "", "code and text are required")
	}
	code, err := checkCode(*in.Code)
	if err != nil {
		return nil, err
	}
	if err := checkText(*in.Text, ""); err != nil {
		return nil, err
	}
	id := newID("cr")
	sealed, err := s.Keys.Seal(ctx, s.Tenant, kindCanned, id, []byte(*in.Text))
	if err != nil {
		return nil, err
	}
	now := s.now()
	res, err := s.SQL.Exec(ctx, `INSERT INTO canned_responses (tenant_id, id, code, text_sealed, created_at, updated_at) SELECT ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM canned_responses WHERE tenant_id = ?) < ?`,
		s.Tenant, id, code, sealed, now, now, s.Tenant, MaxCanned)
	if errors.Is(err, storage.ErrConflict) {
		return nil, errCodeTaken
	}
	if err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return nil, errCannedFull
	}
	return &Canned{ID: id, Code: code, Text: *in.Text, CreatedAt: millis(now), UpdatedAt: millis(now)}, nil
}

const cannedCols = `id, code, text_sealed, created_at, updated_at`

func (s *Store) scanCanned(ctx context.Context, rows *storage.Rows, i int) (*Canned, error) {
	c := &Canned{}
	var sealed []byte
	var created, updated int64
	if err := rows.Scan(i, &c.ID, &c.Code, &sealed, &created, &updated); err != nil {
		return nil, err
	}
	t, err := s.Keys.Open(ctx, s.Tenant, kindCanned, c.ID, sealed)
	if err != nil {
		return nil, err
	}
	c.Text, c.CreatedAt, c.UpdatedAt = string(t), millis(created), millis(updated)
	return c, nil
}

// CannedResponses lists all of them, by code (at most MaxCanned: one page).
func (s *Store) CannedResponses(ctx context.Context) ([]*Canned, error) {
	rows, err := s.SQL.Query(ctx, `SELECT `+cannedCols+` FROM canned_responses WHERE tenant_id = ? ORDER BY code LIMIT ?`, s.Tenant, MaxCanned)
	if err != nil {
		return nil, err
	}
	out := make([]*Canned, rows.Len())
	for i := range out {
		if out[i], err = s.scanCanned(ctx, rows, i); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CannedResponse reads one.
func (s *Store) CannedResponse(ctx context.Context, id string) (*Canned, error) {
	if !validID("cr", id) {
		return nil, errNoCanned
	}
	rows, err := s.SQL.Query(ctx, `SELECT `+cannedCols+` FROM canned_responses WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, errNoCanned
	}
	return s.scanCanned(ctx, rows, 0)
}

// UpdateCanned changes the code, the text or both.
func (s *Store) UpdateCanned(ctx context.Context, id string, in CannedInput) (*Canned, error) {
	c, err := s.CannedResponse(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Code != nil {
		if c.Code, err = checkCode(*in.Code); err != nil {
			return nil, err
		}
	}
	if in.Text != nil {
		if err := checkText(*in.Text, ""); err != nil {
			return nil, err
		}
		c.Text = *in.Text
	}
	sealed, err := s.Keys.Seal(ctx, s.Tenant, kindCanned, id, []byte(c.Text))
	if err != nil {
		return nil, err
	}
	now := s.now()
	res, err := s.SQL.Exec(ctx, `UPDATE canned_responses SET code = ?, text_sealed = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		c.Code, sealed, now, s.Tenant, id)
	if errors.Is(err, storage.ErrConflict) {
		return nil, errCodeTaken
	}
	if err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return nil, errNoCanned
	}
	c.UpdatedAt = millis(now)
	return c, nil
}

// DeleteCanned removes one.
func (s *Store) DeleteCanned(ctx context.Context, id string) error {
	if !validID("cr", id) {
		return errNoCanned
	}
	res, err := s.SQL.Exec(ctx, `DELETE FROM canned_responses WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return errNoCanned
	}
	return nil
}
