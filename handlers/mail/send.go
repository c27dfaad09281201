package mail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/storage"
)

// SendPolicy: 30 s doubling to at most 4 h between tries; 45 s per try (an
// SMTP conversation or an HTTP mail API call).
var SendPolicy = jobs.Policy{Base: 30 * time.Second, Cap: 4 * time.Hour, Timeout: 45 * time.Second}

// ErrNoMailer is the error of a mail job in a home with no mail service:
// retried like an unavailable server, and visible on the log row and the
// job until a service is configured or the job gives up.
var ErrNoMailer = fmt.Errorf("%w: no mail service is configured in this home", storage.ErrUnavailable)

// Register adds the "mail.send" kind to reg, bound to the platform p.
func Register(reg *jobs.Registry, p storage.Platform) {
	s := &sender{p: p}
	reg.RegisterPolicy(KindSend, s.send, SendPolicy, s.after)
}

type sender struct{ p storage.Platform }

// send renders and sends one message, once: a log row already "sent" (a
// job run again after its lease expired, the same event queued twice)
// sends nothing. The Mail's ID is the log id, so a retried SMTP send
// carries the same Message-ID and an HTTP API the same idempotency key.
func (s *sender) send(ctx context.Context, j jobs.Job) error {
	var m Message
	if err := json.Unmarshal(j.Payload, &m); err != nil {
		return jobs.Permanent(fmt.Errorf("mail: payload: %w", err))
	}
	if m.Locale == "" {
		m.Locale = "en"
	}
	id := LogID(m.Event)
	status, err := Status(ctx, s.p.SQL, j.Tenant, id)
	switch {
	case err != nil:
		return err
	case status == "":
		// The tenant (and its log) was deleted after the mail was queued.
		return nil
	case status == "sent":
		return nil
	}
	if err := m.check(); err != nil {
		return s.fail(ctx, j, id, jobs.Permanent(err))
	}
	r, err := s.render(ctx, m)
	if err != nil {
		return s.fail(ctx, j, id, jobs.Permanent(err))
	}
	if s.p.Mail == nil {
		return s.fail(ctx, j, id, ErrNoMailer)
	}
	providerID, err := s.p.Mail.Send(ctx, storage.Mail{ID: id, To: m.To, Subject: r.Subject, Text: r.Text, HTML: r.HTML})
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			err = jobs.Permanent(err)
		}
		return s.fail(ctx, j, id, err)
	}
	now := s.p.Clock.Now().UnixMilli()
	// The write of "sent" must not be lost to a context that ended with
	// the send: it is what stops a second send.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err = s.p.SQL.Exec(wctx, `UPDATE mail_log SET status = 'sent', provider_id = ?, sent_at = ?, attempts = attempts + 1, last_error = NULL, updated_at = ?
		WHERE tenant_id = ? AND id = ? AND status != 'sent'`, jobs.Truncate(providerID, 200), now, now, j.Tenant, id)
	return err
}

// render builds the message's mail, recomputing its link's token.
func (s *sender) render(ctx context.Context, m Message) (rendered, error) {
	var link string
	if m.Link != nil {
		token, err := Token(ctx, s.p.Keys, m.Link.Purpose, m.Link.ID)
		if err != nil {
			return rendered{}, err
		}
		link = linkURL(m, token)
	}
	return render(m.Template, m.Locale, m.Vars, link)
}

// linkURL is the message's link carrying token.
func linkURL(m Message, token string) string {
	u := m.Link.Origin + m.Link.Path + "#token=" + token
	if m.Link.Purpose == PurposeInvitation {
		u += "&tenant=" + m.Tenant
	}
	return u
}

// fail records a failed try on the log row: its attempts and last error,
// and "failed" when the job will not run again (a permanent error, the
// last attempt). It returns err for the jobs engine.
func (s *sender) fail(ctx context.Context, j jobs.Job, id string, err error) error {
	dead := j.Attempt >= j.MaxAttempts || jobs.IsPermanent(err)
	status := "queued"
	if dead {
		status = "failed"
	}
	now := s.p.Clock.Now().UnixMilli()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, werr := s.p.SQL.Exec(wctx, `UPDATE mail_log SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ? AND status != 'sent'`, status, jobs.Truncate(err.Error(), maxError), now, j.Tenant, id); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// after marks the log row "failed" when its job is dead however it died
// (its last run never finished within its lease, say), so the log never
// shows "queued" for a mail nothing will send.
func (s *sender) after(ctx context.Context, o jobs.Outcome) error {
	if !o.Dead {
		return nil
	}
	var m Message
	if err := json.Unmarshal(o.Job.Payload, &m); err != nil {
		return nil
	}
	now := s.p.Clock.Now().UnixMilli()
	msg := "gave up"
	if o.Err != nil {
		msg = o.Err.Error()
	}
	_, err := s.p.SQL.Exec(ctx, `UPDATE mail_log SET status = 'failed', last_error = COALESCE(last_error, ?), updated_at = ?
		WHERE tenant_id = ? AND id = ? AND status = 'queued'`, jobs.Truncate(msg, maxError), now, o.Job.Tenant, LogID(m.Event))
	return err
}
