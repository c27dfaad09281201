// Command guest is the Pommy Edge application built as a WebAssembly
// reactor for the local home:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o build/guest.wasm ./wasm/guest
//
// The native host (wasm/host) instantiates it with wazero and calls its
// exports: pommy_v1_handle for each HTTP request and pommy_v1_scheduled for
// the periodic work. Every storage port is forwarded to the host over the
// pommy_v1 ABI (wasm/abi/ABI.md), where the native adapters run.
//
// Nothing here may rely on state surviving between exports: the host may
// give each request a fresh instance (as the edge does), and goroutines do
// not run between exports. State built lazily (the handler, the platform)
// is a cache, never a store.
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// ConfigEnv is the environment variable through which the host passes
// handlers.Config, as JSON, in the module's WASI environment.
const ConfigEnv = "POMMY_CONFIG"

var (
	setupOnce sync.Once
	platform  storage.Platform
	config    handlers.Config
	handler   http.Handler
)

func setup(c *client) {
	setupOnce.Do(func() {
		if s := os.Getenv(ConfigEnv); s != "" {
			if err := json.Unmarshal([]byte(s), &config); err != nil {
				// A host that passes a config we cannot read is
				// misconfigured; serving with defaults would hide it.
				panic("guest: bad " + ConfigEnv + ": " + err.Error())
			}
		}
		if err := config.Check(); err != nil {
			// Test routes asked of a guest built without them: refuse to
			// start (the host logs this line) rather than serve a module
			// other than the one the caller believes it runs.
			panic("guest: " + ConfigEnv + ": " + err.Error())
		}
		if config.Version == "" {
			config.Version = version
		}
		slog.SetDefault(slog.New(&hostLog{c: c}))
		platform = newPlatform(c)
		handler = handlers.New(platform, config)
	})
}

func app(c *client) http.Handler {
	setup(c)
	return handler
}

// runScheduled runs a scheduled task: the periodic work, or due jobs.
func runScheduled(ctx context.Context, c *client, task string) error {
	setup(c)
	if task == abi.TaskJobs {
		_, err := handlers.RunJobs(ctx, platform, config, handlers.JobOptions{})
		return err
	}
	return handlers.Scheduled(ctx, platform, config)
}

// main is not run in a reactor (-buildmode=c-shared); the host calls the
// exports instead. It exists because package main needs it.
func main() {}
