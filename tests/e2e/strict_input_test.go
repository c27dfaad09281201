package e2e

import (
	"testing"

	"pommy.ai/edge/tests/apitest"
)

// TestStrictInput: through the shipped guest, a body with two readings
// (duplicate keys) or with text that is not what was sent (invalid UTF-8,
// lone surrogates, NUL) is refused and changes nothing: an invitation with
// {"role":"agent","role":"owner"} makes no invitation, a login with two
// passwords does not sign in, and such note titles and bodies are not
// stored.
func TestStrictInput(t *testing.T) {
	h := startHome(t, homeOptions{})
	apitest.StrictInput(t, &apitest.Client{Base: h.url})
}

// TestAmbiguousCredentials: two session cookies, or a key beside a cookie,
// are refused with 400 ambiguous_credentials instead of the first winning.
func TestAmbiguousCredentials(t *testing.T) {
	h := startHome(t, homeOptions{})
	apitest.AmbiguousCredentials(t, &apitest.Client{Base: h.url})
}

// TestUncleanPaths: the local home answers a signed-in
// GET /v1/notes/..%2f..%2fetc%2fpasswd, and paths with dot segments or
// empty segments, as the edge does (tests/workerd runs the same cases): the
// JSON error with the security headers, never an HTML redirect.
func TestUncleanPaths(t *testing.T) {
	h := startHome(t, homeOptions{})
	apitest.UncleanPaths(t, &apitest.Client{Base: h.url})
}

// TestErrorText: error messages name permissions in words, responses do
// not escape < > &, and settings changes are audited as objects.
func TestErrorText(t *testing.T) {
	h := startHome(t, homeOptions{})
	apitest.ErrorText(t, &apitest.Client{Base: h.url})
}
