package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
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
	c, err := parseConfig([]string{"--pool", "7", "--instance-per-request"}, func(k string) string { return env[k] }, &help)
	if err != nil {
		t.Fatal(err)
	}
	if c.addr != "127.0.0.1:9000" || c.pool != 7 || !c.perRequest || c.timeout != 5*time.Second ||
		c.s3.SecretKey != "sekrit" || len(c.egressAllow) != 2 || c.egressAllow[1] != "*.b.example" ||
		c.clientIPHdr != "X-Real-IP" {
		t.Fatalf("config = %+v", c)
	}
	if _, err := parseConfig([]string{"--help"}, func(k string) string { return env[k] }, &help); err == nil {
		t.Fatal("--help returned no error")
	}
	if strings.Contains(help.String(), "sekrit") {
		t.Fatal("--help printed the S3 secret")
	}
	for _, bad := range []map[string]string{{"POMMY_POOL": "many"}, {"POMMY_TIMEOUT": "soon"}, {"POMMY_S3_ENDPOINT": "http://x"}} {
		if _, err := parseConfig(nil, func(k string) string { return bad[k] }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
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
