// Package logmail is the mail service of a self-hosted home that has none
// configured: instead of sending each message it prints it (recipient,
// subject, the plain-text part) to the host's log, under a banner that
// says why, so that a person trying the platform with `make run` can still
// follow the verification and reset links it mails.
//
// The printed text carries those links, and so their tokens: that is its
// purpose, and the reason the host uses it only when no mail service is
// configured and says so at start (cmd/pommy). Anyone who can read this
// log could read the mailbox it stands in for.
package logmail

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"pommy.ai/edge/storage"
)

// Banner starts every printed message.
const Banner = "mail is not configured; printing outgoing mail here: configure --smtp-url to send it"

// Mailer prints mail to W. It is safe for concurrent use; messages are
// printed whole, one at a time.
type Mailer struct {
	mu sync.Mutex
	w  io.Writer
}

// New returns a Mailer printing to w (the host's standard error).
func New(w io.Writer) *Mailer { return &Mailer{w: w} }

// String describes the mailer for the host's start-up log.
func (m *Mailer) String() string { return "the log (no mail service configured)" }

// Send prints msg and reports it accepted. It refuses what any adapter
// refuses (storage.Mail.Check), so that a bad message fails here as it
// would with SMTP.
func (m *Mailer) Send(ctx context.Context, msg storage.Mail) (string, error) {
	if err := msg.Check(); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n===== %s =====\n", Banner)
	fmt.Fprintf(&b, "To: %s\nSubject: %s\nMessage id: %s\n\n", msg.To, msg.Subject, msg.ID)
	// Control characters other than line ends and tabs (a terminal's
	// escape sequences, which a name in the text could carry) are shown
	// as U+FFFD rather than sent to the operator's terminal.
	text := strings.ReplaceAll(strings.TrimRight(msg.Text, "\r\n"), "\r\n", "\n")
	b.WriteString(strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '\uFFFD'
		}
		return r
	}, text))
	b.WriteString("\n===== end of mail =====\n\n")
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := io.WriteString(m.w, b.String()); err != nil {
		return "", fmt.Errorf("%w: mail log: %v", storage.ErrUnavailable, err)
	}
	return "log:" + msg.ID, nil
}
