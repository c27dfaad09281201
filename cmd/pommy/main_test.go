package main

import (
	"bytes"
	"context"
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

	"pommy.ai/edge/tests/apitest"
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
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--module", module}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		addrc := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { addrc <- a })
		}()
		var base string
		select {
		case a := <-addrc:
			base = "http://" + a
		case err := <-done:
			t.Fatalf("run %d ended before listening: %v", i, err)
		}
		if i == 0 {
			_, key = (&apitest.Client{Base: base}).Tenant(t, "Acme")
		}
		req, _ := http.NewRequest("POST", base+"/v1/notes", strings.NewReader(`{"title":"t","body":"b"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("run %d: creating a note with the tenant's key: %d", i, resp.StatusCode)
		}
		// A name the server was not told it has (a DNS-rebinding page's)
		// is refused, key or not.
		req, _ = http.NewRequest("GET", base+"/v1/notes", nil)
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
