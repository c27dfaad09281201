# worker/worker.mk: the edge home's build, local dev server and workerd
# smoke test. The top-level Makefile includes it; it also works alone from
# the repository root: make -f worker/worker.mk worker
#
#   worker        build build/app.wasm (GOOS=js GOARCH=wasm), syumai's
#                 JavaScript glue (worker.mjs, runtime.mjs, wasm_exec.js)
#                 and the entry module (entry.mjs: worker/js/entry.mjs,
#                 wrangler.toml's main, with the realtime Durable Object);
#                 WORKER_TAGS=testroutes makes a test build (the test-only
#                 routes), which the test suites write elsewhere
#                 (WORKER_BUILD=dir): build/ holds what ships
#   dev           run the worker in the real workerd (wrangler dev) on
#                 http://127.0.0.1:$(WORKER_DEV_PORT) with local D1/KV/R2
#   test-workerd  the smoke suite: go test ./tests/workerd/
#   worker-size   print build/app.wasm raw and gzip sizes
#   worker-deps   npm ci when node_modules/.bin/wrangler or node_modules/standardwebhooks is missing

WORKER_BUILD    ?= build
WORKER_DEV_PORT ?= 8788
WORKER_VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
WORKER_LDFLAGS  ?= -s -w -X main.version=$(WORKER_VERSION)
WORKER_TAGS     ?=
WRANGLER        ?= npx --no-install wrangler
WRANGLER_ENV    := WRANGLER_SEND_METRICS=false

.PHONY: worker dev test-workerd worker-size worker-deps

worker:
	@echo "building the edge worker (GOOS=js GOARCH=wasm$(if $(WORKER_TAGS), -tags $(WORKER_TAGS)), $(WORKER_VERSION)) into $(WORKER_BUILD)/..."
	@mkdir -p $(WORKER_BUILD)
	@# workers-assets-gen empties its output directory, so generate elsewhere
	@# and copy: build/ also holds other homes' artifacts.
	@tmp=$$(mktemp -d) && \
	  go run github.com/syumai/workers/cmd/workers-assets-gen -mode=go -o "$$tmp/assets" && \
	  cp "$$tmp/assets/worker.mjs" "$$tmp/assets/runtime.mjs" "$$tmp/assets/wasm_exec.js" $(WORKER_BUILD)/ && \
	  rm -rf "$$tmp"
	@cp worker/js/entry.mjs $(WORKER_BUILD)/entry.mjs
	GOOS=js GOARCH=wasm GOFLAGS=-trimpath scripts/progress "building the worker" go build -tags='$(WORKER_TAGS)' -ldflags='$(WORKER_LDFLAGS)' -o $(WORKER_BUILD)/app.wasm.tmp ./worker
	@mv $(WORKER_BUILD)/app.wasm.tmp $(WORKER_BUILD)/app.wasm
	@$(MAKE) --no-print-directory -f worker/worker.mk worker-size

worker-size:
	@raw=$$(wc -c < $(WORKER_BUILD)/app.wasm); gz=$$(gzip -9 -c $(WORKER_BUILD)/app.wasm | wc -c); \
	  echo "$(WORKER_BUILD)/app.wasm: $$raw bytes raw, $$gz bytes gzip -9 (Workers limit: 3 MiB gzip on Free, 10 MiB on Paid)"

# worker-deps installs wrangler (and workerd) when node_modules is missing.
worker-deps:
	@if [ ! -x node_modules/.bin/wrangler ] || [ ! -d node_modules/standardwebhooks ]; then \
	  echo "installing wrangler and the webhook test receiver's library with npm ci (versions pinned in package-lock.json)..."; \
	  scripts/progress "installing wrangler" npm ci --no-audit --no-fund; \
	fi

dev: worker-deps worker
	@if ! grep -qs '^MASTER_KEY=' .dev.vars; then \
	  echo "writing a new random MASTER_KEY into .dev.vars (gitignored; local only)..."; \
	  umask 077; printf 'MASTER_KEY=%s\n' "$$(head -c 32 /dev/urandom | base64 -w0)" >> .dev.vars; \
	fi
	@echo "applying D1 migrations (storage/migrations) to the local database in .wrangler/..."
	CI=true $(WRANGLER_ENV) $(WRANGLER) d1 migrations apply DB --local
	@echo "starting wrangler dev on http://127.0.0.1:$(WORKER_DEV_PORT) (Ctrl-C stops it)..."
	$(WRANGLER_ENV) $(WRANGLER) dev --local --ip 127.0.0.1 --port $(WORKER_DEV_PORT)

test-workerd: worker-deps
	@echo "running the workerd smoke suite (go test ./tests/workerd/; it builds the worker and starts wrangler dev)..."
	go test -count=1 -v -timeout 15m ./tests/workerd/
