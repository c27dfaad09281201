package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// defaultModule is where `make guest` puts the guest.
const defaultModule = "build/guest.wasm"

// loadModule returns the guest's bytes and says where they came from: the
// file named by --module, else the guest embedded at build time, else
// build/guest.wasm. In a source checkout build/guest.wasm is (re)built first
// when any Go file it is made from is newer, so `go run ./cmd/pommy` never
// serves stale code.
func loadModule(path string, log *slog.Logger) ([]byte, string, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("--module: %w", err)
		}
		return b, path, nil
	}
	if len(embeddedGuest) > 0 {
		return embeddedGuest, "embedded", nil
	}
	if err := buildIfStale(defaultModule, log); err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(defaultModule)
	if err != nil {
		return nil, "", fmt.Errorf("no guest module: %w; build it with `make guest` or pass --module", err)
	}
	return b, defaultModule, nil
}

// buildIfStale rebuilds the guest when run from the source tree and a Go
// file of its packages (or go.mod/go.sum) is newer than out. Outside a
// checkout, or without the go tool, it does nothing.
func buildIfStale(out string, log *slog.Logger) error {
	if _, err := os.Stat("wasm/guest"); err != nil {
		return nil
	}
	if _, err := exec.LookPath("go"); err != nil {
		return nil
	}
	wasip1 := append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if st, err := os.Stat(out); err == nil {
		// The packages the guest is made of, as the go tool sees them.
		list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./wasm/guest")
		list.Env = wasip1
		dirs, err := list.Output()
		if err != nil {
			return fmt.Errorf("checking whether %s is up to date: %w", out, err)
		}
		if !newerThan(st.ModTime().UnixNano(), append(strings.Fields(string(dirs)), "go.mod", "go.sum")) {
			return nil
		}
		log.Info("the guest's sources changed; rebuilding", "module", out)
	} else {
		log.Info("no guest module yet; building it (takes a little while the first time)", "module", out)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./wasm/guest")
	build.Env = wasip1
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the guest: %w\n%s", err, stderr.String())
	}
	return nil
}

// newerThan reports whether any of paths (files, or directories whose .go
// files count) was modified after t.
func newerThan(t int64, paths []string) bool {
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !st.IsDir() {
			if st.ModTime().UnixNano() > t {
				return true
			}
			continue
		}
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			if info, err := e.Info(); err == nil && info.ModTime().UnixNano() > t {
				return true
			}
		}
	}
	return false
}
