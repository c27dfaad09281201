package web

import (
	"net/http"
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
