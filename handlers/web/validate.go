package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// CheckName trims a short human-readable text (a name, a title) and
// refuses it with 400 invalid_<field> when it is empty but required, longer
// than max characters, not UTF-8, or holds control characters.
func CheckName(field, s string, required bool, max int) (string, error) {
	s = strings.TrimSpace(s)
	if (required && s == "") || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		if required {
			return "", Errorf(http.StatusBadRequest, "invalid_"+field, "%s must be 1 to %d characters", field, max)
		}
		return "", Errorf(http.StatusBadRequest, "invalid_"+field, "%s must be at most %d characters", field, max)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", Errorf(http.StatusBadRequest, "invalid_"+field, "%s must not contain control characters", field)
		}
	}
	return s, nil
}

// FieldErrorf is a 400 error about one field or query parameter.
func FieldErrorf(code, field, format string, args ...any) *Error {
	e := Errorf(http.StatusBadRequest, code, format, args...)
	e.Field = field
	return e
}

// CheckQuery refuses a query parameter not in known (sorted, as the error
// lists them) and one given more than once, so that a typo never silently
// widens a listing.
func CheckQuery(q url.Values, known ...string) error {
	for k, v := range q {
		if !slices.Contains(known, k) {
			return FieldErrorf("unknown_parameter", Truncate(k, 40), "unknown query parameter; known: %s", strings.Join(known, ", "))
		}
		if len(v) != 1 {
			return FieldErrorf("invalid_parameter", k, "query parameter %s is given %d times", k, len(v))
		}
	}
	return nil
}
