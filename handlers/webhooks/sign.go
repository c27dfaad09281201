package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// SecretPrefix opens every signing secret, as the specification suggests.
const SecretPrefix = "whsec_"

// secretBytes is the length of a fresh secret's key (the specification
// allows 24 to 64 bytes).
const secretBytes = 32

// NewSecret returns a fresh signing secret: whsec_ and the standard base64
// of 32 random bytes.
func NewSecret() string {
	var b [secretBytes]byte
	rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// ErrSecret is returned for a secret that is not whsec_ and base64 of 24
// to 64 bytes.
var ErrSecret = errors.New("webhooks: malformed secret")

// SecretKey decodes a whsec_ secret into its HMAC key.
func SecretKey(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, ErrSecret
	}
	k, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, ErrSecret
	}
	return k, nil
}

// Sign returns one signature of the message: "v1," and the base64
// HMAC-SHA256 of "id.timestamp.body" under key.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignatureHeader is the webhook-signature value for all of keys (during a
// rotation, the new secret's and the old one's), space-separated as the
// specification allows, so a receiver holding either secret verifies.
func SignatureHeader(keys [][]byte, id string, timestamp int64, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, timestamp, body)
	}
	return strings.Join(sigs, " ")
}

// Verify checks a webhook-signature header against key: true when one of
// its v1 signatures matches (constant-time comparison). It is the
// receiver's side, used by the tests and documented as the recipe.
func Verify(key []byte, id string, timestamp int64, body []byte, header string) bool {
	want := Sign(key, id, timestamp, body)
	ok := false
	for _, s := range strings.Fields(header) {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	return ok
}
