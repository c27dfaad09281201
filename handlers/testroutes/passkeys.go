package testroutes

import (
	"io"
	"net/http"

	"pommy.ai/edge/handlers"
)

// mountPasskeyPage mounts /__test/passkeys: an empty page on the home's own
// origin, where the browser tests (tests/browser/passkeys.mjs) run the
// WebAuthn ceremonies against the API, as the inbox will: WebAuthn needs
// the page and the relying party on one host. The page has no script of
// its own; the test drives it.
func mountPasskeyPage(mux *http.ServeMux, env handlers.TestEnv) {
	mux.HandleFunc("GET /__test/passkeys", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, passkeyPage)
	})
}

const passkeyPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Passkeys</title>
</head>
<body>
<h1>Passkeys</h1>
<p>Enrol a passkey, sign in with it without a password, and use it as the second factor.</p>
<ol id="steps"></ol>
</body>
</html>
`
