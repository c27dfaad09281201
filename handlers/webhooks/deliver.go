package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/envelope"
)

// DeliveryTimeout bounds one delivery attempt: connecting, sending and the
// receiver's answer. An endpoint that hangs costs one job runner this long.
const DeliveryTimeout = 10 * time.Second

// DeliveryPolicy is the retry policy of deliveries: 30 s doubling, at most
// 6 h between attempts, full jitter (jobs.Policy).
var DeliveryPolicy = jobs.Policy{Base: 30 * time.Second, Cap: 6 * time.Hour, Timeout: DeliveryTimeout + 5*time.Second}

// Disabling: a subscription is disabled when DisableAfterDead deliveries in
// a row have gone dead and it has not had a success for DisableAfter.
const (
	DisableAfterDead = 5
	DisableAfter     = 24 * time.Hour
)

// secretKind is the sealing kind of a subscription's secrets.
const secretKind = "webhook.secret"

// Deliverer runs delivery jobs.
type Deliverer struct {
	P        storage.Platform
	Renderer Renderer
	URLs     URLPolicy
	// Timeout overrides DeliveryTimeout (tests).
	Timeout time.Duration
}

// Register adds the delivery job kind to reg.
func Register(reg *jobs.Registry, d *Deliverer) {
	reg.RegisterPolicy(KindDeliver, d.deliver, DeliveryPolicy, d.after)
}

// errSkipped: the subscription is gone or disabled; the delivery is dead
// without counting against the endpoint.
var errSkipped = errors.New("webhooks: the subscription was deleted or disabled")

type subscription struct {
	url                string
	enabled            bool
	sealed, prevSealed []byte
	prevUntil          int64
	deadStreak         int64
	failingSince       int64
}

func loadSubscription(ctx context.Context, p storage.Platform, tenant, id string) (*subscription, error) {
	rows, err := p.SQL.Query(ctx, `SELECT url, enabled, secret_sealed, prev_sealed, prev_until, dead_streak, failing_since FROM webhooks WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return nil, err
	}
	if rows.Len() == 0 {
		return nil, storage.ErrNotFound
	}
	var s subscription
	var prevUntil, failing *int64
	if err := rows.Scan(0, &s.url, &s.enabled, &s.sealed, &s.prevSealed, &prevUntil, &s.deadStreak, &failing); err != nil {
		return nil, err
	}
	if prevUntil != nil {
		s.prevUntil = *prevUntil
	}
	if failing != nil {
		s.failingSince = *failing
	}
	return &s, nil
}

// signingKeys opens the subscription's secrets: the current one, and the
// previous one while a rotation's overlap lasts.
func (s *subscription) signingKeys(ctx context.Context, keys *envelope.Keyring, tenant, id string, now time.Time) ([][]byte, error) {
	open := func(sealed []byte) ([]byte, error) {
		secret, err := keys.Open(ctx, tenant, secretKind, id, sealed)
		if err != nil {
			return nil, err
		}
		return SecretKey(string(secret))
	}
	cur, err := open(s.sealed)
	if err != nil {
		return nil, err
	}
	out := [][]byte{cur}
	if s.prevSealed != nil && now.UnixMilli() < s.prevUntil {
		prev, err := open(s.prevSealed)
		if err != nil {
			return nil, err
		}
		out = append(out, prev)
	}
	return out, nil
}

// Body is what a receiver gets: the Standard Webhooks payload shape.
type Body struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

func (d *Deliverer) deliver(ctx context.Context, j jobs.Job) error {
	var pl deliveryPayload
	if err := json.Unmarshal(j.Payload, &pl); err != nil || pl.WebhookID == "" {
		return jobs.Permanent(fmt.Errorf("webhooks: malformed delivery payload"))
	}
	sub, err := loadSubscription(ctx, d.P, j.Tenant, pl.WebhookID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && !sub.enabled {
		return jobs.Permanent(errSkipped)
	}
	if err != nil {
		return err
	}
	if d.Renderer == nil {
		return errors.New("webhooks: no event renderer in this build")
	}
	eventType, data, err := d.Renderer.Event(ctx, j.Tenant, pl.ConversationID, pl.Seq)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) || errors.Is(err, envelope.ErrShredded) {
			return jobs.Permanent(fmt.Errorf("webhooks: the event is gone: %w", err))
		}
		return fmt.Errorf("webhooks: rendering the event: %w", err)
	}
	if eventType == "" {
		eventType = pl.EventType
	}
	body, err := json.Marshal(Body{Type: eventType, Timestamp: j.CreatedAt.Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return jobs.Permanent(fmt.Errorf("webhooks: encoding the event: %w", err))
	}
	now := d.P.Clock.Now()
	keys, err := sub.signingKeys(ctx, envelope.New(d.P), j.Tenant, pl.WebhookID, now)
	if err != nil {
		if errors.Is(err, envelope.ErrShredded) {
			return jobs.Permanent(err)
		}
		return fmt.Errorf("webhooks: opening the signing secret: %w", err)
	}
	if _, err := d.URLs.CheckURL(sub.url); err != nil {
		return jobs.Permanent(fmt.Errorf("webhooks: endpoint refused: %v", err))
	}
	code, derr := d.post(ctx, sub.url, j.ID, now, body, keys)
	d.recordAttempt(ctx, j, code, derr, now)
	return derr
}

// post sends one signed delivery and reports the response code (0: none).
func (d *Deliverer) post(ctx context.Context, url, id string, now time.Time, body []byte, keys [][]byte) (int, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DeliveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, jobs.Permanent(fmt.Errorf("webhooks: bad endpoint URL"))
	}
	ts := now.Unix()
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Pommy-Webhooks/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", SignatureHeader(keys, id, ts, body))
	req.Header.Set(storage.EgressPolicyHeader, storage.EgressPublicHTTPS)
	resp, err := d.P.HTTP.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, storage.ErrInvalid):
			return 0, fmt.Errorf("refused by the egress policy (only public https destinations): %w", err)
		case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || !time.Now().Before(deadline):
			// The home may report the deadline before this side's
			// context notices it.
			return 0, fmt.Errorf("no answer within %v", timeout)
		}
		return 0, fmt.Errorf("endpoint unreachable: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, fmt.Errorf("endpoint answered %d; redirects are not followed", resp.StatusCode)
	}
	return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
}

func (d *Deliverer) recordAttempt(ctx context.Context, j jobs.Job, code int, derr error, start time.Time) {
	var rc any
	if code != 0 {
		rc = code
	}
	msg := ""
	if derr != nil {
		msg = jobs.Truncate(derr.Error(), 300)
	}
	dur := d.P.Clock.Now().Sub(start).Milliseconds()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A lost attempt row costs the log a line, never a delivery. Rows are
	// numbered after the job's last one, not by j.Attempt: a dead delivery
	// retried through POST /v1/jobs/{id}/retry starts its attempts again
	// at 1, and its new attempts must add to the log, not collide with the
	// old ones (the log's response code is the highest-numbered row's).
	d.P.SQL.Exec(wctx, `INSERT INTO webhook_attempts (tenant_id, job_id, attempt, at, response_code, error, duration_ms)
		SELECT ?, ?, COALESCE(MAX(attempt), 0) + 1, ?, ?, ?, ? FROM webhook_attempts WHERE tenant_id = ? AND job_id = ?
		ON CONFLICT (tenant_id, job_id, attempt) DO NOTHING`, j.Tenant, j.ID, start.UnixMilli(), rc, msg, max(dur, 0), j.Tenant, j.ID)
}

// after keeps the subscription's failure streak and disables it when the
// endpoint has kept failing (DisableAfterDead, DisableAfter).
func (d *Deliverer) after(ctx context.Context, o jobs.Outcome) error {
	if errors.Is(o.Err, errSkipped) {
		return nil
	}
	var pl deliveryPayload
	if json.Unmarshal(o.Job.Payload, &pl) != nil || pl.WebhookID == "" {
		return nil
	}
	now := d.P.Clock.Now().UnixMilli()
	switch {
	case o.Err == nil:
		_, err := d.P.SQL.Exec(ctx, `UPDATE webhooks SET dead_streak = 0, failing_since = NULL WHERE tenant_id = ? AND id = ? AND (dead_streak <> 0 OR failing_since IS NOT NULL)`,
			o.Job.Tenant, pl.WebhookID)
		return err
	case !o.Dead:
		_, err := d.P.SQL.Exec(ctx, `UPDATE webhooks SET failing_since = ? WHERE tenant_id = ? AND id = ? AND failing_since IS NULL`,
			now, o.Job.Tenant, pl.WebhookID)
		return err
	}
	if _, err := d.P.SQL.Exec(ctx, `UPDATE webhooks SET dead_streak = dead_streak + 1, failing_since = COALESCE(failing_since, ?) WHERE tenant_id = ? AND id = ?`,
		now, o.Job.Tenant, pl.WebhookID); err != nil {
		return err
	}
	sub, err := loadSubscription(ctx, d.P, o.Job.Tenant, pl.WebhookID)
	if err != nil {
		return err
	}
	if !sub.enabled || sub.deadStreak < DisableAfterDead || now-sub.failingSince < DisableAfter.Milliseconds() {
		return nil
	}
	reason := fmt.Sprintf("%d deliveries in a row failed for good and the endpoint has not accepted one since %s",
		sub.deadStreak, time.UnixMilli(sub.failingSince).UTC().Format(time.RFC3339))
	res, err := d.P.SQL.Exec(ctx, `UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND enabled = 1`,
		reason, now, o.Job.Tenant, pl.WebhookID)
	if err != nil || res.RowsAffected != 1 {
		return err
	}
	_, err = audit.New(d.P.SQL, d.P.Clock).Sealed(d.P.Keys).Raise(ctx, o.Job.Tenant, "webhook.disabled",
		"webhook.disabled:"+pl.WebhookID+":"+strconv.FormatInt(sub.failingSince, 10),
		"The webhook endpoint "+sub.url+" was disabled: "+reason+". Fix the endpoint, then enable the subscription again.",
		audit.Event{TenantID: o.Job.Tenant, ActorType: audit.ActorSystem, ActorID: "webhooks", Action: "webhook.disabled",
			Target: "webhook:" + pl.WebhookID, Details: map[string]string{"reason": reason}})
	return err
}
