package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/browser"
)

// TestPasskeysBrowser runs tests/browser/passkeys.mjs: real Chromium with
// its virtual authenticator (DevTools WebAuthn.addVirtualAuthenticator:
// CTAP2, internal transport, resident keys, user verification) enrols a
// passkey through the API of the compiled guest, signs in with it alone,
// with the password and it as the second factor, and steps up with it, on
// a page of the home's own origin. The screenshot is
// build/screenshots/passkeys.png.
func TestPasskeysBrowser(t *testing.T) {
	b := needBrowser(t)
	h := startHome(t, homeOptions{})
	// The script signs up its own person; lib.mjs wants these set.
	e := browser.Env{Platform: h.url, Site: strings.Replace(h.url, "127.0.0.1", "localhost", 1), Tenant: "-", Key: "-", Session: "-",
		Screenshots: filepath.Join(b.Root, "build", "screenshots")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	passed := false
	err := b.Run(ctx, "passkeys.mjs", e, nil, func(line string) {
		t.Log(line)
		passed = passed || strings.HasPrefix(line, "--- PASS: passkeyLifecycle")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !passed {
		t.Fatal("passkeys.mjs did not pass its scenario")
	}
}
