package conversations

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// Contacts: a tenant's visitors and customers. Everything personal (name,
// email, phone, custom attributes) is one sealed JSON document; the email
// is findable through a keyed blind index.

// Contact is a contact as the API shows it.
type Contact struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Email      string          `json:"email,omitempty"`
	Phone      string          `json:"phone,omitempty"`
	Attributes json.RawMessage `json:"attributes"`
	Version    int64           `json:"version"`
	CreatedAt  string          `json:"created_at"`
	UpdatedAt  string          `json:"updated_at"`
}

// pii is the sealed document (kind "contact.pii", id = contact id).
type pii struct {
	Name       string          `json:"name"`
	Email      string          `json:"email,omitempty"`
	Phone      string          `json:"phone,omitempty"`
	Attributes json.RawMessage `json:"attributes"`
}

const kindContact = "contact.pii"

// ContactInput creates a contact or changes one: on update an absent field
// is kept, and attributes replace the whole object.
type ContactInput struct {
	Name       *string         `json:"name"`
	Email      *string         `json:"email"`
	Phone      *string         `json:"phone"`
	Attributes json.RawMessage `json:"attributes"`
}

// apply validates in over p.
func (in ContactInput) apply(p *pii) error {
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if utf8.RuneCountInString(n) > MaxName {
			return fail(http.StatusUnprocessableEntity, "name_too_long", "name", "a name is at most %d characters", MaxName)
		}
		p.Name = n
	}
	if in.Email != nil {
		if *in.Email == "" {
			p.Email = ""
		} else {
			e, err := NormalizeEmail(*in.Email)
			if err != nil {
				return err
			}
			p.Email = e
		}
	}
	if in.Phone != nil {
		ph := strings.TrimSpace(*in.Phone)
		if len(ph) > MaxPhone || strings.ContainsFunc(ph, func(r rune) bool {
			return !(r >= '0' && r <= '9' || strings.ContainsRune("+-(). ", r))
		}) {
			return fail(http.StatusBadRequest, "invalid_phone", "phone", "a phone number is at most %d characters of digits, spaces and + - ( ) .", MaxPhone)
		}
		p.Phone = ph
	}
	if in.Attributes != nil {
		a, err := ParseAttributes(in.Attributes)
		if err != nil {
			return err
		}
		p.Attributes = a
	}
	if p.Attributes == nil {
		p.Attributes = json.RawMessage("{}")
	}
	return nil
}

// emailIndex is the blind index of a normalized email: HMAC-SHA256 under a
// key the custodian derives for this tenant alone, so equal emails in two
// tenants do not match and the index says nothing without the master key.
func (s *Store) emailIndex(ctx context.Context, email string) (any, error) {
	if email == "" {
		return nil, nil
	}
	return s.MAC.MAC(ctx, "contact-email/"+s.Tenant, []byte(email))
}

var errEmailTaken = fail(http.StatusConflict, "email_taken", "email", "another contact of this organization has this email")

// CreateContact stores a new contact.
func (s *Store) CreateContact(ctx context.Context, in ContactInput) (*Contact, error) {
	var p pii
	if err := in.apply(&p); err != nil {
		return nil, err
	}
	id := newID("ct")
	sealed, idx, err := s.sealContact(ctx, id, p)
	if err != nil {
		return nil, err
	}
	now := s.now()
	_, err = s.SQL.Exec(ctx, `INSERT INTO contacts (tenant_id, id, pii_sealed, email_index, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		s.Tenant, id, sealed, idx, now, now)
	if errors.Is(err, storage.ErrConflict) {
		return nil, errEmailTaken
	}
	if err != nil {
		return nil, err
	}
	return contactOf(id, p, 1, now, now), nil
}

func (s *Store) sealContact(ctx context.Context, id string, p pii) ([]byte, any, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := s.Keys.Seal(ctx, s.Tenant, kindContact, id, b)
	if err != nil {
		return nil, nil, err
	}
	idx, err := s.emailIndex(ctx, p.Email)
	return sealed, idx, err
}

func contactOf(id string, p pii, version, created, updated int64) *Contact {
	return &Contact{ID: id, Name: p.Name, Email: p.Email, Phone: p.Phone, Attributes: p.Attributes,
		Version: version, CreatedAt: millis(created), UpdatedAt: millis(updated)}
}

var errNoContact = fail(http.StatusNotFound, "not_found", "", "no such contact")

const contactCols = `id, pii_sealed, version, created_at, updated_at`

func (s *Store) scanContact(ctx context.Context, rows *storage.Rows, i int) (*Contact, pii, int64, error) {
	var id string
	var sealed []byte
	var version, created, updated int64
	var p pii
	if err := rows.Scan(i, &id, &sealed, &version, &created, &updated); err != nil {
		return nil, p, 0, err
	}
	b, err := s.Keys.Open(ctx, s.Tenant, kindContact, id, sealed)
	if err != nil {
		return nil, p, 0, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, p, 0, err
	}
	return contactOf(id, p, version, created, updated), p, created, nil
}

// Contact reads one contact.
func (s *Store) Contact(ctx context.Context, id string) (*Contact, error) {
	c, _, err := s.contact(ctx, id)
	return c, err
}

func (s *Store) contact(ctx context.Context, id string) (*Contact, pii, error) {
	if !validID("ct", id) {
		return nil, pii{}, errNoContact
	}
	rows, err := s.SQL.Query(ctx, `SELECT `+contactCols+` FROM contacts WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return nil, pii{}, err
	}
	if rows.Len() == 0 {
		return nil, pii{}, errNoContact
	}
	c, p, _, err := s.scanContact(ctx, rows, 0)
	return c, p, err
}

// ContactByEmail finds the contact with email through the blind index.
func (s *Store) ContactByEmail(ctx context.Context, email string) (*Contact, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	idx, err := s.emailIndex(ctx, e)
	if err != nil {
		return nil, err
	}
	rows, err := s.SQL.Query(ctx, `SELECT `+contactCols+` FROM contacts WHERE tenant_id = ? AND email_index = ?`, s.Tenant, idx)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, errNoContact
	}
	c, _, _, err := s.scanContact(ctx, rows, 0)
	return c, err
}

// PageSize is the size of every list page.
const PageSize = 50

// Contacts lists contacts, newest first, from after a cursor.
func (s *Store) Contacts(ctx context.Context, cursor string, limit int) ([]*Contact, string, error) {
	q := `SELECT ` + contactCols + ` FROM contacts WHERE tenant_id = ?`
	args := []any{s.Tenant}
	if cursor != "" {
		c, err := parseKeyCursor(cursor, "ct")
		if err != nil {
			return nil, "", err
		}
		q += ` AND (created_at < ? OR created_at = ? AND id < ?)`
		args = append(args, c.At, c.At, c.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	rows, err := s.SQL.Query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, "", err
	}
	out := make([]*Contact, rows.Len())
	var last keyCursor
	for i := range out {
		c, _, created, err := s.scanContact(ctx, rows, i)
		if err != nil {
			return nil, "", err
		}
		out[i] = c
		last = keyCursor{At: created, ID: c.ID}
	}
	next := ""
	if len(out) == limit {
		next = last.encode()
	}
	return out, next, nil
}

// UpdateContact changes a contact. The sealed document is rewritten whole,
// conditionally on the version read, so two concurrent updates cannot
// lose each other's fields: the loser re-reads and applies its change
// again.
func (s *Store) UpdateContact(ctx context.Context, id string, in ContactInput) (*Contact, error) {
	var out *Contact
	err := retry(func() error {
		c, p, err := s.contact(ctx, id)
		if err != nil {
			return err
		}
		if err := in.apply(&p); err != nil {
			return err
		}
		sealed, idx, err := s.sealContact(ctx, id, p)
		if err != nil {
			return err
		}
		now := s.now()
		res, err := s.SQL.Exec(ctx, `UPDATE contacts SET pii_sealed = ?, email_index = ?, version = version + 1, updated_at = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
			sealed, idx, now, s.Tenant, id, c.Version)
		if errors.Is(err, storage.ErrConflict) {
			return errEmailTaken
		}
		if err != nil {
			return err
		}
		if res.RowsAffected == 0 {
			return storage.ErrConflict // changed since read: again
		}
		created := c.CreatedAt
		out = contactOf(id, p, c.Version+1, 0, now)
		out.CreatedAt = created
		return nil
	})
	return out, err
}

// DeleteContact removes a contact that has no conversations (their
// history would otherwise lose its contact): 409 contact_has_conversations.
func (s *Store) DeleteContact(ctx context.Context, id string) error {
	if !validID("ct", id) {
		return errNoContact
	}
	res, err := s.SQL.Exec(ctx, `DELETE FROM contacts WHERE tenant_id = ? AND id = ? AND NOT EXISTS (SELECT 1 FROM conversations WHERE tenant_id = ? AND contact_id = ?)`,
		s.Tenant, id, s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 1 {
		return nil
	}
	if _, err := s.Contact(ctx, id); err != nil {
		return err
	}
	return fail(http.StatusConflict, "contact_has_conversations", "", "this contact has conversations; it cannot be deleted")
}

// contactExists is a tenant-scoped existence check.
func (s *Store) contactExists(ctx context.Context, id string) error {
	if !validID("ct", id) {
		return fail(http.StatusNotFound, "not_found", "contact_id", "no such contact")
	}
	rows, err := s.SQL.Query(ctx, `SELECT 1 FROM contacts WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return err
	}
	if rows.Len() == 0 {
		return fail(http.StatusNotFound, "not_found", "contact_id", "no such contact")
	}
	return nil
}
