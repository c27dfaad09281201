package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Limits of the API.
const (
	MaxSubscriptions = 20
	maxDescription   = 200
	maxBody          = 8 << 10
	deliveriesPage   = 50
	// RotationOverlap is how long the previous secret keeps signing
	// deliveries after a rotation.
	RotationOverlap = 24 * time.Hour
)

// Routes serves the webhook API. URLs is the endpoint policy (the root
// package sets TestAllow in test builds only).
type Routes struct {
	URLs URLPolicy
}

// Subscription is a webhook as the API shows it. Secret is set only in the
// answers to create and rotate.
type Subscription struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	Description    string   `json:"description"`
	Enabled        bool     `json:"enabled"`
	DisabledReason string   `json:"disabled_reason,omitempty"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	Secret         string   `json:"secret,omitempty"`
	// PreviousSecretExpiresAt: after a rotation, deliveries carry the old
	// secret's signature too until then.
	PreviousSecretExpiresAt string `json:"previous_secret_expires_at,omitempty"`
}

type createRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

type updateRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

func (rt *Routes) checkURL(raw string) (string, error) {
	u, err := rt.URLs.CheckURL(raw)
	if err != nil {
		e := web.Errorf(http.StatusBadRequest, "invalid_url", "%v", err)
		e.Field = "url"
		return "", e
	}
	return u.String(), nil
}

func checkEvents(events []string) (string, error) {
	bad := func(format string, args ...any) error {
		e := web.Errorf(http.StatusBadRequest, "invalid_events", format, args...)
		e.Field = "events"
		return e
	}
	if len(events) == 0 {
		return "", bad("events must name at least one of: %s", strings.Join(EventTypes, ", "))
	}
	if len(events) > len(EventTypes) {
		return "", bad("events has %d entries; there are only %d event types", len(events), len(EventTypes))
	}
	seen := map[string]bool{}
	for i, ev := range events {
		if !ValidEventType(ev) {
			e := bad("unknown event type %q; known: %s", web.Truncate(ev, 64), strings.Join(EventTypes, ", "))
			e.(*web.Error).Field = "events[" + strconv.Itoa(i) + "]"
			return "", e
		}
		if seen[ev] {
			return "", bad("event type %q is listed twice", ev)
		}
		seen[ev] = true
	}
	return strings.Join(events, " "), nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxDescription || strings.ContainsFunc(d, func(r rune) bool { return r < ' ' }) {
		e := web.Errorf(http.StatusBadRequest, "invalid_description", "description must be at most %d characters, without control characters", maxDescription)
		e.Field = "description"
		return e
	}
	return nil
}

// record appends the audit event of a change in the same batch as the
// change itself.
func record(ctx context.Context, r *http.Request, s *web.Scope, action, id string, details map[string]string, stmts []storage.Stmt) ([]storage.Result, error) {
	ev := s.Event(r)
	ev.Action, ev.Target, ev.Details = action, "webhook:"+id, details
	return web.AuditLog(s.P).RecordBatch(ctx, ev, stmts)
}

// Create subscribes an endpoint: POST /v1/webhooks.
func (rt *Routes) Create(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req createRequest
	if err := web.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	url, err := rt.checkURL(req.URL)
	if err != nil {
		return err
	}
	events, err := checkEvents(req.Events)
	if err != nil {
		return err
	}
	if err := checkDescription(req.Description); err != nil {
		return err
	}
	ctx := r.Context()
	id := web.NewID("wh")
	secret := NewSecret()
	sealed, err := s.Keys.Seal(ctx, s.Tenant, secretKind, id, []byte(secret))
	if err != nil {
		return err
	}
	now := s.Now().UnixMilli()
	_, by := s.Actor()
	// The count bound is part of the insert: two racing creates cannot
	// both pass it.
	res, err := record(ctx, r, s, "webhook.created", id, map[string]string{"url": url, "events": events}, []storage.Stmt{{
		Query: `INSERT INTO webhooks (tenant_id, id, url, events, description, enabled, secret_sealed, created_by, created_at, updated_at)
			SELECT ?, ?, ?, ?, ?, 1, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM webhooks WHERE tenant_id = ?) < ?`,
		Args: []any{s.Tenant, id, url, events, req.Description, sealed, by, now, now, s.Tenant, MaxSubscriptions},
	}})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		// The audit event says what was tried; nothing else changed.
		return web.Errorf(http.StatusConflict, "too_many_webhooks", "a tenant may have at most %d webhook subscriptions", MaxSubscriptions)
	}
	w.Header().Set("Location", "/v1/webhooks/"+id)
	web.WriteJSON(w, http.StatusCreated, Subscription{ID: id, URL: url, Events: eventList(events), Description: req.Description,
		Enabled: true, CreatedAt: web.Millis(now), UpdatedAt: web.Millis(now), Secret: secret})
	return nil
}

// tenant-scoped: every use appends WHERE tenant_id = ?.
const selectSub = `SELECT id, url, events, description, enabled, disabled_reason, prev_until, created_at, updated_at FROM webhooks`

func scanSub(rows *storage.Rows, i int, now int64) (Subscription, error) {
	var sub Subscription
	var events string
	var reason any
	var prevUntil *int64
	var created, updated int64
	if err := rows.Scan(i, &sub.ID, &sub.URL, &events, &sub.Description, &sub.Enabled, &reason, &prevUntil, &created, &updated); err != nil {
		return sub, err
	}
	sub.Events = eventList(events)
	if s, ok := reason.(string); ok && !sub.Enabled {
		sub.DisabledReason = s
	}
	if prevUntil != nil && *prevUntil > now {
		sub.PreviousSecretExpiresAt = web.Millis(*prevUntil)
	}
	sub.CreatedAt, sub.UpdatedAt = web.Millis(created), web.Millis(updated)
	return sub, nil
}

func (rt *Routes) load(ctx context.Context, s *web.Scope, id string) (Subscription, error) {
	if !web.ValidID("wh", id) {
		return Subscription{}, web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	rows, err := s.P.SQL.Query(ctx, selectSub+` WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return Subscription{}, err
	}
	if rows.Len() == 0 {
		return Subscription{}, web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	return scanSub(rows, 0, s.Now().UnixMilli())
}

// List lists the tenant's subscriptions, oldest first: GET /v1/webhooks.
func (rt *Routes) List(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	rows, err := s.P.SQL.Query(r.Context(), selectSub+` WHERE tenant_id = ? ORDER BY created_at, id LIMIT ?`, s.Tenant, MaxSubscriptions)
	if err != nil {
		return err
	}
	out := make([]Subscription, rows.Len())
	for i := range out {
		if out[i], err = scanSub(rows, i, s.Now().UnixMilli()); err != nil {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

// Get reads one subscription: GET /v1/webhooks/{id}.
func (rt *Routes) Get(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	sub, err := rt.load(r.Context(), s, r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, sub)
	return nil
}

// Update changes url, events, description or enabled: PATCH
// /v1/webhooks/{id}. Enabling a disabled subscription clears its failure
// streak.
func (rt *Routes) Update(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	var req updateRequest
	if err := web.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := rt.load(ctx, s, id); err != nil {
		return err
	}
	set := []string{}
	args := []any{}
	details := map[string]string{}
	if req.URL != nil {
		url, err := rt.checkURL(*req.URL)
		if err != nil {
			return err
		}
		set, args = append(set, "url = ?"), append(args, url)
		details["url"] = url
	}
	if req.Events != nil {
		events, err := checkEvents(*req.Events)
		if err != nil {
			return err
		}
		set, args = append(set, "events = ?"), append(args, events)
		details["events"] = events
	}
	if req.Description != nil {
		if err := checkDescription(*req.Description); err != nil {
			return err
		}
		set, args = append(set, "description = ?"), append(args, *req.Description)
	}
	if req.Enabled != nil {
		if *req.Enabled {
			set = append(set, "enabled = 1", "dead_streak = 0", "failing_since = NULL", "disabled_reason = NULL")
		} else {
			set = append(set, "enabled = 0", "disabled_reason = 'disabled by a person'")
		}
		details["enabled"] = strconv.FormatBool(*req.Enabled)
	}
	if len(set) == 0 {
		return web.Errorf(http.StatusBadRequest, "nothing_to_change", "send at least one of url, events, description, enabled")
	}
	now := s.Now().UnixMilli()
	set = append(set, "updated_at = ?")
	args = append(args, now, s.Tenant, id)
	res, err := record(ctx, r, s, "webhook.updated", id, details, []storage.Stmt{{
		// tenant-scoped: the SET list is built from fixed column names above; the WHERE is the tenant's.
		Query: `UPDATE webhooks SET ` + strings.Join(set, ", ") + ` WHERE tenant_id = ? AND id = ?`,
		Args:  args,
	}})
	if err != nil {
		return err
	}
	if res[0].RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	sub, err := rt.load(ctx, s, id)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, sub)
	return nil
}

// Delete removes a subscription; its pending deliveries become dead:
// DELETE /v1/webhooks/{id}.
func (rt *Routes) Delete(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := rt.load(ctx, s, id); err != nil {
		return err
	}
	now := s.Now().UnixMilli()
	res, err := record(ctx, r, s, "webhook.deleted", id, nil, []storage.Stmt{
		{Query: `DELETE FROM webhooks WHERE tenant_id = ? AND id = ?`, Args: []any{s.Tenant, id}},
		{Query: `UPDATE jobs SET state = 'dead', last_error = 'the subscription was deleted', updated_at = ? WHERE tenant_id = ? AND ref = ? AND kind = ? AND state = 'queued'`,
			Args: []any{now, s.Tenant, id, KindDeliver}},
	})
	if err != nil {
		return err
	}
	if res[0].RowsAffected == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Rotate makes a new secret and returns it once; the previous one keeps
// signing deliveries (a second signature) for RotationOverlap: POST
// /v1/webhooks/{id}/rotate.
func (rt *Routes) Rotate(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if !web.ValidID("wh", id) {
		return web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	rows, err := s.P.SQL.Query(ctx, `SELECT secret_sealed, updated_at FROM webhooks WHERE tenant_id = ? AND id = ?`, s.Tenant, id)
	if err != nil {
		return err
	}
	if rows.Len() == 0 {
		return web.Errorf(http.StatusNotFound, "not_found", "no such webhook")
	}
	var old []byte
	var updated int64
	if err := rows.Scan(0, &old, &updated); err != nil {
		return err
	}
	secret := NewSecret()
	sealed, err := s.Keys.Seal(ctx, s.Tenant, secretKind, id, []byte(secret))
	if err != nil {
		return err
	}
	now := s.Now()
	until := now.Add(RotationOverlap).UnixMilli()
	// Conditional on the secret read: of two racing rotations one wins,
	// and the loser does not hand out a secret that was never stored.
	res, err := record(ctx, r, s, "webhook.secret.rotated", id, map[string]string{"previous_valid_until": web.Millis(until)}, []storage.Stmt{{
		Query: `UPDATE webhooks SET secret_sealed = ?, prev_sealed = secret_sealed, prev_until = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND secret_sealed = ?`,
		Args:  []any{sealed, until, now.UnixMilli(), s.Tenant, id, old},
	}})
	if err != nil {
		return err
	}
	if res[0].RowsAffected != 1 {
		return web.Errorf(http.StatusConflict, "conflict", "the webhook changed during the rotation; retry")
	}
	sub, err := rt.load(ctx, s, id)
	if err != nil {
		return err
	}
	sub.Secret = secret
	web.WriteJSON(w, http.StatusOK, sub)
	return nil
}

// Delivery is one entry of the delivery log.
type Delivery struct {
	ID             string `json:"id"` // the webhook-id receivers see
	EventType      string `json:"event_type"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	// Status: pending (waiting for its next attempt), sending, delivered
	// or failed (dead: no more attempts).
	Status       string  `json:"status"`
	Attempts     int     `json:"attempts"`
	MaxAttempts  int     `json:"max_attempts"`
	ResponseCode *int64  `json:"response_code"`
	LastError    *string `json:"last_error"`
	NextAttempt  *string `json:"next_attempt_at,omitempty"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
}

// parseCursor reads a delivery log cursor, "<created_at ms>.<id>" as
// returned in next; "" is the first page.
func parseCursor(c string) (int64, string, error) {
	if c == "" {
		return web.MaxSafeInt, "", nil
	}
	at, id, ok := strings.Cut(c, ".")
	v, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || v < 0 || v > web.MaxSafeInt || id == "" || len(id) > 200 || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return 0, "", web.Errorf(http.StatusBadRequest, "invalid_cursor", "cursor must be a value returned as next")
	}
	return v, id, nil
}

var deliveryStatus = map[string]string{"queued": "pending", "running": "sending", "done": "delivered", "dead": "failed"}

// Deliveries lists a subscription's deliveries, newest first, with a
// keyset cursor on (created_at, id) so that rows sharing a timestamp are
// neither skipped nor repeated: GET /v1/webhooks/{id}/deliveries.
func (rt *Routes) Deliveries(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := rt.load(ctx, s, id); err != nil {
		return err
	}
	curAt, curID, err := parseCursor(r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	rows, err := s.P.SQL.Query(ctx, `SELECT j.id, j.payload, j.state, j.attempts, j.max_attempts, j.last_error, j.run_at, j.created_at, j.updated_at,
			(SELECT a.response_code FROM webhook_attempts a WHERE a.tenant_id = j.tenant_id AND a.job_id = j.id ORDER BY a.attempt DESC LIMIT 1)
		FROM jobs j WHERE j.tenant_id = ? AND j.ref = ? AND j.kind = ? AND (j.created_at < ? OR (j.created_at = ? AND j.id < ?))
		ORDER BY j.created_at DESC, j.id DESC LIMIT ?`,
		s.Tenant, id, KindDeliver, curAt, curAt, curID, deliveriesPage)
	if err != nil {
		return err
	}
	out := make([]Delivery, rows.Len())
	var lastAt int64
	for i := range out {
		d := &out[i]
		var payload, state string
		var lastErr any
		var runAt, created, updated int64
		if err := rows.Scan(i, &d.ID, &payload, &state, &d.Attempts, &d.MaxAttempts, &lastErr, &runAt, &created, &updated, &d.ResponseCode); err != nil {
			return err
		}
		var pl deliveryPayload
		json.Unmarshal([]byte(payload), &pl)
		d.EventType, d.ConversationID, d.Seq = pl.EventType, pl.ConversationID, pl.Seq
		d.Status = deliveryStatus[state]
		if e, ok := lastErr.(string); ok {
			d.LastError = &e
		}
		if state == "queued" {
			n := web.Millis(runAt)
			d.NextAttempt = &n
		}
		d.CreatedAt, d.UpdatedAt = web.Millis(created), web.Millis(updated)
		lastAt = created
	}
	resp := map[string]any{"deliveries": out}
	if len(out) == deliveriesPage {
		resp["next"] = strconv.FormatInt(lastAt, 10) + "." + out[len(out)-1].ID
	}
	web.WriteJSON(w, http.StatusOK, resp)
	return nil
}
