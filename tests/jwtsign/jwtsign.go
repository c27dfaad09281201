// Package jwtsign signs widget identity JWTs the way a tenant's backend
// would, with a JWT library we did not write (jose from npm, run by Node:
// sign.mjs next to this file), so that the platform's verifier is tested
// against someone else's tokens, forgeries included. The e2e and workerd
// suites use it.
package jwtsign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/workerd/wrangler"
)

// Spec is one token to sign; sign.mjs documents the fields.
type Spec struct {
	// Alg is HS256 when empty; "none" makes an unsecured JWT.
	Alg string `json:"alg,omitempty"`
	// Secret's UTF-8 bytes are the HMAC key.
	Secret string         `json:"secret,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
	// Exp, Iat and Nbf are jose time spans relative to now ("10m",
	// "-1h", "30d"); Iat may be "now". Empty: the claim is left out.
	Exp string `json:"exp,omitempty"`
	Iat string `json:"iat,omitempty"`
	Nbf string `json:"nbf,omitempty"`
	// Tamper is "payload" (another sub under the original signature) or
	// "signature" (one bit flipped).
	Tamper string `json:"tamper,omitempty"`
}

// ErrUnavailable is wrapped by Available when Node.js is not installed.
var ErrUnavailable = errors.New("jwtsign: node unavailable")

// Root is the repository's root (where package.json and node_modules are),
// found above the working directory (a test runs in its package's folder).
// Not from runtime.Caller: builds with -trimpath (make test) record module
// paths, not folders.
func Root() string {
	root, err := wrangler.FindRoot(".")
	if err != nil {
		return "."
	}
	return root
}

// Available reports whether node is on PATH and jose is installed; a
// missing jose is installed from package-lock.json with npm ci when the
// lock file pins it.
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("%w: node is not on PATH (the tenant-side signer runs jose from npm)", ErrUnavailable)
	}
	root := Root()
	if _, err := os.Stat(filepath.Join(root, "node_modules", "jose", "package.json")); err == nil {
		return nil
	}
	lock, err := os.ReadFile(filepath.Join(root, "package-lock.json"))
	if err != nil || !bytes.Contains(lock, []byte(`"node_modules/jose"`)) {
		return fmt.Errorf("jwtsign: jose is not installed and package-lock.json does not pin it; run: npm install --no-save jose@6.2.17")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("jwtsign: npm ci: %v\n%s", err, out)
	}
	return nil
}

// Sign signs the specs with jose and returns the tokens in order.
func Sign(ctx context.Context, specs []Spec) ([]string, error) {
	in, err := json.Marshal(specs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(Root(), "tests", "jwtsign", "sign.mjs"))
	cmd.Dir = Root()
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("jwtsign: node sign.mjs: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var out []string
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("jwtsign: sign.mjs output: %v: %q", err, stdout.String())
	}
	if len(out) != len(specs) {
		return nil, fmt.Errorf("jwtsign: %d tokens for %d specs", len(out), len(specs))
	}
	return out, nil
}

// MustSign is Sign for tests: it skips when node is not installed and
// fails on any other problem.
func MustSign(t testing.TB, specs ...Spec) []string {
	t.Helper()
	ctx := context.Background()
	if err := Available(ctx); errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	out, err := Sign(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
