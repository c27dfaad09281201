# Pommy Edge. `make run` starts the local platform; `make test` runs every
# test; `make bench` writes BENCHMARKS.md. Each target fetches what it lacks.

SHELL   := /bin/bash
GO      ?= go
BUILD   := build
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
export GOFLAGS := -trimpath

.PHONY: all run guest host test test-js test-cross test-mailpit vet fuzz bench clean help browser-deps

all: guest host

help:
	@echo "make run     build and start the local platform on http://127.0.0.1:8787 (data in ./data)"
	@echo "make test    unit, contract, end-to-end (wazero) and workerd smoke tests"
	@echo "make bench   measure size, speed and memory into BENCHMARKS.md"
	@echo "make dev     run the edge worker in workerd (wrangler dev) on 127.0.0.1:8788"
	@echo "make fuzz    run every fuzz target (ABI, strict JSON, credentials, paths), FUZZTIME=10s each"

# scripts/progress prints a line every 20 s while a long step runs.
PROGRESS := scripts/progress

deps:
	@echo "==> fetching Go modules (go mod download)"
	@$(PROGRESS) "fetching Go modules" $(GO) mod download

# The wasip1 guest: the application as a reactor module for the local host.
guest: deps
	@echo "==> building the wasip1 guest ($(BUILD)/guest.wasm; the first build compiles for Wasm and takes a few minutes)"
	@mkdir -p $(BUILD)
	@GOOS=wasip1 GOARCH=wasm $(PROGRESS) "building the guest" $(GO) build -buildmode=c-shared -ldflags="$(LDFLAGS)" -o $(BUILD)/guest.wasm ./wasm/guest

# The native host that runs the guest with wazero.
host: deps
	@echo "==> building the host ($(BUILD)/pommy)"
	@mkdir -p $(BUILD)
	@$(PROGRESS) "building the host" $(GO) build -ldflags="$(LDFLAGS)" -o $(BUILD)/pommy ./cmd/pommy

run: guest host
	@$(BUILD)/pommy --module $(BUILD)/guest.wasm $(ARGS)

vet: deps
	@echo "==> go vet (native, wasip1, js)"
	@$(GO) vet ./...
	@GOOS=wasip1 GOARCH=wasm $(GO) vet ./handlers/... ./storage/... ./wasm/guest/... ./wasm/abi/...
	@GOOS=js GOARCH=wasm $(GO) vet ./handlers/... ./storage/... ./worker/...
	@# the test builds (test-only routes linked in) too
	@GOOS=wasip1 GOARCH=wasm $(GO) vet -tags testroutes ./wasm/guest/
	@GOOS=js GOARCH=wasm $(GO) vet -tags testroutes ./worker/

# handlers/ and storage/ must build for all three targets and must never
# depend on platform code.
test-cross: deps
	@echo "==> checking handlers/ and storage/ build for js, wasip1 and native without platform imports"
	@$(GO) build ./handlers/... ./storage/...
	@GOOS=js GOARCH=wasm $(GO) build ./handlers/... ./storage/...
	@GOOS=wasip1 GOARCH=wasm $(GO) build ./handlers/... ./storage/...
	@if $(GO) list -deps ./handlers/... ./storage/... | grep -E 'syumai/workers|tetratelabs/wazero'; then \
		echo "handlers/ or storage/ imports platform code"; exit 1; fi

# The widget's browser tests (tests/e2e/widget_browser_test.go running
# tests/browser/*.mjs) drive Debian's chromium with playwright-core; axe-core
# scans the open widget, jose signs the tenant's identity JWTs. make run needs
# none of it. On a machine without chromium, root installs it (apt-get update
# only when the install fails on a stale package list); anyone else is told
# how: the tests never skip silently.
CHROMIUM ?= chromium
export CHROMIUM
browser-deps: worker-deps
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "==> the browser tests need Debian's chromium, which is not installed, and only root can install it: run 'sudo apt-get install -y chromium' (or set CHROMIUM=/path/to/chromium)"; exit 1; \
	  fi; \
	  echo "==> installing Debian's chromium for the widget's browser tests (apt-get install -y chromium)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(PROGRESS) "installing chromium" apt-get install -y -q chromium </dev/null || { \
	    echo "==> apt-get install failed: refreshing the package lists (apt-get update) and trying again"; \
	    $(PROGRESS) "updating the package lists" apt-get update -q </dev/null && \
	    $(PROGRESS) "installing chromium" apt-get install -y -q chromium </dev/null; } || exit 1; \
	fi
	@if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ] || [ ! -d node_modules/jose ]; then \
	  echo "==> installing playwright-core, axe-core and jose with npm ci (versions pinned in package-lock.json)"; \
	  $(PROGRESS) "installing the browser tests' npm packages" npm ci --no-audit --no-fund; \
	fi
	@echo "==> browser tests use $$(command -v $(CHROMIUM)) ($$($(CHROMIUM) --version 2>/dev/null))"

# mailpit, the SMTP server the mail tests send to, is built from the Go
# module proxy once per machine (tests/mailpit; a few minutes the first time).
test-mailpit: deps
	@echo "==> the SMTP test server (mailpit $$(sed -nE 's/^const Version = "(.*)"/\1/p' tests/mailpit/mailpit.go), built once per machine)"
	@$(PROGRESS) "building mailpit" $(GO) run ./tests/mailpit/build

test: vet test-cross worker-deps browser-deps test-js test-mailpit
	@echo "==> go test ./... (unit, contract suites, e2e in wazero and real Chromium, S3 and SMTP against real servers, smoke in workerd)"
	@$(GO) test -count=1 -timeout 30m ./...

# Edge packages whose tests need a JavaScript runtime (WebCrypto interop, a
# stand-in Durable Object namespace), run under Node with Go's js/wasm launcher.
test-js: deps
	@echo "==> js/wasm tests under Node (worker/webcrypto, worker/realtime)"
	@GOOS=js GOARCH=wasm $(GO) test -count=1 -exec="$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" ./worker/webcrypto/ ./worker/realtime/

# Every fuzz target in the repository (each parser of outside data has one:
# the ABI decoders, the strict JSON path, the credential parsers, paths),
# found in the sources, each for FUZZTIME (default 10s: there are about 65);
# the first failure stops the run. One target: go test ./pkg -run '^$$' -fuzz '^FuzzX$$'.
fuzz: deps
	@git ls-files '*_test.go' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's|^\(.*\)/[^/]*:func |./\1 |' | sort -u | \
	while read -r pkg fn; do \
		echo "==> fuzzing $$fn in $$pkg for $${FUZZTIME:-10s}"; \
		before=$$(ls "$$pkg/testdata/fuzz/$$fn" 2>/dev/null | wc -l); out=$$(mktemp); \
		$(GO) test "$$pkg" -run '^$$' -fuzz "^$$fn\$$" -fuzztime $${FUZZTIME:-10s} 2>&1 | tee "$$out"; \
		if [ "$${PIPESTATUS[0]}" != 0 ]; then \
			after=$$(ls "$$pkg/testdata/fuzz/$$fn" 2>/dev/null | wc -l); \
			if [ "$$after" -gt "$$before" ] || ! grep -q '^    context deadline exceeded$$' "$$out"; then rm -f "$$out"; exit 1; fi; \
			echo "    (only Go 1.26's fuzz coordinator racing its own -fuzztime deadline, golang/go#75804: no failing input; going on)"; \
		fi; rm -f "$$out"; \
	done

bench: guest host worker browser-deps
	@echo "==> measuring into BENCHMARKS.md"
	@$(GO) run ./tests/bench -out BENCHMARKS.md

clean:
	rm -rf $(BUILD)

-include worker/worker.mk
