package smtpmail

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"sort"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/storage"
)

// FuzzBuildMessage attacks the message writer with whatever passes
// storage.Mail.Check: the result always parses as one message with exactly
// the headers we write (nothing injected), the subject decodes to itself,
// no line is longer than 998 bytes or has a bare CR or LF, and the parts
// decode to the text and HTML given (line ends aside).
func FuzzBuildMessage(f *testing.F) {
	f.Add("ml_1", "a@example.com", "Şifrenizi sıfırlayın", "line\n.\nFrom x\r\n", "<p>=</p>")
	f.Add("ml_2", "b@example.com", "=?utf-8?q?fake?= \r\nBcc: x@example.com", "t", "")
	f.Add("ml_3", "c@example.com", strings.Repeat("ğ", 100), strings.Repeat("x", 2000), "\r\r\n\n")
	f.Add("ml_4", "d@example.com", "--=_pommy_", "--=_pommy_00\r\n", "--=_pommy_00--")
	// Found by fuzzing: blanks at a subject's ends, a lone CR before a LF.
	f.Add("ml_5", "e@example.com", " ", "t", "\r\x05\n")
	f.Add("ml_6", "f@example.com", " ğ ", "\r\x05\n", "")
	from, _ := ParseSender("Pommy Çağrı <noreply@pommy.example>")
	f.Fuzz(func(t *testing.T, id, to, subject, text, html string) {
		m := storage.Mail{ID: id, To: to, Subject: subject, Text: text, HTML: html}
		if m.Check() != nil {
			return
		}
		raw, err := buildMessage(from, m, "<"+idLeft(id)+"@pommy.example>", time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\r\n") {
			if len(line) > 998 || strings.ContainsAny(line, "\r\n") {
				t.Fatalf("bad line %q", line)
			}
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("does not parse: %v\n%s", err, raw)
		}
		var names []string
		for k := range msg.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		want := "Auto-Submitted Content-Transfer-Encoding Content-Type Date From Message-Id Mime-Version Subject To"
		if html != "" {
			want = "Auto-Submitted Content-Type Date From Message-Id Mime-Version Subject To"
		}
		if got := strings.Join(names, " "); got != want {
			t.Fatalf("headers %q, want %q", got, want)
		}
		for k, v := range msg.Header {
			if len(v) != 1 {
				t.Fatalf("header %s appears %d times", k, len(v))
			}
		}
		dec := new(mime.WordDecoder)
		if got, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || got != subject {
			t.Fatalf("subject %q decodes to %q (%v)", subject, got, err)
		}
		if msg.Header.Get("To") != to {
			t.Fatalf("To %q", msg.Header.Get("To"))
		}
		norm := func(s string) string { return strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s) }
		qp := func(r io.Reader) string {
			b, err := io.ReadAll(quotedprintable.NewReader(r))
			if err != nil {
				t.Fatalf("quoted-printable: %v", err)
			}
			return string(b)
		}
		if html == "" {
			if got := qp(msg.Body); norm(got) != norm(text) {
				t.Fatalf("text %q, want %q", got, text)
			}
			return
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for i, want := range []string{text, html} {
			p, err := mr.NextRawPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if got := qp(p); norm(got) != norm(want) {
				t.Fatalf("part %d: %q, want %q", i, got, want)
			}
		}
		if _, err := mr.NextRawPart(); err != io.EOF {
			t.Fatalf("more than two parts: %v", err)
		}
	})
}
