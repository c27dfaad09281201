package identity

import (
	"crypto/rand"
	"fmt"
	"hash/crc32"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"pommy.ai/edge/handlers/web"
)

// API keys look like pk_live_<22 base62: 128 random bits><6 base62: CRC32>.
// The checksum lets a malformed or mistyped key be refused before any
// storage lookup, and lets secret scanners recognise our keys.
const (
	apiKeyPrefix   = "pk_live_"
	apiKeyRandLen  = 22 // ceil(128 / log2(62))
	apiKeyCRCLen   = 6  // ceil(32 / log2(62))
	apiKeyLen      = len(apiKeyPrefix) + apiKeyRandLen + apiKeyCRCLen
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

func base62(n *big.Int, width int) string {
	b := make([]byte, width)
	base := big.NewInt(62)
	x := new(big.Int).Set(n)
	m := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		x.DivMod(x, base, m)
		b[i] = base62Alphabet[m.Int64()]
	}
	return string(b)
}

func newAPIKey() string {
	var raw [16]byte
	rand.Read(raw[:])
	body := apiKeyPrefix + base62(new(big.Int).SetBytes(raw[:]), apiKeyRandLen)
	return body + base62(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), apiKeyCRCLen)
}

// checkAPIKey validates a key's shape and checksum without touching storage.
func checkAPIKey(k string) error {
	if len(k) != apiKeyLen || !strings.HasPrefix(k, apiKeyPrefix) {
		return fmt.Errorf("not a Pommy API key")
	}
	for i := len(apiKeyPrefix); i < len(k); i++ {
		if strings.IndexByte(base62Alphabet, k[i]) < 0 {
			return fmt.Errorf("API key has a character outside base62")
		}
	}
	body := k[:len(k)-apiKeyCRCLen]
	if base62(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), apiKeyCRCLen) != k[len(body):] {
		return fmt.Errorf("API key checksum does not match (mistyped or truncated?)")
	}
	return nil
}

// --- API key routes --------------------------------------------------------

const (
	defaultKeyRateLimit = 600 // requests per minute
	maxKeyRateLimit     = 100_000
	keyRateWindow       = time.Minute
	maxKeyLifetime      = 2 * 366 * 24 * time.Hour
)

type createKeyRequest struct {
	Name               string   `json:"name"`
	Scopes             []string `json:"scopes"`
	ExpiresAt          *string  `json:"expires_at"` // RFC 3339; omitted = never
	RateLimitPerMinute *int64   `json:"rate_limit_per_minute"`
}

func (svc *Service) validScope(sc string) bool {
	res, rw, ok := strings.Cut(sc, ":")
	return ok && slices.Contains(svc.scopeResources, res) && (rw == "read" || rw == "write")
}

func (svc *Service) CreateAPIKey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req createKeyRequest
	if err := web.DecodeJSON(w, r, identityBodyLimit, &req); err != nil {
		return err
	}
	name, err := web.CheckName("name", req.Name, true, 100)
	if err != nil {
		return err
	}
	if len(req.Scopes) == 0 || len(req.Scopes) > 2*len(svc.scopeResources) {
		return web.Errorf(http.StatusBadRequest, "invalid_scopes", "scopes must list 1 to %d of resource:read|write, resources: %s", 2*len(svc.scopeResources), strings.Join(svc.scopeResources, ", "))
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if !svc.validScope(sc) {
			return web.Errorf(http.StatusBadRequest, "invalid_scopes", "unknown scope %q (resource:read or resource:write; resources: %s)", web.Truncate(sc, 40), strings.Join(svc.scopeResources, ", "))
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	slices.Sort(scopes)
	now := svc.now()
	var expires *int64
	var expiresArg any // nil or int64: the SQL port takes no pointers
	if req.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil || !t.After(now) || t.Sub(now) > maxKeyLifetime {
			return web.Errorf(http.StatusBadRequest, "invalid_expires_at", "expires_at must be an RFC 3339 time in the future, at most 2 years ahead")
		}
		ms := t.UnixMilli()
		expires, expiresArg = &ms, ms
	}
	limit := int64(defaultKeyRateLimit)
	if req.RateLimitPerMinute != nil {
		if *req.RateLimitPerMinute < 1 || *req.RateLimitPerMinute > maxKeyRateLimit {
			return web.Errorf(http.StatusBadRequest, "invalid_rate_limit", "rate_limit_per_minute must be 1 to %d", maxKeyRateLimit)
		}
		limit = *req.RateLimitPerMinute
	}
	ctx := r.Context()
	id, key := web.NewID("key"), newAPIKey()
	hash, err := svc.p.Keys.MAC(ctx, "api-key", []byte(key))
	if err != nil {
		return err
	}
	prefix := key[:len(apiKeyPrefix)+4]
	if _, err := svc.p.SQL.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, hash, prefix, created_at, name, scopes, expires_at, created_by, rate_limit_per_minute) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, s.Tenant, hash, prefix, now.UnixMilli(), name, strings.Join(scopes, " "), expiresArg, s.UserID, limit); err != nil {
		return err
	}
	if err := s.Record(r, "api_key.created", "api_key:"+id, map[string]string{"name": name, "scopes": strings.Join(scopes, " ")}); err != nil {
		return err
	}
	out := map[string]any{"id": id, "name": name, "prefix": prefix, "scopes": scopes, "rate_limit_per_minute": limit,
		"created_at": web.Millis(now.UnixMilli()), "expires_at": nil, "key": key} // the key is shown once; only its MAC is stored
	if expires != nil {
		out["expires_at"] = web.Millis(*expires)
	}
	web.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (svc *Service) ListAPIKeys(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := svc.p.SQL.Query(r.Context(), `SELECT id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at, rate_limit_per_minute, created_by
		FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC LIMIT 500`, s.Tenant)
	if err != nil {
		return err
	}
	opt := func(p *int64) any {
		if p == nil {
			return nil
		}
		return web.Millis(*p)
	}
	out := make([]map[string]any, rows.Len())
	for i := range out {
		var id, name, prefix, scopes, by string
		var created, limit int64
		var expires, used, revoked *int64
		if err := rows.Scan(i, &id, &name, &prefix, &scopes, &created, &expires, &used, &revoked, &limit, &by); err != nil {
			return err
		}
		out[i] = map[string]any{"id": id, "name": name, "prefix": prefix, "scopes": strings.Fields(scopes), "created_at": web.Millis(created),
			"expires_at": opt(expires), "last_used_at": opt(used), "revoked_at": opt(revoked), "rate_limit_per_minute": limit, "created_by": by}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"api_keys": out})
	return nil
}

func (svc *Service) RevokeAPIKey(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	id := r.PathValue("id")
	if !web.ValidID("key", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such API key")
	}
	res, err := svc.p.SQL.Exec(r.Context(), `UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL`,
		svc.now().UnixMilli(), s.Tenant, id)
	if err != nil {
		return err
	}
	if res.RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such active API key")
	}
	if err := s.Record(r, "api_key.revoked", "api_key:"+id, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// KeyRateLimit counts the request in the key's fixed one-minute window,
// exactly (one upsert, in SQL), and refuses it with 429 past the key's limit.
func (svc *Service) KeyRateLimit(r *http.Request, s *web.Scope) error {
	now := svc.now().UnixMilli()
	win := now - now%keyRateWindow.Milliseconds()
	rows, err := svc.p.SQL.Query(r.Context(), `INSERT INTO rate_windows (tenant_id, bucket, window_start, count) VALUES (?, ?, ?, 1)
		ON CONFLICT (tenant_id, bucket) DO UPDATE SET count = CASE WHEN window_start = excluded.window_start THEN count + 1 ELSE 1 END, window_start = excluded.window_start
		RETURNING count`, s.Tenant, "key:"+s.KeyID, win)
	if err != nil {
		return err
	}
	var n int64
	if rows.Len() != 1 {
		return web.Errorf(http.StatusInternalServerError, "internal", "rate counter did not answer")
	}
	if err := rows.Scan(0, &n); err != nil {
		return err
	}
	if n > s.KeyLimit {
		e := web.Errorf(http.StatusTooManyRequests, "rate_limited", "this API key is limited to %d requests a minute", s.KeyLimit)
		e.RetryAfter = web.RetrySeconds(time.Duration(win+keyRateWindow.Milliseconds()-now) * time.Millisecond)
		return e
	}
	return nil
}

// MarkKeyUsed keeps last_used_at to within a minute (a conditional write at
// most once a minute per key) and audits the key's first use exactly once.
func (svc *Service) MarkKeyUsed(r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	now := svc.now().UnixMilli()
	if !s.KeyFirstUsed {
		res, err := svc.p.SQL.Exec(ctx, `UPDATE api_keys SET first_used_at = ?, last_used_at = ? WHERE tenant_id = ? AND id = ? AND first_used_at IS NULL`,
			now, now, s.Tenant, s.KeyID)
		if err != nil {
			return err
		}
		if res.RowsAffected == 1 {
			return s.Record(r, "api_key.used_first", "api_key:"+s.KeyID, nil)
		}
		return nil
	}
	_, err := svc.p.SQL.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE tenant_id = ? AND id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
		now, s.Tenant, s.KeyID, now-time.Minute.Milliseconds())
	return err
}
