package web

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix_ + 128 random bits: ids are unguessable, so knowing
// one tenant's id pattern says nothing about another's.
func NewID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// ValidID accepts only ids of NewID's shape, so a path segment can be
// checked before it reaches storage.
func ValidID(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Millis renders a stored Unix-millisecond time as RFC 3339 in UTC, the
// form every response uses.
func Millis(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// MaxSafeInt is the largest integer every SQL home stores exactly (D1's
// numbers are IEEE doubles): a number from a client above it must be
// refused before it reaches SQL.
const MaxSafeInt = 1<<53 - 1
