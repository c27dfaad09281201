package e2e

import (
	"testing"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/openapi"
)

// TestEdgeParity runs, through the shipped guest on one home, the
// scenarios the workerd suite runs at the edge, so both homes answer them
// alike:
//   - StrictInput: a body with two readings (duplicate keys) or with text
//     that is not what was sent (invalid UTF-8, lone surrogates, NUL) is
//     refused and changes nothing: an invitation with
//     {"role":"agent","role":"owner"} makes no invitation, a login with two
//     passwords does not sign in, and such canned responses are not
//     stored;
//   - AmbiguousCredentials: two session cookies, or a key beside a cookie,
//     are refused with 400 ambiguous_credentials instead of the first
//     winning;
//   - UncleanPaths: a signed-in GET /v1/contacts/..%2f..%2fetc%2fpasswd, and
//     paths with dot or empty segments, get the JSON error with the
//     security headers, never an HTML redirect;
//   - ErrorText: error messages name permissions in words, responses do
//     not escape < > &, and settings changes are audited as objects.
//
// Every exchange is also held to docs/openapi.yaml.
func TestEdgeParity(t *testing.T) {
	c := &apitest.Client{Base: startHome(t, homeOptions{}).url}
	openapi.Attach(t, c)
	for name, run := range map[string]func(*testing.T, *apitest.Client){
		"StrictInput":          apitest.StrictInput,
		"AmbiguousCredentials": apitest.AmbiguousCredentials,
		"UncleanPaths":         apitest.UncleanPaths,
		"ErrorText":            apitest.ErrorText,
	} {
		t.Run(name, func(t *testing.T) { run(t, c) })
	}
}
