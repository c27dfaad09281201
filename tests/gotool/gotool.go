// Package gotool builds the real servers the test suites run beside the
// platform (the S3-compatible server, the SMTP server) from the Go module
// proxy, once per machine, and keeps them between runs.
package gotool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Tool is one program to build with `go install Module@Version`.
type Tool struct {
	// Name is the installed binary's name (the module's last element).
	Name    string
	Module  string
	Version string
	// What says what the tool is for, in the build's progress lines.
	What string
	// Override names an environment variable that, when set, is the path
	// of a binary to use instead of building one.
	Override string
	// Env are extra environment entries of the build (CGO_ENABLED=0).
	Env []string
}

// progressEvery is how often a running build says it is still running.
const progressEvery = 20 * time.Second

// Binary returns the path of the tool, building it when missing.
// Concurrent callers (parallel test binaries) build it once; the others
// wait on a file lock. A build prints a line when it starts and one every
// 20 s while it runs, so a first run never looks hung.
func (t Tool) Binary() (string, error) {
	if t.Override != "" {
		if p := os.Getenv(t.Override); p != "" {
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s: %w", t.Override, err)
			}
			return p, nil
		}
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, exe(t.Name+"-"+t.Version))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, "."+t.Name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	fmt.Fprintf(os.Stderr, "%s: building %s@%s (%s) from the Go module proxy into %s; the first build takes a few minutes\n",
		t.Name, t.Module, t.Version, t.What, dir)
	gobin, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.Command(Go(), "install", t.Module+"@"+t.Version)
	cmd.Dir = os.TempDir() // outside any module
	cmd.Env = append(append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-mod=mod"), t.Env...)
	var out LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v", t.Module, t.Version, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case err = <-done:
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "%s: ... still building (%s)\n", t.Name, time.Since(start).Round(time.Second))
			continue
		}
		break
	}
	if err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", t.Module, t.Version, err, out.String())
	}
	if err := os.Rename(filepath.Join(gobin, exe(t.Name)), bin); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "%s: built %s in %s\n", t.Name, bin, time.Since(start).Round(time.Second))
	return bin, nil
}

func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

// Dir is where built tools are kept: $POMMY_TOOLS_DIR/bin, or
// pommy-tools/bin beside the Go build cache (so `go clean -cache` keeps
// them, and every checkout of the repository shares them).
func Dir() (string, error) {
	if d := os.Getenv("POMMY_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "bin"), nil
	}
	out, err := exec.Command(Go(), "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	cache := strings.TrimSpace(string(out))
	if cache == "" || cache == "off" {
		return "", errors.New("GOCACHE is off; set POMMY_TOOLS_DIR")
	}
	return filepath.Join(filepath.Dir(cache), "pommy-tools", "bin"), nil
}

// Go is the go command of the toolchain running the tests.
func Go() string {
	p := filepath.Join(runtime.GOROOT(), "bin", exe("go"))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// LogBuffer keeps the first MiB of what a server or a build printed, for
// error messages; safe for concurrent writers.
type LogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *LogBuffer) WriteString(s string) { l.Write([]byte(s)) }

func (l *LogBuffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
