//go:build !windows

// Package wrangler runs the edge worker in the real workerd through
// `wrangler dev`, for the workerd smoke suite and the benchmarks.
//
// Start installs wrangler from package-lock.json when node_modules lacks it,
// builds the worker (make -f worker/worker.mk worker; with TestTags, a test
// build that has the test-only routes, outside build/), copies the build into
// a snapshot directory, applies the D1 migrations to a local persistence
// directory, writes the MASTER_KEY secret to an env file, and starts
// `wrangler dev` on a free loopback port in its own process group. It
// returns once the worker answers /healthz. Stop ends the whole process group
// (npx, wrangler and workerd) and removes what Start created.
//
// wrangler dev runs the snapshot with a copy of wrangler.toml that has no
// [build] section: run against the repository's own configuration, it
// rebuilds and reloads the worker whenever a file under worker/, handlers/
// or storage/ changes, so an edit (or a half-finished one that does not
// compile) in the middle of a test or benchmark would swap or break the
// worker under it. The snapshot is exactly what Build built.
package wrangler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TestTags are the build tags of a test build of the worker: only it has the
// test-only routes (/__contract/, /__test/) that POMMY_TEST_ROUTES mounts.
// The shipped worker (build/, wrangler's own build command) has none.
const TestTags = "testroutes"

// ErrUnavailable wraps the error Start returns when Node.js tooling (node,
// npx, npm) is not installed: callers may skip rather than fail.
var ErrUnavailable = errors.New("wrangler: Node.js tooling is not available")

// Options configure one `wrangler dev`.
type Options struct {
	// Root is the repository root (holding wrangler.toml). Empty: the
	// nearest directory at or above the working directory that has one.
	Root string
	// Name labels this instance in logs and errors.
	Name string
	// Vars are --var NAME:VALUE pairs (for example "POMMY_TEST_ROUTES:1").
	Vars []string
	// MasterKey is the MASTER_KEY secret (base64 of 32 bytes). Empty: a
	// new random key, unless NoMasterKey is set.
	MasterKey string
	// NoMasterKey starts the worker without a MASTER_KEY secret (it must
	// then answer 503 not_configured).
	NoMasterKey bool
	// Persist is where wrangler keeps the local D1, KV and R2 data. Empty: a
	// new temporary directory, removed by Stop.
	Persist string
	// SkipBuild skips building the worker (an earlier Start or Build did;
	// wrangler's own [build] step still runs). wrangler is still installed
	// if missing.
	SkipBuild bool
	// Tags are the build tags of the worker Start builds (TestTags for the
	// test routes; empty: the shipped build).
	Tags string
	// BuildDir holds the built worker, which Start builds there unless
	// SkipBuild. Empty: build/ under Root for the shipped build; for a
	// tagged one, a new temporary directory (removed by Stop), so that a
	// test build never takes the place of what ships.
	BuildDir string
	// SkipMigrations skips applying the D1 migrations.
	SkipMigrations bool
	// StartTimeout bounds the wait for the worker to answer (default 3m:
	// the first start boots workerd and compiles the module).
	StartTimeout time.Duration
	// Logf receives progress lines (default: none).
	Logf func(format string, args ...any)
}

// Dev is one running `wrangler dev`.
type Dev struct {
	// URL is the worker's base URL, http://127.0.0.1:PORT.
	URL  string
	Name string

	root, config, persist string // for D1Exec

	cmd      *exec.Cmd
	exited   chan struct{}
	log      *syncBuffer
	cleanup  []string // directories Stop removes
	stopOnce sync.Once
}

// Available reports whether node, npx and npm are on PATH; the error wraps
// ErrUnavailable.
func Available() error {
	for _, tool := range []string{"node", "npx", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s is not on PATH (the worker runs in workerd through wrangler, installed with npm)", ErrUnavailable, tool)
		}
	}
	return nil
}

// Build installs wrangler if node_modules lacks it and builds the worker
// into dir with the given build tags (make -f worker/worker.mk worker
// WORKER_BUILD=dir WORKER_TAGS=tags). Empty dir and tags: the shipped
// build, into build/.
func Build(ctx context.Context, root, dir, tags string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := Available(); err != nil {
		return err
	}
	for _, tool := range []string{"go", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("wrangler: %s is not on PATH; building the worker needs it", tool)
		}
	}
	if err := EnsureInstalled(ctx, root, logf); err != nil {
		return err
	}
	args := []string{"--no-print-directory", "-f", "worker/worker.mk", "worker"}
	if dir != "" {
		args = append(args, "WORKER_BUILD="+dir)
	}
	if tags != "" {
		args = append(args, "WORKER_TAGS="+tags)
	}
	logf("building the worker: make %s", strings.Join(args[1:], " "))
	return run(ctx, root, 5*time.Minute, "make", args...)
}

// EnsureInstalled runs npm ci when node_modules lacks wrangler.
func EnsureInstalled(ctx context.Context, root string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := Available(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", ".bin", "wrangler")); err == nil {
		return nil
	}
	logf("installing wrangler with npm ci (pinned in package-lock.json)...")
	return run(ctx, root, 10*time.Minute, "npm", "ci", "--no-audit", "--no-fund")
}

// NewMasterKey returns a random MASTER_KEY value.
func NewMasterKey() string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// Start prepares and starts `wrangler dev` and waits until the worker
// answers. A start that loses its port to another process is retried on
// new ports.
func Start(ctx context.Context, o Options) (_ *Dev, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Name == "" {
		o.Name = "worker"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Root == "" {
		if o.Root, err = FindRoot("."); err != nil {
			return nil, err
		}
	}
	var tmp []string
	defer func() {
		if err != nil {
			for _, d := range tmp {
				os.RemoveAll(d)
			}
		}
	}()
	switch {
	case o.BuildDir != "":
	case o.Tags == "":
		o.BuildDir = filepath.Join(o.Root, "build")
	case o.SkipBuild:
		return nil, errors.New("wrangler: a tagged worker with SkipBuild needs the BuildDir it was built into")
	default:
		if o.BuildDir, err = os.MkdirTemp("", "pommy-wrangler-build-"); err != nil {
			return nil, err
		}
		tmp = append(tmp, o.BuildDir)
	}
	if o.SkipBuild {
		err = EnsureInstalled(ctx, o.Root, o.Logf)
	} else {
		err = Build(ctx, o.Root, o.BuildDir, o.Tags, o.Logf)
	}
	if err != nil {
		return nil, err
	}

	snap, err := snapshot(o.Root, o.BuildDir)
	if snap != "" {
		tmp = append(tmp, snap)
	}
	if err != nil {
		return nil, err
	}
	config := filepath.Join(snap, "wrangler.toml")
	if o.Persist == "" {
		d, err := os.MkdirTemp("", "pommy-wrangler-persist-")
		if err != nil {
			return nil, err
		}
		tmp = append(tmp, d)
		o.Persist = d
	}
	if !o.SkipMigrations {
		o.Logf("applying D1 migrations to the local database in %s", o.Persist)
		if err := run(ctx, o.Root, 2*time.Minute, "npx", "--no-install", "wrangler", "d1", "migrations", "apply", "DB", "--local", "--config", config, "--persist-to", o.Persist); err != nil {
			return nil, err
		}
	}
	secrets, err := os.MkdirTemp("", "pommy-wrangler-env-")
	if err != nil {
		return nil, err
	}
	tmp = append(tmp, secrets)
	envFile := filepath.Join(secrets, "dev.env")
	env := ""
	if !o.NoMasterKey {
		if o.MasterKey == "" {
			o.MasterKey = NewMasterKey()
		}
		env = "MASTER_KEY=" + o.MasterKey + "\n"
	}
	if err := os.WriteFile(envFile, []byte(env), 0o600); err != nil {
		return nil, err
	}

	for attempt := 1; ; attempt++ {
		d, ready, err := try(ctx, o, config, envFile)
		if err != nil {
			return nil, err
		}
		if ready {
			d.cleanup = tmp
			return d, nil
		}
		out := d.Output(16 << 10)
		d.Stop() // whatever of the process group is left
		if attempt < 3 && (strings.Contains(out, "EADDRINUSE") || strings.Contains(out, "address already in use")) {
			o.Logf("wrangler dev (%s) lost its port; retrying", o.Name)
			continue
		}
		return nil, fmt.Errorf("wrangler dev (%s) exited before it was ready:\n%s", o.Name, out)
	}
}

func try(ctx context.Context, o Options, config, envFile string) (*Dev, bool, error) {
	port, err := freePort()
	if err != nil {
		return nil, false, err
	}
	inspector, err := freePort()
	if err != nil {
		return nil, false, err
	}
	args := []string{"--no-install", "wrangler", "dev", "--config", config,
		"--ip", "127.0.0.1", "--port", fmt.Sprint(port),
		"--inspector-ip", "127.0.0.1", "--inspector-port", fmt.Sprint(inspector),
		"--persist-to", o.Persist, "--env-file", envFile,
		"--test-scheduled", "--show-interactive-dev-session=false", "--log-level", "info"}
	for _, v := range o.Vars {
		args = append(args, "--var", v)
	}
	cmd := exec.Command("npx", args...)
	cmd.Dir = o.Root
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &Dev{Name: o.Name, URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd,
		exited: make(chan struct{}), log: &syncBuffer{}, root: o.Root, config: config, persist: o.Persist}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	o.Logf("starting wrangler dev (%s) on %s", o.Name, d.URL)
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("starting wrangler: %w", err)
	}
	go func() { cmd.Wait(); close(d.exited) }()

	deadline := time.Now().Add(o.StartTimeout)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-d.exited:
			return d, false, nil
		case <-ctx.Done():
			d.Stop()
			return nil, false, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			out := d.Output(16 << 10)
			d.Stop()
			return nil, false, fmt.Errorf("wrangler dev (%s) not ready after %v:\n%s", o.Name, o.StartTimeout, out)
		}
		resp, err := client.Get(d.URL + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Any answer from the worker means it runs (a misconfigured
			// one answers 503); a wrangler error page would be 500 or 502.
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
				return d, true, nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// buildFiles are what `make -f worker/worker.mk worker` writes into its
// build directory and wrangler serves.
var buildFiles = []string{"entry.mjs", "worker.mjs", "runtime.mjs", "wasm_exec.js", "app.wasm"}

// snapshot copies the worker built into build into a new directory with a
// copy of wrangler.toml that points at it, has an absolute migrations_dir
// and no [build] section (so wrangler neither rebuilds nor watches the
// sources).
func snapshot(root, build string) (string, error) {
	dir, err := os.MkdirTemp("", "pommy-wrangler-worker-")
	if err != nil {
		return "", err
	}
	for _, f := range buildFiles {
		b, err := os.ReadFile(filepath.Join(build, f))
		if err != nil {
			return dir, fmt.Errorf("wrangler: the worker is not built in %s (make -f worker/worker.mk worker): %w", build, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return dir, err
		}
	}
	toml, err := os.ReadFile(filepath.Join(root, "wrangler.toml"))
	if err != nil {
		return dir, err
	}
	var out []string
	inBuild, sawMain := false, false
	for _, line := range strings.Split(string(toml), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			inBuild = t == "[build]"
		}
		if inBuild {
			continue
		}
		switch key, _, _ := strings.Cut(t, "="); strings.TrimSpace(key) {
		case "main":
			line, sawMain = `main = "entry.mjs"`, true
		case "migrations_dir":
			line = fmt.Sprintf("migrations_dir = %q", filepath.Join(root, "storage", "migrations"))
		}
		out = append(out, line)
	}
	if !sawMain {
		return dir, errors.New("wrangler: wrangler.toml has no main entry")
	}
	return dir, os.WriteFile(filepath.Join(dir, "wrangler.toml"), []byte(strings.Join(out, "\n")), 0o644)
}

// D1Exec runs one SQL statement on the running worker's local D1 database
// with `wrangler d1 execute --local`, for fixtures a home without test
// routes offers no other way to make (the bench's verified owners).
func (d *Dev) D1Exec(ctx context.Context, sql string) error {
	return run(ctx, d.root, 2*time.Minute, "npx", "--no-install", "wrangler", "d1", "execute", "DB", "--local",
		"--config", d.config, "--persist-to", d.persist, "--command", sql)
}

// Stop ends the whole process group (npx, wrangler, workerd): SIGTERM, then
// SIGKILL if it lingers. It removes the directories Start created. Safe to
// call more than once.
func (d *Dev) Stop() {
	d.stopOnce.Do(func() {
		pgid := d.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-d.exited
		}
		// workerd may outlive its parent briefly; make sure the group is gone.
		syscall.Kill(-pgid, syscall.SIGKILL)
		for _, dir := range d.cleanup {
			os.RemoveAll(dir)
		}
	})
}

// Output returns the last n bytes of wrangler's combined output.
func (d *Dev) Output(n int) string { return d.log.tail(n) }

// Exited reports whether the wrangler process has ended.
func (d *Dev) Exited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// baseEnv quiets wrangler: no metrics, no prompts, no colours.
func baseEnv() []string {
	return append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=true", "NO_COLOR=1", "FORCE_COLOR=0")
}

// run runs a command in dir in its own process group (killed whole on
// timeout) and returns its output in the error if it fails.
func run(ctx context.Context, dir string, timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
