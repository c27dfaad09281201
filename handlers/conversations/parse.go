package conversations

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parsers of what clients send. Each has a Fuzz target (parse_test.go).

// Limits. Every one has a test that crosses it.
const (
	MaxText          = 10000 // characters of a message or canned response
	MaxLabels        = 20
	MaxLabel         = 32
	MaxAttributes    = 50
	MaxAttributeKey  = 64
	MaxAttributeText = 1000  // characters of one string value
	MaxAttributesLen = 16384 // bytes of the attributes object as stored
	MaxName          = 200
	MaxEmail         = 254
	MaxPhone         = 32
	MaxSubject       = 300
	MaxIdemKey       = 255
	MaxCannedCode    = 32
	maxSafeInt       = 1<<53 - 1
)

// ParseSeq reads an event cursor: a decimal integer 0 <= N < 2^53, no sign,
// no leading zeros beyond "0" itself.
func ParseSeq(s string) (int64, error) {
	bad := fail(http.StatusBadRequest, "invalid_cursor", "", "a cursor is a decimal integer from 0 to 2^53-1")
	if s == "" || len(s) > 16 || (len(s) > 1 && s[0] == '0') {
		return 0, bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxSafeInt {
		return 0, bad
	}
	return n, nil
}

// Keyset cursors of lists ordered by (time, id), newest first: the page
// after the cursor holds exactly the rows with (time, id) below it, so rows
// that share a timestamp are neither skipped nor repeated.
type keyCursor struct {
	At int64
	ID string
}

// encode is opaque to clients: base64url of "<ms>.<id>".
func (c keyCursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At, 10) + "." + c.ID))
}

// parseKeyCursor reads a cursor made by encode for ids with prefix.
func parseKeyCursor(s, prefix string) (keyCursor, error) {
	bad := fail(http.StatusBadRequest, "invalid_cursor", "", "the cursor is not one this list returned")
	if len(s) > 128 {
		return keyCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return keyCursor{}, bad
	}
	at, id, ok := strings.Cut(string(raw), ".")
	if !ok || !validID(prefix, id) {
		return keyCursor{}, bad
	}
	n, err := ParseSeq(at)
	if err != nil {
		return keyCursor{}, bad
	}
	return keyCursor{At: n, ID: id}, nil
}

// ParseLabels normalizes a label set: each label is trimmed and lowercased
// and must then be 1..MaxLabel characters of [a-z0-9_-:.], starting with a
// letter or digit; duplicates collapse; at most MaxLabels; sorted.
func ParseLabels(in []string) ([]string, error) {
	if len(in) > MaxLabels*4 {
		return nil, fail(http.StatusUnprocessableEntity, "too_many_labels", "labels", "a conversation has at most %d labels", MaxLabels)
	}
	out := make([]string, 0, len(in))
	for i, l := range in {
		l = strings.ToLower(strings.TrimSpace(l))
		if !validLabel(l) {
			return nil, fail(http.StatusBadRequest, "invalid_label", "labels["+strconv.Itoa(i)+"]",
				"a label is 1 to %d characters of a-z, 0-9, '_', '-', ':' or '.', starting with a letter or digit", MaxLabel)
		}
		out = append(out, l)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxLabels {
		return nil, fail(http.StatusUnprocessableEntity, "too_many_labels", "labels", "a conversation has at most %d labels", MaxLabels)
	}
	return out, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > MaxLabel {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != ':' && c != '.') {
			return false
		}
	}
	return true
}

// ParseAttributes checks a contact's custom attributes: a JSON object of at
// most MaxAttributes keys (1..MaxAttributeKey characters of
// [A-Za-z0-9_.-]) whose values are strings (at most MaxAttributeText
// characters), numbers, booleans or null; no nesting. It returns the
// object re-encoded compactly with sorted keys (what is sealed), at most
// MaxAttributesLen bytes. null or absent is the empty object.
func ParseAttributes(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), nil
	}
	if raw[0] != '{' {
		return nil, fail(http.StatusBadRequest, "invalid_attributes", "attributes", "attributes must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fail(http.StatusBadRequest, "invalid_attributes", "attributes", "attributes must be a JSON object")
	}
	if dec.More() {
		return nil, fail(http.StatusBadRequest, "invalid_attributes", "attributes", "attributes must be one JSON object")
	}
	if len(m) > MaxAttributes {
		return nil, fail(http.StatusUnprocessableEntity, "too_many_attributes", "attributes", "a contact has at most %d attributes", MaxAttributes)
	}
	for k, v := range m {
		field := "attributes." + truncate(k, 64)
		if !validAttributeKey(k) {
			return nil, fail(http.StatusBadRequest, "invalid_attributes", field,
				"an attribute name is 1 to %d characters of A-Z, a-z, 0-9, '_', '.' or '-'", MaxAttributeKey)
		}
		switch x := v.(type) {
		case nil, bool:
		case json.Number:
			f, err := x.Float64()
			if err != nil || f != f || f > 1e300 || f < -1e300 {
				return nil, fail(http.StatusBadRequest, "invalid_attributes", field, "attribute numbers must be finite")
			}
		case string:
			if !utf8.ValidString(x) || utf8.RuneCountInString(x) > MaxAttributeText {
				return nil, fail(http.StatusUnprocessableEntity, "attribute_too_long", field, "an attribute value is at most %d characters", MaxAttributeText)
			}
		default:
			return nil, fail(http.StatusBadRequest, "invalid_attributes", field, "attribute values are strings, numbers, booleans or null; not objects or arrays")
		}
	}
	out, err := json.Marshal(m) // sorted keys, compact
	if err != nil {
		return nil, fail(http.StatusBadRequest, "invalid_attributes", "attributes", "attributes cannot be encoded")
	}
	if len(out) > MaxAttributesLen {
		return nil, fail(http.StatusUnprocessableEntity, "attributes_too_large", "attributes", "attributes take at most %d bytes", MaxAttributesLen)
	}
	return out, nil
}

func validAttributeKey(k string) bool {
	if k == "" || len(k) > MaxAttributeKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ValidIdempotencyKey: 1..MaxIdemKey visible ASCII characters, as the
// IETF Idempotency-Key draft's examples (UUIDs, random tokens) are.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdemKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// NormalizeEmail trims and lowercases an address and checks its shape (one
// '@' between non-empty parts, no spaces or control characters, a dot in
// the domain). The blind index is computed over this form, so that
// "Ann@Example.com " and "ann@example.com" find the same contact.
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	local, domain, ok := strings.Cut(e, "@")
	switch {
	case !ok || local == "" || domain == "" || strings.Contains(domain, "@"),
		!strings.Contains(domain, "."), strings.HasPrefix(domain, "."), strings.HasSuffix(domain, "."),
		len(e) > MaxEmail, !utf8.ValidString(e),
		strings.ContainsFunc(e, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\uFFFD' }):
		return "", fail(http.StatusBadRequest, "invalid_email", "email", "email must be an address like name@example.com (at most %d characters)", MaxEmail)
	}
	return e, nil
}

// parseWait reads the long-poll wait in seconds, clamped to 1..30; absent
// means no wait (a plain poll).
func parseWait(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || len(s) > 6 {
		return 0, fail(http.StatusBadRequest, "invalid_wait", "", "wait is a number of seconds (1 to 30)")
	}
	return min(max(n, 1), 30), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
