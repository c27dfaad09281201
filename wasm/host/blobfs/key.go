package blobfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Keys are checked with storage.CheckBlobKey, the rule every Blobs adapter
// shares: no empty, "." or ".." segment and no control character, so no
// key can name a path outside the objects directory.

// File names. Every segment of a key is escaped so that the result is made
// only of [a-z0-9_-] and %xx escapes (upper-case letters are escaped too, so
// keys that differ only by case stay apart on case-insensitive file
// systems). Directory segments then get the suffix ".d" and the last segment
// ".b", so "a" (an object) and "a/b" (an object below a) never collide, and
// no name we make starts with a dot. A segment whose escaped name would pass
// the 255-byte name limit is cut and completed with "~" and a hash of the
// whole segment ("~" is always escaped otherwise, so these never collide
// either); the key itself is recorded in the object's trailer.
const (
	dirSuffix  = ".d"
	blobSuffix = ".b"
	maxName    = 240
)

func escapeSegment(seg string) string {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	s := b.String()
	if len(s) > maxName {
		cut := 160
		for cut > 0 && (s[cut-1] == '%' || (cut > 1 && s[cut-2] == '%')) {
			cut--
		}
		sum := sha256.Sum256([]byte(seg))
		s = s[:cut] + "~" + hex.EncodeToString(sum[:20])
	}
	return s
}

// unescapeSegment reverses escapeSegment; ok is false for hashed names.
func unescapeSegment(name string) (string, bool) {
	if strings.ContainsRune(name, '~') {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		v, err := hex.DecodeString(name[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// relPath is the object's path below the objects directory.
func relPath(key string) []string {
	segs := strings.Split(key, "/")
	out := make([]string, len(segs))
	for i, s := range segs {
		if i == len(segs)-1 {
			out[i] = escapeSegment(s) + blobSuffix
		} else {
			out[i] = escapeSegment(s) + dirSuffix
		}
	}
	return out
}
