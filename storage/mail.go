package storage

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Mailer hands mail to the home's mail service: SMTP in the self-hosted home
// (mailpit in the tests), an HTTP mail API through fetch at the edge, or,
// where a local home has no mail configured, its log. The application never
// calls it from a request: mail is queued as a job (handlers/mail) in the
// batch of the change that causes it, and the job calls Send.
type Mailer interface {
	// Send submits m and returns the service's id for it once the service
	// has accepted it. An error wrapping ErrUnavailable means try again
	// later (the server is down, busy, or answered with a temporary
	// failure); one wrapping ErrInvalid means the service refused the
	// message for good (a bad recipient, a permanent failure). Adapters
	// call m.Check first and refuse what it refuses with ErrInvalid.
	Send(ctx context.Context, m Mail) (string, error)
}

// Mail is one message to one recipient. The sender is the home's
// configured address, never the application's choice.
type Mail struct {
	// ID identifies the event the message is for (one message per event):
	// adapters use it as the Message-ID's local part or the API's
	// idempotency key, so that a retried send can be recognized.
	ID string
	// To is one plain address (name@example.com): no display name, no
	// list.
	To string
	// Subject is one line of text.
	Subject string
	// Text is the plain-text part (always present); HTML the optional
	// HTML alternative.
	Text, HTML string
}

// Limits of a Mail.
const (
	MaxMailSubject = 200
	MaxMailBody    = 256 << 10
	MaxMailID      = 100
)

// Check refuses a message that no adapter may send: a recipient that is
// not one plain address, a subject or id with a line break or a control
// character (header injection), sizes over the limits, text that is not
// UTF-8. The error wraps ErrInvalid.
func (m Mail) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: mail: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if m.ID == "" || len(m.ID) > MaxMailID || !headerSafe(m.ID) || strings.ContainsAny(m.ID, " <>@\"\\") {
		return bad("id must be 1 to %d printable characters without spaces, <, >, @, quotes or backslashes", MaxMailID)
	}
	if err := CheckMailAddress(m.To); err != nil {
		return err
	}
	if m.Subject == "" || len(m.Subject) > MaxMailSubject || !headerSafe(m.Subject) {
		return bad("subject must be one line of 1 to %d bytes without control characters", MaxMailSubject)
	}
	if m.Text == "" || len(m.Text)+len(m.HTML) > MaxMailBody || !utf8.ValidString(m.Text) || !utf8.ValidString(m.HTML) ||
		strings.ContainsRune(m.Text, 0) || strings.ContainsRune(m.HTML, 0) {
		return bad("the text part is required, and the parts must be UTF-8 without NUL, at most %d bytes together", MaxMailBody)
	}
	return nil
}

// CheckMailAddress reports whether a is one plain address that every mail
// adapter can put in a header as it is: no display name, no CR, LF or other
// control characters, no comments, at most 254 bytes. The error wraps
// ErrInvalid.
func CheckMailAddress(a string) error {
	if a == "" || len(a) > 254 || !headerSafe(a) || strings.ContainsAny(a, " ,;<>()\"\\") {
		return fmt.Errorf("%w: mail: the address must be one plain address (name@example.com) of at most 254 bytes", ErrInvalid)
	}
	p, err := mail.ParseAddress(a)
	if err != nil || p.Name != "" || p.Address != a || !strings.Contains(a, "@") {
		return fmt.Errorf("%w: mail: %q is not a plain address (name@example.com)", ErrInvalid, a)
	}
	return nil
}

// headerSafe: valid UTF-8 with no control characters (CR and LF among
// them), so that the value cannot end its header line.
func headerSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}
