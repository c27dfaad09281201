package handlers

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// tenantScope is the only way handlers reach a tenant's data. It can be made
// only by authenticate, from a verified credential, so the tenant is never
// taken from a client-chosen id.
type tenantScope struct {
	p      storage.Platform
	tenant string
	keyID  string
	keys   *envelope.Keyring
}

type createTenantRequest struct {
	Name string `json:"name"`
}

func (a *app) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req createTenantRequest
	if err := decodeJSON(w, r, 4<<10, &req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name) {
		return errorf(http.StatusBadRequest, "invalid_name", "name must be 1 to 100 characters")
	}
	ctx := r.Context()
	tenant, keyID, key := newID("t"), newID("key"), newAPIKey()
	hash, err := a.p.Keys.MAC(ctx, "api-key", []byte(key))
	if err != nil {
		return err
	}
	now := a.p.Clock.Now().UnixMilli()
	if _, err := a.p.SQL.Batch(ctx, []storage.Stmt{
		{Query: `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, Args: []any{tenant, name, now}},
		{Query: `INSERT INTO api_keys (id, tenant_id, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`,
			Args: []any{keyID, tenant, hash, key[:len(apiKeyPrefix)+4], now}},
	}); err != nil {
		return err
	}
	if err := envelope.New(a.p).Ensure(ctx, tenant); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"tenant":  map[string]any{"id": tenant, "name": name},
		"api_key": key, // shown once; only its MAC is stored
	})
	return nil
}

// authenticate resolves the bearer API key to its tenant.
func (a *app) authenticate(r *http.Request) (*tenantScope, error) {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" {
		return nil, &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "send Authorization: Bearer <API key>"}
	}
	if err := checkAPIKey(key); err != nil {
		return nil, errorf(http.StatusUnauthorized, "invalid_api_key", "%v", err)
	}
	ctx := r.Context()
	hash, err := a.p.Keys.MAC(ctx, "api-key", []byte(key))
	if err != nil {
		return nil, err
	}
	// tenant-lookup: this query resolves the principal, so it cannot be scoped yet.
	rows, err := a.p.SQL.Query(ctx, `SELECT id, tenant_id FROM api_keys WHERE hash = ? AND revoked_at IS NULL`, hash)
	if err != nil {
		return nil, err
	}
	if rows.Len() != 1 {
		return nil, errorf(http.StatusUnauthorized, "invalid_api_key", "API key is unknown or revoked")
	}
	s := &tenantScope{p: a.p, keys: envelope.New(a.p)}
	if err := rows.Scan(0, &s.keyID, &s.tenant); err != nil {
		return nil, err
	}
	return s, nil
}

// deleteTenant removes the tenant's rows and destroys its data key first, so
// that whatever a failure leaves behind (blobs, backups) is unreadable.
func (a *app) deleteTenant(w http.ResponseWriter, r *http.Request, s *tenantScope) error {
	ctx := r.Context()
	if err := s.keys.Shred(ctx, s.tenant); err != nil {
		return err
	}
	if _, err := a.p.SQL.Batch(ctx, []storage.Stmt{
		{Query: `DELETE FROM notes WHERE tenant_id = ?`, Args: []any{s.tenant}},
		{Query: `DELETE FROM api_keys WHERE tenant_id = ?`, Args: []any{s.tenant}},
		{Query: `DELETE FROM tenants WHERE id = ?`, Args: []any{s.tenant}},
	}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
