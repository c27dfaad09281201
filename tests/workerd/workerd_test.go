//go:build !windows

// Package workerd is the smoke suite of the edge home: it builds the js/wasm
// worker, runs it in the real workerd through `wrangler dev` (local D1, KV
// and R2 in a fresh temporary directory), and checks it end to end:
// /healthz reports the edge home, every storage contract suite passes
// against the edge adapters (through the application's /__contract/ route),
// the cron trigger runs, and a worker without its master key answers 503.
//
// It needs Node.js and npm (wrangler is installed from package-lock.json
// when node_modules is missing), Go and make. Without node or npx it skips;
// any other problem is a failure.
//
//	go test -count=1 -v ./tests/workerd/      (or: make test-workerd)
package workerd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pommy.ai/edge/storage/storagetest"
)

// suites are the storage contract suites every home runs; the handlers
// serve each at /__contract/{suite} when test routes are on.
var suites = []string{"sql", "kv", "blobs", "keys", "http"}

const (
	startTimeout = 3 * time.Minute // first start builds the worker and boots workerd
	suiteTimeout = 3 * time.Minute
)

func TestWorkerd(t *testing.T) {
	root := repoRoot(t)
	for _, tool := range []string{"node", "npx", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH: the workerd smoke suite runs the worker with wrangler (Node.js and npm)", tool)
		}
	}
	for _, tool := range []string{"go", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH; the smoke suite builds the worker with it", tool)
		}
	}
	ensureWrangler(t, root)

	t.Log("building the worker: make -f worker/worker.mk worker")
	run(t, root, 5*time.Minute, nil, "make", "--no-print-directory", "-f", "worker/worker.mk", "worker")

	persist := t.TempDir()
	t.Log("applying D1 migrations to a fresh local database")
	run(t, root, 2*time.Minute, nil, "npx", "--no-install", "wrangler", "d1", "migrations", "apply", "DB", "--local", "--persist-to", persist)

	// The outbound-HTTP suite calls this loopback server from inside workerd.
	contract := httptest.NewServer(storagetest.EchoHandler())
	t.Cleanup(contract.Close)

	envFile := filepath.Join(t.TempDir(), "test.env")
	writeFile(t, envFile, "MASTER_KEY="+newMasterKey(t)+"\n")
	w := startWrangler(t, root, "configured", persist, envFile,
		"POMMY_TEST_ROUTES:1", "POMMY_CONTRACT_HTTP_URL:"+contract.URL)

	t.Run("healthz", func(t *testing.T) {
		status, body := w.get(t, "/healthz", 30*time.Second)
		if status != http.StatusOK {
			t.Fatalf("GET /healthz: %d %s", status, body)
		}
		var h struct{ Status, Home, Version string }
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("GET /healthz: %v: %s", err, body)
		}
		if h.Home != "edge" || h.Status != "ok" || h.Version == "" {
			t.Errorf("GET /healthz = %s, want status ok, home edge and a version", body)
		}
	})

	for _, suite := range suites {
		t.Run("contract/"+suite, func(t *testing.T) {
			status, body := w.get(t, "/__contract/"+suite, suiteTimeout)
			if status != http.StatusOK {
				t.Fatalf("GET /__contract/%s: %d %s", suite, status, body)
			}
			var results []storagetest.Result
			if err := json.Unmarshal(body, &results); err != nil {
				t.Fatalf("GET /__contract/%s: %v: %s", suite, err, body)
			}
			if len(results) == 0 {
				t.Fatalf("GET /__contract/%s ran no case", suite)
			}
			for _, r := range results {
				t.Run(r.Name, func(t *testing.T) {
					for _, l := range r.Logs {
						t.Log(l)
					}
					for _, f := range r.Failures {
						t.Error(f)
					}
					if !r.Passed && len(r.Failures) == 0 {
						t.Error("failed without a message")
					}
				})
			}
		})
	}

	t.Run("cron", func(t *testing.T) {
		// wrangler's --test-scheduled route fires the scheduled handler.
		status, body := w.get(t, "/__scheduled?cron=*/5+*+*+*+*", time.Minute)
		if status != http.StatusOK || !strings.Contains(string(body), "Ran scheduled event") {
			t.Fatalf("scheduled run: %d %s", status, body)
		}
	})

	t.Run("body-limit", func(t *testing.T) {
		// A declared length over the application's limit is refused before
		// any route reads the body.
		req, _ := http.NewRequest(http.MethodPost, w.base+"/v1/notes", io.LimitReader(zeros{}, 64<<20))
		req.ContentLength = 64 << 20
		status, body := w.do(t, req, time.Minute)
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("POST of 64 MiB: %d %s, want 413", status, body)
		}
	})

	// A worker whose MASTER_KEY secret is missing must say so on every
	// request, with a 503 in the API's error shape, and must not crash.
	t.Run("no-master-key", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.env")
		writeFile(t, empty, "")
		bare := startWrangler(t, root, "unconfigured", t.TempDir(), empty)
		for _, path := range []string{"/healthz", "/v1/notes"} {
			status, body := bare.get(t, path, 30*time.Second)
			var e struct {
				Error struct{ Code, Message string }
			}
			if status != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil ||
				e.Error.Code != "not_configured" || !strings.Contains(e.Error.Message, "MASTER_KEY") {
				t.Errorf("GET %s without MASTER_KEY: %d %s, want 503 not_configured naming MASTER_KEY", path, status, body)
			}
		}
		// The cron run must fail visibly (and promptly), not report success.
		status, body := bare.get(t, "/__scheduled?cron=*/5+*+*+*+*", time.Minute)
		if status == http.StatusOK {
			t.Errorf("scheduled run without MASTER_KEY reported success: %s", body)
		}
		// And the worker still answers afterwards.
		if status, body := bare.get(t, "/healthz", 30*time.Second); status != http.StatusServiceUnavailable {
			t.Errorf("GET /healthz after a failed scheduled run: %d %s", status, body)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wrangler.toml")); err != nil {
		t.Fatalf("repository root not found from %s: %v", dir, err)
	}
	return dir
}

func ensureWrangler(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "node_modules", ".bin", "wrangler")); err == nil {
		return
	}
	t.Log("installing wrangler with npm ci (pinned in package-lock.json)...")
	run(t, root, 10*time.Minute, nil, "npm", "ci", "--no-audit", "--no-fund")
}

func newMasterKey(t *testing.T) string {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// baseEnv quiets wrangler: no metrics, no prompts, no colours.
func baseEnv() []string {
	return append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=true", "NO_COLOR=1", "FORCE_COLOR=0")
}

// run runs a command in dir and fails the test with its output if it fails.
func run(t *testing.T, dir string, timeout time.Duration, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(baseEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// wrangler is one `wrangler dev` process group serving the worker.
type wrangler struct {
	name   string
	base   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startWrangler starts `wrangler dev` on loopback with local bindings
// persisted under persist, secrets from envFile and the given --var pairs,
// waits until /healthz answers, and stops the process group at cleanup. A
// start that loses its port to another process is retried on new ports.
func startWrangler(t *testing.T, root, name, persist, envFile string, vars ...string) *wrangler {
	t.Helper()
	for attempt := 1; ; attempt++ {
		w, ready := tryWrangler(t, root, name, persist, envFile, vars)
		if ready {
			return w
		}
		out := w.log.tail(16 << 10)
		if attempt < 3 && (strings.Contains(out, "EADDRINUSE") || strings.Contains(out, "address already in use")) {
			t.Logf("wrangler dev (%s) lost its port; retrying", name)
			continue
		}
		t.Fatalf("wrangler dev (%s) exited before it was ready:\n%s", name, out)
	}
}

func tryWrangler(t *testing.T, root, name, persist, envFile string, vars []string) (*wrangler, bool) {
	t.Helper()
	port := freePort(t)
	args := []string{"--no-install", "wrangler", "dev",
		"--ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--inspector-ip", "127.0.0.1", "--inspector-port", fmt.Sprint(freePort(t)),
		"--persist-to", persist, "--env-file", envFile,
		"--test-scheduled", "--show-interactive-dev-session=false", "--log-level", "info"}
	for _, v := range vars {
		args = append(args, "--var", v)
	}
	cmd := exec.Command("npx", args...)
	cmd.Dir = root
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w := &wrangler{name: name, base: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd,
		exited: make(chan struct{}), log: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = w.log, w.log
	t.Logf("starting wrangler dev (%s) on %s", name, w.base)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting wrangler: %v", err)
	}
	go func() { cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		w.stop()
		if t.Failed() {
			t.Logf("wrangler dev (%s) output, last 16 KiB:\n%s", name, w.log.tail(16<<10))
		}
	})

	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-w.exited:
			return w, false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("wrangler dev (%s) not ready after %v:\n%s", name, startTimeout, w.log.tail(16<<10))
		}
		resp, err := client.Get(w.base + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Any answer from the worker means it runs (a misconfigured
			// one answers 503); a wrangler error page would be 500 or 502.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
				return w, true
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// stop ends the whole process group (npx, wrangler, workerd): SIGTERM, then
// SIGKILL if it lingers.
func (w *wrangler) stop() {
	pgid := w.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-w.exited
	}
	// workerd may outlive its parent briefly; make sure the group is gone.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

func (w *wrangler) get(t *testing.T, path string, timeout time.Duration) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.do(t, req, timeout)
}

func (w *wrangler) do(t *testing.T, req *http.Request, timeout time.Duration) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, body
}

// syncBuffer collects a process's output for failure reports.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return string(s)
}
