package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host"
)

// TestRefusesReadableMasterKey: a key file others may read stops the
// command before anything is served.
func TestRefusesReadableMasterKey(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "master.key"), bytes.Repeat([]byte{7}, 32), 0o644)
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data", dir}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(string) { t.Error("served with a readable key") })
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{
		"POMMY_ADDR": "127.0.0.1:9000", "POMMY_POOL": "3", "POMMY_TIMEOUT": "5s",
		"POMMY_S3_BUCKET": "b", "POMMY_S3_SECRET_KEY": "sekrit", "POMMY_EGRESS_ALLOW": "a.example, *.b.example",
		"POMMY_CLIENT_IP_HEADER": "X-Real-IP",
	}
	var help bytes.Buffer
	c, err := parseConfig([]string{"--pool", "7", "--instance-per-request", "--egress-private"}, func(k string) string { return env[k] }, &help)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:9000" || c.pool != 7 || !c.perRequest || c.timeout != 5*time.Second ||
		c.s3.SecretKey != "sekrit" || len(c.egressAllow) != 2 || c.egressAllow[1] != "*.b.example" ||
		c.clientIPHdr != "X-Real-IP" || !c.egressPriv {
		t.Fatalf("config = %+v", c)
	}
	if _, err := parseConfig([]string{"--help"}, func(k string) string { return env[k] }, &help); err == nil {
		t.Fatal("--help returned no error")
	}
	if strings.Contains(help.String(), "sekrit") {
		t.Fatal("--help printed the S3 secret")
	}
	for _, bad := range []map[string]string{{"POMMY_POOL": "many"}, {"POMMY_TIMEOUT": "soon"}, {"POMMY_S3_ENDPOINT": "http://x"},
		{"POMMY_PUBLIC_ORIGIN": "support.example.com"}, {"POMMY_PUBLIC_ORIGIN": "https://a.example/path"}, {"POMMY_EGRESS_PRIVATE": "maybe"}} {
		if _, err := parseConfig(nil, func(k string) string { return bad[k] }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestPublicOrigins(t *testing.T) {
	c, err := parseConfig([]string{"--public-origin", "https://Support.Example.com:443, http://10.0.0.5:8787"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.origins, " ") != "https://support.example.com http://10.0.0.5:8787" {
		t.Fatalf("origins %q", c.origins)
	}
	got, err := publicOrigins(nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8787})
	if err != nil || strings.Join(got, " ") != "http://127.0.0.1:8787 http://localhost:8787 http://[::1]:8787" {
		t.Fatalf("loopback default: %q, %v", got, err)
	}
	// Listening beyond loopback without saying the public name is refused
	// at start, not discovered by a rebinding attack.
	for _, ip := range []net.IP{net.IPv4zero, net.IPv4(192, 168, 1, 5), net.IPv6unspecified} {
		if _, err := publicOrigins(nil, &net.TCPAddr{IP: ip, Port: 8787}); err == nil || !strings.Contains(err.Error(), "--public-origin") {
			t.Errorf("%v: err = %v", ip, err)
		}
	}
	if got, err := publicOrigins(c.origins, &net.TCPAddr{IP: net.IPv4zero, Port: 80}); err != nil || len(got) != 2 {
		t.Errorf("configured: %q, %v", got, err)
	}
}

// TestServerLimitsConfig: the HTTP server's limits default to the host's
// constants (which the docs and the end-to-end tests use), are set by flag
// or environment, and refuse nonsense.
func TestServerLimitsConfig(t *testing.T) {
	none := func(string) string { return "" }
	c, err := parseConfig(nil, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.readHeaderTimeout != host.DefaultReadHeaderTimeout || c.idleTimeout != host.DefaultIdleTimeout ||
		c.maxHeaderBytes != host.DefaultMaxHeaderBytes || c.bodyReadTimeout != host.DefaultBodyReadTimeout ||
		c.bodyMinRate != host.DefaultBodyMinRate {
		t.Fatalf("defaults: %+v", c)
	}
	env := map[string]string{"POMMY_READ_HEADER_TIMEOUT": "3s", "POMMY_IDLE_TIMEOUT": "1m", "POMMY_MAX_HEADER_BYTES": "16384",
		"POMMY_BODY_READ_TIMEOUT": "4s", "POMMY_BODY_MIN_RATE": "1000"}
	c, err = parseConfig([]string{"--body-read-timeout", "5s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.readHeaderTimeout != 3*time.Second || c.idleTimeout != time.Minute || c.maxHeaderBytes != 16384 ||
		c.bodyReadTimeout != 5*time.Second || c.bodyMinRate != 1000 {
		t.Fatalf("from the environment and flags: %+v", c)
	}
	if bodyMinRate(0) >= 0 || bodyMinRate(1000) != 1000 {
		t.Error("--body-min-rate 0 must mean no minimum")
	}
	for _, bad := range [][]string{{"--read-header-timeout", "0s"}, {"--idle-timeout", "-1s"}, {"--body-read-timeout", "0s"},
		{"--max-header-bytes", "100"}, {"--body-min-rate", "-1"}} {
		if _, err := parseConfig(bad, none, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parseConfig(nil, func(k string) string { return map[string]string{"POMMY_IDLE_TIMEOUT": "later"}[k] }, io.Discard); err == nil {
		t.Error("a malformed POMMY_IDLE_TIMEOUT was accepted")
	}
}

// TestDocsStateTheServerLimits holds docs/api.md's and
// docs/self-hosting.md's tables of limits to the constants the command
// defaults to (and the end-to-end tests use).
func TestDocsStateTheServerLimits(t *testing.T) {
	dur := func(d time.Duration) string {
		if d%time.Minute == 0 {
			return fmt.Sprintf("%d min", d/time.Minute)
		}
		return fmt.Sprintf("%d s", d/time.Second)
	}
	c, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// row finds the table row holding key and checks it holds each of want.
	row := func(doc, name, key string, want ...string) {
		t.Helper()
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "|") && strings.Contains(line, key) {
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: the row of %q does not say %q: %s", name, key, w, line)
					}
				}
				return
			}
		}
		t.Errorf("%s: no row of %q", name, key)
	}
	api := read("api.md")
	mib := func(n int) string { return fmt.Sprintf("%d MiB", n>>20) }
	row(api, "api.md", "request line and headers", fmt.Sprintf("%d KiB", host.DefaultMaxHeaderBytes>>10), "--max-header-bytes")
	row(api, "api.md", "time to send the request line", dur(host.DefaultReadHeaderTimeout), "--read-header-timeout")
	row(api, "api.md", "body of up to", mib(host.PreReadLimit), dur(host.DefaultBodyReadTimeout), "--body-read-timeout")
	row(api, "api.md", "each read of the rest", dur(host.DefaultBodyReadTimeout), "--body-read-timeout")
	row(api, "api.md", "must average at least", fmt.Sprintf("%d KiB/s", host.DefaultBodyMinRate>>10), "--body-min-rate")
	row(api, "api.md", "body size", mib(handlers.MaxRequestBody))
	row(api, "api.md", "a request's deadline", dur(c.timeout), "--timeout", "504")
	row(api, "api.md", "idle kept-alive", dur(host.DefaultIdleTimeout), "--idle-timeout")

	sh := read("self-hosting.md")
	row(sh, "self-hosting.md", "--read-header-timeout", "POMMY_READ_HEADER_TIMEOUT", dur(host.DefaultReadHeaderTimeout))
	row(sh, "self-hosting.md", "--max-header-bytes", "POMMY_MAX_HEADER_BYTES", fmt.Sprintf("%d KiB", host.DefaultMaxHeaderBytes>>10))
	row(sh, "self-hosting.md", "--body-read-timeout", "POMMY_BODY_READ_TIMEOUT", dur(host.DefaultBodyReadTimeout), mib(host.PreReadLimit))
	row(sh, "self-hosting.md", "--body-min-rate", "POMMY_BODY_MIN_RATE", fmt.Sprintf("%d KiB/s", host.DefaultBodyMinRate>>10))
	row(sh, "self-hosting.md", "--timeout", "POMMY_TIMEOUT", dur(c.timeout))
	row(sh, "self-hosting.md", "--idle-timeout", "POMMY_IDLE_TIMEOUT", dur(host.DefaultIdleTimeout))
	for _, w := range []string{mib(handlers.MaxRequestBody), fmt.Sprintf("%d MiB", host.DefaultPreReadMemory>>20)} {
		if !strings.Contains(sh, w) {
			t.Errorf("self-hosting.md does not say %s", w)
		}
	}
}

// TestParseAdmissionControl: the instance queue's bounds come from flags,
// then the environment, then the host's defaults, and nonsense is refused.
func TestParseAdmissionControl(t *testing.T) {
	env := map[string]string{"POMMY_MAX_QUEUE": "12", "POMMY_QUEUE_WAIT": "250ms"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.maxQueue != 12 || c.queueWait != 250*time.Millisecond {
		t.Fatalf("from the environment: %+v, %v", c, err)
	}
	c, err = parseConfig([]string{"--max-queue", "3", "--queue-wait", "2s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.maxQueue != 3 || c.queueWait != 2*time.Second {
		t.Fatalf("flags over the environment: %+v, %v", c, err)
	}
	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil || c.maxQueue != 0 || c.queueWait != time.Second {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for _, bad := range [][]string{{"--max-queue", "-1"}, {"--queue-wait", "0s"}, {"--queue-wait", "-1s"}} {
		if _, err := parseConfig(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parseConfig(nil, func(k string) string { return map[string]string{"POMMY_MAX_QUEUE": "lots"}[k] }, io.Discard); err == nil {
		t.Error("POMMY_MAX_QUEUE=lots accepted")
	}
}

// TestRunRestartKeepsData starts the command twice on the same data
// directory: what the first run stored (a tenant, sealed under the master
// key) is readable by the second, and each run shuts down cleanly.
func TestRunRestartKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the guest")
	}
	dir := t.TempDir()
	module := filepath.Join(dir, "guest.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", module, "pommy.ai/edge/wasm/guest")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, out)
	}
	// The widget's demo page rides along (demo.go), on a port of its own.
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--module", module, "--widget-demo", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		addrc := make(chan string, 1)
		done := make(chan error, 1)
		logs := &syncLog{}
		mailLog := &syncLog{}
		cfg.mailLog = mailLog
		go func() {
			done <- run(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), func(a string) { addrc <- a })
		}()
		var base string
		select {
		case a := <-addrc:
			base = "http://" + a
		case err := <-done:
			t.Fatalf("run %d ended before listening: %v", i, err)
		}
		if i == 0 {
			checkDemoServed(t, logs.String(), base)
		}
		if i == 0 {
			// The shipped guest has no test shortcut to verify the owner's
			// address (which creating an API key needs): follow the link
			// of the verification mail, which the command prints to its
			// log with no mail service configured.
			c := &apitest.Client{Base: base}
			o, _ := c.SignupUnverified(t, "Acme", nil)
			c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": apitest.MailedToken(t, mailLog.String, o.Email)}).Expect(t, 200)
			key = o.NewKey(t, apitest.AllScopes...)
		}
		req, _ := http.NewRequest("POST", base+"/v1/contacts", strings.NewReader(`{"name":"t"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("run %d: creating a contact with the tenant's key: %d", i, resp.StatusCode)
		}
		// A name the server was not told it has (a DNS-rebinding page's)
		// is refused, key or not.
		req, _ = http.NewRequest("GET", base+"/v1/contacts", nil)
		req.Host = "rebind.example:" + base[strings.LastIndex(base, ":")+1:]
		req.Header.Set("Authorization", "Bearer "+key)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("run %d: foreign Host answered %d, want 421", i, resp.StatusCode)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: shutdown: %v", i, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("run %d did not shut down", i)
		}
	}
}

// TestParseStreamFlags: the hub's heartbeat and stream cap come from
// flags, then the environment, then the host's defaults; nonsense is
// refused.
func TestParseStreamFlags(t *testing.T) {
	env := map[string]string{"POMMY_STREAM_HEARTBEAT": "5s", "POMMY_MAX_STREAMS": "200"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.streamHeartbeat != 5*time.Second || c.maxStreams != 200 {
		t.Fatalf("from the environment: %+v, %v", c, err)
	}
	c, err = parseConfig([]string{"--stream-heartbeat", "1s", "--max-streams", "7"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.streamHeartbeat != time.Second || c.maxStreams != 7 {
		t.Fatalf("flags over the environment: %+v, %v", c, err)
	}
	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil || c.streamHeartbeat != host.DefaultStreamHeartbeat || c.maxStreams != host.DefaultMaxStreams {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for _, bad := range [][]string{{"--stream-heartbeat", "0s"}, {"--stream-heartbeat", "-1s"}, {"--max-streams", "0"}, {"--max-streams", "-5"}} {
		if _, err := parseConfig(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
