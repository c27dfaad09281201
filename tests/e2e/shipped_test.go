package e2e

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/wasm/host"
	"pommy.ai/edge/wasm/host/local"
)

// TestShippedGuest runs the guest built as `make guest` builds it, without
// the test-only routes that every other test here uses: asked for them, it
// refuses to start and says why; otherwise their paths are unknown routes.
func TestShippedGuest(t *testing.T) {
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-ldflags=-X main.version=e2e-shipped", "-o", out, "pommy.ai/edge/wasm/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the shipped guest: %v\n%s", err, b)
	}
	shipped, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := local.Open(ctx, local.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	start := func(cfg handlers.Config) (*host.Host, *syncBuffer, error) {
		logs := &syncBuffer{}
		h, err := host.New(ctx, host.Options{Module: shipped, CacheDir: cacheDir, Platform: p.Platform, Config: cfg,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		return h, logs, err
	}

	t.Run("test routes requested", func(t *testing.T) {
		h, logs, err := start(handlers.Config{TestRoutes: true})
		if err == nil {
			h.Close(ctx)
			t.Fatal("the shipped guest started with Config.TestRoutes set; want a refusal")
		}
		if !strings.Contains(logs.String(), handlers.ErrNoTestRoutes.Error()) {
			t.Errorf("host.New: %v; the log does not say why:\n%s", err, logs)
		}
	})

	t.Run("no test routes", func(t *testing.T) {
		h, logs, err := start(handlers.Config{})
		if err != nil {
			t.Fatalf("host.New: %v\n%s", err, logs)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(func() { srv.Close(); h.Close(ctx) })
		home := &home{url: srv.URL, host: h, log: logs}
		if r := home.get(t, "/healthz"); r.status != 200 {
			t.Fatalf("GET /healthz: %s", r)
		}
		for _, r := range [][2]string{
			{"GET", "/__contract/sql"}, {"GET", "/__contract/keys"}, {"POST", "/__test/trap"},
			{"GET", "/__test/aead?bytes=1"}, {"GET", "/__test/argon2"}, {"GET", "/__test/spin?ms=0"}, {"GET", "/__test/sleep?ms=0"},
		} {
			if got := home.do(t, r[0], r[1], nil); got.status != 404 || got.errorCode() != "not_found" {
				t.Errorf("%s %s on the shipped guest: %s, want 404 not_found", r[0], r[1], got)
			}
		}
		if s := h.Stats(); s.Traps != 0 || s.Discarded != 0 {
			t.Errorf("an instance trapped or was discarded: %+v", s)
		}
	})
}
