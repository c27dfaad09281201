package conversations

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The type of an attachment is decided by its content, as it streams
// through the sealing: never by its name or a request header, which the
// sender chooses. A visitor may upload only the allow-listed types; the
// team's uploads may be anything, and anything off the list is served as
// application/octet-stream.

// Allow-listed types, as http.DetectContentType names them.
const (
	TypePNG  = "image/png"
	TypeJPEG = "image/jpeg"
	TypeGIF  = "image/gif"
	TypeWebP = "image/webp"
	TypePDF  = "application/pdf"
	TypeText = "text/plain; charset=utf-8"
)

var allowedTypes = []string{TypePNG, TypeJPEG, TypeGIF, TypeWebP, TypePDF, TypeText}

// AllowedTypes are the attachment types a visitor may upload, without
// parameters (for the widget's file picker).
func AllowedTypes() []string {
	return []string{TypePNG, TypeJPEG, TypeGIF, TypeWebP, TypePDF, "text/plain"}
}

// sniffHead is how much of the start is kept: DetectContentType reads 512
// bytes; the markup check looks further, since a page may open with a
// long comment or whitespace.
const sniffHead = 4096

// sniffer passes a stream through, keeping its head and checking all of it
// for UTF-8 text: valid UTF-8 (runes split across reads included) and no
// NUL byte, which http.DetectContentType cannot tell from 512 bytes.
type sniffer struct {
	r     interface{ Read([]byte) (int, error) }
	head  []byte
	text  bool   // so far valid UTF-8 without NUL
	carry []byte // the start of a rune cut by the end of the last read
	buf   []byte
}

func newSniffer(r interface{ Read([]byte) (int, error) }) *sniffer {
	return &sniffer{r: r, text: true}
}

func (s *sniffer) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.observe(p[:n])
	return n, err
}

func (s *sniffer) observe(b []byte) {
	if len(s.head) < sniffHead {
		s.head = append(s.head, b[:min(len(b), sniffHead-len(s.head))]...)
	}
	if !s.text || len(b) == 0 {
		return
	}
	if bytes.IndexByte(b, 0) >= 0 {
		s.text = false
		return
	}
	s.buf = append(append(s.buf[:0], s.carry...), b...)
	end := len(s.buf)
	// A rune is at most 4 bytes: an incomplete one at the end starts in
	// the last 3.
	for j := len(s.buf) - 1; j >= 0 && j >= len(s.buf)-3; j-- {
		if utf8.RuneStart(s.buf[j]) {
			if !utf8.FullRune(s.buf[j:]) {
				end = j
			}
			break
		}
	}
	if !utf8.Valid(s.buf[:end]) {
		s.text = false
		return
	}
	s.carry = append(s.carry[:0], s.buf[end:]...)
}

// Type is the allow-listed type of everything read, or "" when it is none
// of them. Call it after the stream ended.
func (s *sniffer) Type() string {
	ct := http.DetectContentType(s.head)
	switch ct {
	case TypePNG, TypeJPEG, TypeGIF, TypeWebP, TypePDF:
		return ct
	case TypeText:
		if s.text && len(s.carry) == 0 && !looksLikeMarkup(s.head) {
			return TypeText
		}
	}
	return ""
}

// markers are what HTML, SVG, XML and scripts open with or carry early;
// DetectContentType knows some HTML tags but calls an SVG or a page that
// starts with an unknown tag plain text.
var markers = []string{"<script", "<svg", "<html", "<iframe", "<object", "<embed", "<body", "<head", "<meta", "<style",
	"<?xml", "<!doctype", "<!--", "javascript:", "<math", "<xsl"}

// looksLikeMarkup says whether text that is valid UTF-8 is probably a
// document a browser would render or run: it starts (after whitespace and
// a byte-order mark) with '<' or "#!", or carries a marker in its head.
func looksLikeMarkup(head []byte) bool {
	t := bytes.TrimLeftFunc(head, func(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' })
	if bytes.HasPrefix(t, []byte("<")) || bytes.HasPrefix(t, []byte("#!")) {
		return true
	}
	low := bytes.ToLower(head)
	for _, m := range markers {
		if bytes.Contains(low, []byte(m)) {
			return true
		}
	}
	return false
}

// MaxFileName is the longest file name kept, in characters; a longer one
// is cut (keeping its extension). maxFileNameBytes bounds what is read at
// all.
const (
	MaxFileName      = 200
	maxFileNameBytes = 4096
)

// ParseFileName sanitizes a file name its sender gave: the last path
// element (a name is never a path), no control or format characters (no
// bidirectional overrides that would disguise "gpj.exe"), trimmed of
// spaces and dots, at most MaxFileName characters; invalid UTF-8 is
// refused. "" (no usable name) is an error: the caller sends none.
func ParseFileName(name string) (string, error) {
	bad := fail(http.StatusBadRequest, "invalid_file_name", "name", "a file name is 1 to %d characters of valid UTF-8", MaxFileName)
	if !utf8.ValidString(name) || len(name) > maxFileNameBytes {
		return "", bad
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, name)
	name = strings.Trim(name, " .")
	if name == "" {
		return "", bad
	}
	if utf8.RuneCountInString(name) > MaxFileName {
		// Keep the extension: it is what tells a person what the file is.
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && utf8.RuneCountInString(name[i:]) <= 16 {
			ext = name[i:]
		}
		r := []rune(strings.TrimSuffix(name, ext))
		name = string(r[:MaxFileName-utf8.RuneCountInString(ext)]) + ext
	}
	return name, nil
}

// contentDisposition is "attachment" with the file name, if any: RFC 6266
// filename= as ASCII (others replaced by '_', quotes and backslashes too)
// for old clients, and filename*=UTF-8” percent-encoded (RFC 8187) for
// the rest, which prefer it.
func contentDisposition(name string) string {
	if name == "" {
		return "attachment"
	}
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + ascii + `"; filename*=UTF-8''` + pathEscapeAll(name)
}

// pathEscapeAll percent-encodes everything but RFC 8187's attr-char.
func pathEscapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// servedType is the Content-Type a stored attachment is served with.
func servedType(stored string) string {
	for _, t := range allowedTypes {
		if stored == t {
			return t
		}
	}
	return "application/octet-stream"
}
