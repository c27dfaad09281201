package smtpmail

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"

	"pommy.ai/edge/storage"
)

// buildMessage writes the message in Internet Message Format with CRLF
// line ends. Every header value is either checked to be one line
// (storage.Mail.Check, ParseSender) or encoded here (RFC 2047 for a
// non-ASCII subject or sender name), so no value can start a header of
// its own. Bodies are quoted-printable, so no line exceeds 76 characters
// whatever the text, and a line of just "." is dot-stuffed by net/smtp.
func buildMessage(from *mail.Address, m storage.Mail, messageID string, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	h := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	h("From", from.String())
	h("To", m.To)
	h("Subject", encodeSubject(m.Subject))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", messageID)
	h("MIME-Version", "1.0")
	// RFC 3834: an automatic message; auto-responders do not answer it.
	h("Auto-Submitted", "auto-generated")
	if m.HTML == "" {
		h("Content-Type", "text/plain; charset=utf-8")
		h("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	boundary, err := newBoundary()
	if err != nil {
		return nil, err
	}
	h("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		b.WriteString("--" + boundary + "\r\n")
		b.WriteString("Content-Type: " + part.typ + "; charset=utf-8\r\n")
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, part.body); err != nil {
			return nil, err
		}
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// writeQP writes s quoted-printable: line breaks (LF, CRLF or CR) become CRLF,
// everything else that is not printable ASCII is escaped, lines are
// soft-wrapped at 76 characters. A quoted-printable body cannot contain
// the boundary, which has "=_" in it ("=" is always escaped in the body).
func writeQP(b *bytes.Buffer, s string) error {
	// Every line end becomes LF first: Go's writer takes a lone CR and a
	// later LF for one CRLF when other bytes stand between them, and
	// loses a line end (found by FuzzBuildMessage: "\r\x05\n").
	s = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
	w := quotedprintable.NewWriter(b)
	if _, err := w.Write([]byte(s)); err != nil {
		return err
	}
	return w.Close()
}

// encodeSubject returns s as it is when it is printable ASCII without
// blanks at its ends, else as
// RFC 2047 encoded-words (UTF-8, Q or B, whichever is shorter), folded
// between words so that no header line grows past the 998-byte limit.
func encodeSubject(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii && strings.TrimSpace(s) == s {
		return s
	}
	if ascii {
		// Blanks at the ends would be taken for folding space and
		// dropped; an encoded-word keeps them. Whole 45-byte chunks of
		// ASCII, each one word of at most 75 characters.
		var words []string
		for len(s) > 0 {
			n := min(len(s), 45)
			words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
			s = s[n:]
		}
		return strings.Join(words, "\r\n ")
	}
	q := mime.QEncoding.Encode("utf-8", s)
	if b64 := mime.BEncoding.Encode("utf-8", s); len(b64) < len(q) {
		q = b64
	}
	// The encoder separates its encoded-words with a space; fold there.
	return strings.ReplaceAll(q, "?= =?", "?=\r\n =?")
}

func newBoundary() (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("boundary: %w", err)
	}
	// "=_" cannot occur in a quoted-printable body (an "=" there is
	// always followed by two hex digits or a line end).
	return "=_pommy_" + hex.EncodeToString(r[:]), nil
}
