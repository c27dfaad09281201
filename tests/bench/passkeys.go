//go:build !windows

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/tests/webauthntest"
	"pommy.ai/edge/wasm/host"
)

var passkeyN = flag.Int("passkey-logins", 40, "sequential passwordless passkey sign-ins timed per home")

// passkeys measures a passwordless sign-in with a passkey through the
// pooled host and the native handlers, and the bytes passkeys add to the
// edge worker (a build with -tags nopasskeys against one without).
func (x *b) passkeys() error {
	progress("passkeys: starting the native handlers and a pooled host on fresh data directories...")
	native, err := x.startNative()
	if err != nil {
		return err
	}
	defer native.close()
	pool, err := x.startHost("passkeys-pool", host.Options{})
	if err != nil {
		return err
	}
	defer pool.close()
	homes := []*home{native, pool}
	labels := []string{"native handlers (baseline)", "host, pooled"}
	// Four passkeys of one person, used in turn from 16 addresses: the
	// per-passkey and per-address limits (30 a minute) never shed a
	// bench request.
	const keys, ips = 4, 16
	total := make([]result, len(homes))
	finish := make([]result, len(homes))
	for i, h := range homes {
		c := &apitest.Client{Base: h.url, HTTP: x.client}
		auths := make([]*webauthntest.Authenticator, keys)
		var device []string
		if err := catch(func(t testing.TB) {
			s := c.Signup(t, "Bench Passkeys Co")
			device = s.Device
			for k := range auths {
				auths[k] = c.NewAuthenticator(t)
				s.EnrolPasskey(t, auths[k], "bench "+strconv.Itoa(k))
			}
		}); err != nil {
			return fmt.Errorf("%s: enrolling passkeys: %w", h.name, err)
		}
		progress("passkeys: %s, %d sequential sign-ins (options, the authenticator, sign-in) after %d unmeasured...", labels[i], *passkeyN, keys)
		for n := range *passkeyN + keys {
			// The browser that signed up: its device cookie, so that no
			// sign-in is a new device's (which would queue a mail).
			ip := append([]string{"Content-Type", "application/json", apitest.TestClientIP, fmt.Sprintf("10.78.0.%d", n%ips+1)}, device...)
			t0 := time.Now()
			status, body, err := request{method: "POST", url: h.url + "/v1/login/passkey/options", body: []byte("{}"), header: ip, want: 200}.do(x.client)
			var o struct {
				ChallengeToken string          `json:"challenge_token"`
				Options        json.RawMessage `json:"options"`
			}
			if err == nil && (status != 200 || json.Unmarshal(body, &o) != nil) {
				err = fmt.Errorf("options: status %d: %.200s", status, body)
			}
			var cred json.RawMessage
			if err == nil {
				cred, err = auths[n%keys].Get(o.Options)
			}
			var t1 time.Time
			if err == nil {
				b, _ := json.Marshal(map[string]any{"challenge_token": o.ChallengeToken, "credential": cred})
				t1 = time.Now()
				status, body, err = request{method: "POST", url: h.url + "/v1/login/passkey", body: b, header: ip, want: 200}.do(x.client)
				if err == nil && status != 200 {
					err = fmt.Errorf("sign-in: status %d: %.200s", status, body)
				}
			}
			if n < keys {
				continue
			}
			if err != nil {
				total[i].fail(status, err)
				finish[i].fail(status, err)
				continue
			}
			total[i].n++
			finish[i].n++
			total[i].lat = append(total[i].lat, time.Since(t0))
			finish[i].lat = append(finish[i].lat, time.Since(t1))
		}
		slices.Sort(total[i].lat)
		slices.Sort(finish[i].lat)
		x.rep.measured(labels[i]+", passwordless passkey sign-in", total[i])
	}
	progress("  passkey sign-in p50: host %s, native %s", ms(total[1].pct(50)), ms(total[0].pct(50)))

	progress("passkeys: building the edge worker with and without passkeys (-tags nopasskeys)...")
	with, without, err := x.workerWithout("nopasskeys")
	if err != nil {
		return err
	}

	x.rep.section("Identity: sign-in with a passkey",
		fmt.Sprintf("A passwordless sign-in as a browser makes it: `POST /v1/login/passkey/options`, the authenticator's answer "+
			"(tests/webauthntest: an ES256 signature, as a platform passkey makes it, computed by the client), then `POST /v1/login/passkey`, "+
			"which verifies the assertion (handlers/identity/webauthn.go: client data, authenticator data, the ECDSA P-256 signature), "+
			"raises the passkey's counter, and starts the session. %d in a row per home after %d unmeasured, by one person with %d passkeys used in turn "+
			"from %d client addresses (the `%s` header), so the per-address and per-passkey limits never shed one, "+
			"in the browser that signed up (its device cookie: no sign-in is a new device's). "+
			"There is no password hash in this sign-in: compare with the password login above.",
			*passkeyN, keys, keys, ips, apitest.TestClientIP))
	var rows [][]string
	for i := range homes {
		ratio := "1 (baseline)"
		if i > 0 {
			ratio = times(float64(total[i].pct(50)) / float64(total[0].pct(50)))
		}
		rows = append(rows, []string{labels[i], ms(total[i].pct(50)), ms(total[i].pct(99)), ms(finish[i].pct(50)), ms(finish[i].pct(99)), strconv.Itoa(total[i].n), ratio})
	}
	x.rep.table([]string{"home", "sign-in p50 (options + answer + finish)", "p99", "finish alone p50", "p99", "n", "p50 vs native"}, rows)
	x.rep.para("**Bytes passkeys add to the edge worker.** Both builds here, with the Makefile's flags (`GOOS=js GOARCH=wasm`, `-trimpath -ldflags=\"-s -w\"`), "+
		"one with `-tags nopasskeys` (handlers/identity/passkeys_off.go: the passkey routes answer 501 and nobody has a passkey): "+
		"%s B without, %s B with, gzip -9: passkeys add **%s B** (%s B raw). They verify WebAuthn with our own narrow relying party; "+
		"github.com/go-webauthn/webauthn would have added about 1.36 MB gzip and taken the worker past 3 MiB (docs/decisions.md).",
		thousands(without.gz), thousands(with.gz), thousands(with.gz-without.gz), thousands(with.raw-without.raw))
	x.rep.check("passwordless passkey sign-in through the host, p50 (vs native)", ms(total[1].pct(50))+" ("+times(float64(total[1].pct(50))/float64(total[0].pct(50)))+")", "–", "–")
	x.rep.check("bytes passkeys add to the worker, gzip -9", thousands(with.gz-without.gz)+" B", "–", "–")
	return nil
}

type moduleSize struct{ raw, gz int64 }

// workerWithout builds the edge worker twice into the bench's temporary
// directory, as is and with the build tag tag, and returns both sizes.
func (x *b) workerWithout(tag string) (with, without moduleSize, err error) {
	build := func(name string, tags ...string) (moduleSize, error) {
		out := filepath.Join(x.tmp, name)
		args := append([]string{"build", "-trimpath", "-ldflags=-s -w"}, tags...)
		cmd := exec.Command("go", append(args, "-o", out, "./worker")...)
		cmd.Dir = x.root
		cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			return moduleSize{}, fmt.Errorf("building %s: %v: %s", name, err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return moduleSize{}, err
		}
		os.Remove(out)
		return moduleSize{int64(len(b)), gzipSize(b)}, nil
	}
	if with, err = build("app-with.wasm"); err != nil {
		return
	}
	without, err = build("app-without.wasm", "-tags="+tag)
	return
}
