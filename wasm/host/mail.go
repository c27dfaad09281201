package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// MailTimeout bounds one mail.send op. Mail is sent by background jobs, so
// the guest may block on it, but a mail server that accepts the connection
// and never answers must not hold a job worker's instance for the whole
// run: past this the send fails as unavailable and the job retries later.
// Options.MailTimeout overrides it (tests).
const MailTimeout = 30 * time.Second

// sendMail serves mail.send with Options.Platform.Mail. The message is
// checked before any network (storage.Mail.Check), and a timeout is
// reported as unavailable (try again), not as the op's deadline, which the
// guest would take for its own.
func (h *Host) sendMail(ctx context.Context, m *abi.MailSendReq) (abi.Message, error) {
	mailer := h.opts.Platform.Mail
	if mailer == nil {
		return nil, unavailable("mail")
	}
	msg := storage.Mail{ID: m.ID, To: m.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML}
	if err := msg.Check(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, cmp.Or(h.opts.MailTimeout, MailTimeout))
	defer cancel()
	id, err := mailer.Send(sctx, msg)
	if err != nil {
		if !errors.Is(err, storage.ErrInvalid) && !errors.Is(err, storage.ErrUnavailable) {
			// A timeout (ours or the invocation's) or an adapter error
			// without a class: nothing says the message is bad, so the
			// job tries again later.
			err = fmt.Errorf("%w: mail: %v", storage.ErrUnavailable, err)
		}
		return nil, err
	}
	return &abi.MailSendResp{ProviderID: id}, nil
}
