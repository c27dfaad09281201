//go:build !windows

// Command bench measures Pommy Edge's size, speed and memory in one run and
// writes them, with ratios against baselines measured in the same run, as a
// markdown report:
//
//	go run ./tests/bench -out BENCHMARKS.md      (or: make bench)
//
// It uses build/app.wasm (the edge worker) and build/guest.wasm (the wasip1
// guest), building whichever is missing; make bench builds both first.
// Sizes, compile and instantiation times and the worker's per-request
// figures are of those shipped builds. What needs the test-only routes
// (/__test/ and the client-address header: the load runs, AES, memory,
// identity, AES in the worker) runs test builds (-tags testroutes) made into
// a temporary directory. It measures:
//
//   - module sizes, raw and gzip -9;
//   - the host's compile time without and with its compilation cache, and
//     the time to instantiate the guest;
//   - throughput and latency of the chat core's routes (read a conversation,
//     send a message) for the native
//     handlers (the baseline), the host with its pool and the host with an
//     instance per request, with an in-process load generator;
//   - AES-256-GCM in the guest's own software against the host's native key
//     custodian, and encrypted attachment upload/download through the host;
//   - per-request overhead of the worker in workerd (wrangler dev), next to
//     the same requests on the local host and the native handlers;
//   - the process's memory;
//   - the chat core: delivery latency from a visitor's message to the inbox
//     stream with a thousand conversation streams held (host and workerd),
//     memory per held stream, messages per second through the host against
//     the native handlers, the loss test (clients dropping and resuming
//     with Last-Event-ID), and an audit record's cost per message;
//   - the session check (GET /v1/me) natively and through the host, and as
//     the sessions table grows to a million rows, with the lookup's query
//     plan; a login's cost with argon2id in the host and in the guest;
//   - the widget in Chromium (widget.go, tests/browser/bench.mjs): the
//     loader's size and everything a visitor downloads to open the chat,
//     the time from the launcher's click to an interactive composer, and
//     the message round trip visitor -> person -> visitor against the same
//     round trip between two API clients.
//
// Nothing here asserts a time: the report says which targets were met.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"pommy.ai/edge/handlers"
	_ "pommy.ai/edge/handlers/testroutes" // the native homes' Config.TestRoutes
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/tests/workerd/wrangler"
	"pommy.ai/edge/wasm/host"
	"pommy.ai/edge/wasm/host/local"
)

var (
	outPath  = flag.String("out", "BENCHMARKS.md", "where to write the report")
	conc     = flag.Int("c", 8, "concurrent clients of the load runs")
	duration = flag.Duration("d", 5*time.Second, "measured duration of each load run")
	warmup   = flag.Duration("warmup", time.Second, "unmeasured warm-up before each load run")
	instN    = flag.Int("instances", 60, "instantiations timed for the instantiate figure")
	seqN     = flag.Int("seq", 200, "sequential requests of the per-request-overhead figures")
	aeadMiB  = flag.Int("aead-mib", 64, "MiB sealed by the software-AES route in the guest")
	blobMiB  = flag.Int("blob-mib", 16, "MiB of the attachment uploaded and downloaded")
	noWorker = flag.Bool("no-workerd", false, "skip the workerd measurements")
	only     = flag.String("only", "", "measure only this part (identity, passkeys, overload, chat, widget, mail) and write it to -out (default: a file in the temporary directory)")
)

var began = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench [%3.0fs]: "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
}

func main() {
	if spec := os.Getenv(chatClientsEnv); spec != "" {
		os.Exit(chatClientsMain(spec))
	}
	flag.Parse()
	if err := bench(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// b holds what the measurements share.
type b struct {
	root, tmp, cacheDir string
	guest               []byte // the shipped guest (build/guest.wasm)
	testGuest           []byte // the guest with the test routes
	testWorker          string // directory of the worker's test build
	rep                 *report
	client              *http.Client
	log                 *slog.Logger
	cfg                 handlers.Config

	// sequential /healthz and GET conversation on each local home, for the
	// workerd comparison
	seqHealth, seqConv map[string]result
	pooled             *home    // the pooled host, kept from the load runs for aead
	rss                [2]int64 // VmRSS, VmHWM (KiB) after the pooled load run
	guestAES           float64  // MB/s of software AES in the guest
	poolInstances      int64    // instances alive after the pooled load run
	load0              string   // load average at the start
}

// loadavg returns the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "?"
}

func bench() error {
	start := time.Now()
	root, err := wrangler.FindRoot(".")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pommy-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	x := &b{root: root, tmp: tmp, cacheDir: filepath.Join(tmp, "wazero-cache"), rep: &report{},
		client: newClient(*conc),
		// Errors only: a host warning under load would flood the output.
		log:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		cfg:       handlers.Config{Version: "bench", TestRoutes: true},
		seqHealth: map[string]result{}, seqConv: map[string]result{}}

	x.load0 = loadavg()
	head := x.machine(start)
	if *only != "" {
		return x.onlyPart(start, head)
	}
	if err := x.ensureBuilt(); err != nil {
		return err
	}
	if err := x.sizes(); err != nil {
		return err
	}
	if err := x.mailBytes(); err != nil {
		return err
	}
	if err := x.compile(); err != nil {
		return err
	}
	if err := x.instantiate(); err != nil {
		return err
	}
	if err := x.throughput(); err != nil {
		return err
	}
	if err := x.aead(); err != nil {
		return err
	}
	if err := x.memoryPerInstance(); err != nil {
		return err
	}
	if err := x.overload(); err != nil {
		return err
	}
	if err := x.identity(); err != nil {
		return err
	}
	if err := x.passkeys(); err != nil {
		return err
	}
	if err := x.chat(); err != nil {
		return err
	}
	if err := x.widget(); err != nil {
		return err
	}
	x.workerd()

	x.rep.para("_The whole run took %s._", time.Since(start).Round(time.Second))
	x.rep.para("_Load average (1, 5, 15 min) at the start: %s; at the end: %s. Other work on the machine skews every figure; "+
		"the ratios, measured minutes apart in the same run, less so._", x.load0, loadavg())
	if err := x.rep.write(*outPath, head); err != nil {
		return err
	}
	progress("wrote %s in %s", *outPath, time.Since(start).Round(time.Second))
	return x.rep.failed(*outPath)
}

// onlyPart measures one part (-only) and writes it alone, by default
// not over BENCHMARKS.md.
func (x *b) onlyPart(start time.Time, head string) error {
	out := *outPath
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "out" })
	if !set {
		out = filepath.Join(os.TempDir(), "BENCHMARKS-"+*only+".md")
	}
	var err error
	if *only != "mail" { // the mail part makes its own builds
		if err := x.ensureBuilt(); err != nil {
			return err
		}
	}
	switch *only {
	case "mail":
		err = x.mailBytes()
	case "identity":
		err = x.identity()
	case "overload":
		err = x.overload()
	case "chat":
		if err = x.chat(); err == nil && !*noWorker {
			err = x.workerdChatAlone()
		}
	case "widget":
		err = x.widget()
	case "passkeys":
		err = x.passkeys()
	default:
		err = fmt.Errorf("-only %q: the parts are: identity, passkeys, overload, chat, widget, mail", *only)
	}
	if err != nil {
		return err
	}
	x.rep.para("_This part took %s. Load average (1, 5, 15 min) at the start: %s; at the end: %s._", time.Since(start).Round(time.Second), x.load0, loadavg())
	if err := x.rep.write(out, head); err != nil {
		return err
	}
	progress("wrote %s in %s", out, time.Since(start).Round(time.Second))
	return x.rep.failed(out)
}

// machine describes where the run happened.
func (x *b) machine(start time.Time) string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	// The versions the module requires (the worker's syumai/workers is not
	// linked into this program, so go.mod is the one place for both).
	wazero, syumai := "?", "?"
	if gomod, err := os.ReadFile(filepath.Join(x.root, "go.mod")); err == nil {
		for _, line := range strings.Split(string(gomod), "\n") {
			switch f := strings.Fields(line); {
			case len(f) >= 2 && f[0] == "github.com/tetratelabs/wazero":
				wazero = f[1]
			case len(f) >= 2 && f[0] == "github.com/syumai/workers":
				syumai = f[1]
			}
		}
	}
	rev := "?"
	if out, err := exec.Command("git", "-C", x.root, "describe", "--always", "--dirty").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
	}
	var h strings.Builder
	h.WriteString("# Benchmarks\n\n")
	h.WriteString("Written by `make bench` (`go run ./tests/bench`); every figure and every baseline comes from the same run on the same machine. ")
	h.WriteString("Method and reasons: [docs/decisions.md](docs/decisions.md#how-we-measure).\n\n")
	writeTable(&h, []string{"machine", ""}, [][]string{
		{"CPU", cpu},
		{"cores (GOMAXPROCS)", fmt.Sprintf("%d (%d)", runtime.NumCPU(), runtime.GOMAXPROCS(0))},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"wazero, syumai/workers", wazero + ", " + syumai},
		{"source", rev},
		{"date", start.UTC().Format("2006-01-02 15:04 UTC")},
		{"load runs", fmt.Sprintf("%d concurrent clients, %s warm-up then %s measured, in-process over loopback HTTP", *conc, *warmup, *duration)},
	})
	progress("machine: %s, %d cores, %s, load average %s", cpu, runtime.NumCPU(), runtime.Version(), x.load0)
	return h.String()
}

// ensureBuilt builds build/guest.wasm and build/app.wasm when missing, and
// the test builds of both into the temporary directory; it reads the guests.
func (x *b) ensureBuilt() error {
	build := func(what string, env []string, name string, args ...string) error {
		progress("building %s...", what)
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = x.root, os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", what, err)
		}
		return nil
	}
	wasip1 := []string{"GOOS=wasip1", "GOARCH=wasm"}
	guest := filepath.Join(x.root, "build", "guest.wasm")
	if _, err := os.Stat(guest); err != nil {
		if err := build("the guest (build/guest.wasm is missing)", wasip1, "go", "build", "-trimpath", "-buildmode=c-shared", "-ldflags=-s -w -X main.version=bench", "-o", guest, "./wasm/guest"); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(x.root, "build", "app.wasm")); err != nil {
		if err := build("the worker (build/app.wasm is missing)", nil, "make", "--no-print-directory", "-f", "worker/worker.mk", "worker"); err != nil {
			return err
		}
	}
	test := filepath.Join(x.tmp, "guest-test.wasm")
	if err := build("the guest's test build (-tags testroutes)", wasip1, "go", "build", "-trimpath", "-tags=testroutes", "-buildmode=c-shared", "-ldflags=-s -w -X main.version=bench", "-o", test, "./wasm/guest"); err != nil {
		return err
	}
	x.testWorker = filepath.Join(x.tmp, "worker-test")
	if err := build("the worker's test build (-tags testroutes)", nil, "make", "--no-print-directory", "-f", "worker/worker.mk", "worker",
		"WORKER_BUILD="+x.testWorker, "WORKER_TAGS="+wrangler.TestTags); err != nil {
		return err
	}
	var err error
	if x.guest, err = os.ReadFile(guest); err != nil {
		return err
	}
	x.testGuest, err = os.ReadFile(test)
	return err
}

func gzipSize(b []byte) int64 {
	var n countWriter
	w, _ := gzip.NewWriterLevel(&n, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return int64(n)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func (x *b) sizes() error {
	progress("measuring module sizes...")
	worker, err := os.ReadFile(filepath.Join(x.root, "build", "app.wasm"))
	if err != nil {
		return err
	}
	testWorker, err := os.ReadFile(filepath.Join(x.testWorker, "app.wasm"))
	if err != nil {
		return err
	}
	wgz, ggz := gzipSize(worker), gzipSize(x.guest)
	twgz, tggz := gzipSize(testWorker), gzipSize(x.testGuest)
	const limit = 3 << 20 // Workers Free: 3 MiB after gzip
	x.rep.section("Module sizes",
		"gzip -9 of the module as built by `make` (`-s -w -trimpath`). Workers count the compressed size against the limit: 3 MiB on Free, 10 MiB on Paid. "+
			"The test builds (`-tags testroutes`, never shipped) add the test-only routes and the storage contract suites they run; "+
			"the last column is what leaving them out saves.")
	both := func(raw, gz int64) string { return thousands(raw) + " B (" + thousands(gz) + " B)" }
	x.rep.table([]string{"module", "raw", "gzip -9", "gzip vs 3 MiB", "test build raw (gzip -9)", "saved raw (gzip -9)"}, [][]string{
		{"edge worker `build/app.wasm` (js/wasm)", bytesMB(int64(len(worker))), bytesMB(wgz), pct(float64(wgz) / limit),
			both(int64(len(testWorker)), twgz), both(int64(len(testWorker)-len(worker)), twgz-wgz)},
		{"local guest `build/guest.wasm` (wasip1)", bytesMB(int64(len(x.guest))), bytesMB(ggz), "–",
			both(int64(len(x.testGuest)), tggz), both(int64(len(x.testGuest)-len(x.guest)), tggz-ggz)},
	})
	x.rep.check("worker size, gzip -9", bytesMB(wgz), "≤ 3 MiB (3,145,728 B)", met(wgz <= limit))
	progress("  worker %d B (gzip %d B), guest %d B (gzip %d B)", len(worker), wgz, len(x.guest), ggz)
	return nil
}

// home is one local home serving over loopback HTTP.
type home struct {
	name string
	url  string
	srv  *httptest.Server
	host *host.Host
	p    *local.Platform
}

func (h *home) close() {
	h.srv.Close()
	if h.host != nil {
		h.host.Close(context.Background())
	}
	h.p.Close()
}

func (x *b) openPlatform(name string) (*local.Platform, error) {
	return local.Open(context.Background(), local.Config{Dir: filepath.Join(x.tmp, "data-"+name)})
}

// newHost starts a host on the guest's test build, unless o.Module names
// another guest (the shipped one), which then runs without test routes.
func (x *b) newHost(p *local.Platform, cacheDir string, o host.Options) (*host.Host, error) {
	if o.Module == nil {
		o.Module, o.Config = x.testGuest, x.cfg
	} else {
		o.Config = handlers.Config{Version: x.cfg.Version}
	}
	o.CacheDir, o.Platform, o.Logger = cacheDir, p.Platform, x.log
	h, err := host.New(context.Background(), o)
	if err != nil {
		return nil, fmt.Errorf("host.New: %w", err)
	}
	return h, nil
}

func (x *b) startNative() (*home, error) {
	p, err := x.openPlatform("native")
	if err != nil {
		return nil, err
	}
	p.Home = "native"
	srv := httptest.NewServer(handlers.New(p.Platform, x.cfg))
	return &home{name: "native", url: srv.URL, srv: srv, p: p}, nil
}

func (x *b) startHost(name string, o host.Options) (*home, error) {
	p, err := x.openPlatform(name)
	if err != nil {
		return nil, err
	}
	h, err := x.newHost(p, x.cacheDir, o)
	if err != nil {
		p.Close()
		return nil, err
	}
	srv := httptest.NewServer(h)
	return &home{name: name, url: srv.URL, srv: srv, host: h, p: p}, nil
}

func (x *b) compile() error {
	progress("measuring compile times (uncached, then from the cache)...")
	p, err := x.openPlatform("compile")
	if err != nil {
		return err
	}
	defer p.Close()
	fresh := x.cacheDir // empty so far; the hosts after this one load from it
	var rows [][]string
	var first, second host.Stats
	for i, label := range []string{"uncached (fresh cache directory)", "cached (second host, same cache directory)"} {
		runtime.GC()
		h, err := x.newHost(p, fresh, host.Options{Module: x.guest})
		if err != nil {
			return err
		}
		s := h.Stats()
		h.Close(context.Background())
		rows = append(rows, []string{label, ms(s.Compile), ms(s.LastInstantiate)})
		if i == 0 {
			first = s
		} else {
			second = s
		}
	}
	x.rep.section("Host: compiling and instantiating the guest",
		"`host.Stats().Compile` of `host.New` with a fresh compilation cache, then of a second `host.New` on the same cache directory; "+
			"the first instance is started inside `host.New`.")
	x.rep.table([]string{"compile", "compile time", "first instantiate"}, rows)
	x.rep.para("The cache makes a start %s faster.", times(float64(first.Compile)/float64(max(second.Compile, 1))))
	progress("  compile %s uncached, %s cached", ms(first.Compile), ms(second.Compile))
	return nil
}

func (x *b) instantiate() error {
	var rows [][]string
	var def result
	for _, m := range []struct {
		label string
		o     host.Options
	}{
		{"from the snapshot (default)", host.Options{Module: x.guest, InstancePerRequest: true, NoSpare: true}},
		{"running `_initialize` (`NoSnapshot`, baseline)", host.Options{Module: x.guest, InstancePerRequest: true, NoSpare: true, NoSnapshot: true}},
	} {
		progress("measuring instantiation %s (%d instances, one per request)...", m.label, *instN)
		h, err := x.startHost("instantiate", m.o)
		if err != nil {
			return err
		}
		var lat []time.Duration
		req := healthz(h.url)
		for i := range *instN + 5 {
			before := h.host.Stats().Instantiated
			if status, body, err := req.do(x.client); err != nil || status != 200 {
				h.close()
				return fmt.Errorf("GET /healthz on the host: %d %v %.200s", status, err, body)
			}
			s := h.host.Stats()
			if i >= 5 && s.Instantiated == before+1 { // the first few warm the caches
				lat = append(lat, s.LastInstantiate)
			}
		}
		snap := h.host.Stats().Snapshot
		h.close()
		os.RemoveAll(filepath.Join(x.tmp, "data-instantiate"))
		slices.Sort(lat)
		r := result{lat: lat, n: len(lat)}
		if def.n == 0 {
			def = r
		}
		rows = append(rows, []string{m.label, strconv.Itoa(len(lat)), ms(r.pct(50)), ms(r.pct(99)), ms(lat[0]), ms(lat[len(lat)-1]), ms(snap)})
		progress("  instantiate %s: median %s, p99 %s", m.label, ms(r.pct(50)), ms(r.pct(99)))
	}
	x.rep.para("Instantiation: a host with one fresh instance per request (`InstancePerRequest`, and `NoSpare` so that each request makes " +
		"its own instead of taking one made in the background) serves sequential `GET /healthz`; " +
		"after each, `Stats().LastInstantiate` is the time to create that request's instance, start included. " +
		"The snapshot is taken once in `host.New` (`Stats().Snapshot`).")
	x.rep.table([]string{"instance starts", "instances", "median", "p99", "min", "max", "snapshot taken in"}, rows)
	x.rep.check("instantiate, median (p99)", ms(def.pct(50))+" ("+ms(def.pct(99))+")", "≤ 2 ms", met(def.pct(50) <= 2*time.Millisecond))
	return nil
}

// throughput runs the load on the native handlers (the baseline), the
// pooled host and the host with an instance per request. The homes take
// turns in two rounds, the second in reverse order (ABBA), so that a
// change in the machine's load during the run weighs on every home alike;
// each home's figures are both rounds together.
func (x *b) throughput() error {
	progress("measuring throughput and latency (%d clients, 2 rounds of %s per home and route)...", *conc, *duration)
	type run struct {
		label    string
		h        *home
		f        *fixture
		get, pos result
	}
	native, err := x.startNative()
	if err != nil {
		return err
	}
	pool, err := x.startHost("pool", host.Options{})
	if err != nil {
		native.close()
		return err
	}
	ipr, err := x.startHost("instance-per-request", host.Options{InstancePerRequest: true})
	if err != nil {
		native.close()
		pool.close()
		return err
	}
	defer ipr.close()
	defer native.close()
	x.pooled = pool // kept for the AEAD and attachment figures
	runs := []*run{
		{label: "native handlers (baseline)", h: native},
		{label: fmt.Sprintf("host, pooled (default pool: %d)", max(runtime.GOMAXPROCS(0), 2)), h: pool},
		{label: "host, instance per request (default spare)", h: ipr},
	}
	for _, r := range runs {
		if r.f, err = newFixture(context.Background(), x.client, r.h.url, *orgsN); err != nil {
			return fmt.Errorf("%s: %w", r.h.name, err)
		}
	}
	for round, order := range [][]int{{0, 1, 2}, {2, 1, 0}} {
		for _, i := range order {
			r := runs[i]
			progress("  round %d, %s: GET /v1/conversations/{id}, then POST /v1/conversations/{id}/messages...", round+1, r.h.name)
			r.get = merge(r.get, loadEach(x.client, r.f.getConversations(), *conc, *warmup, *duration))
			r.pos = merge(r.pos, loadEach(x.client, r.f.sendMessages(), *conc, *warmup, *duration))
			if r.h == pool && round == 1 {
				x.rss[0], x.rss[1] = memory()
				x.poolInstances = pool.host.Stats().InstancesRunning
			}
		}
	}
	for _, r := range runs {
		x.rep.measured(r.label+", GET /v1/conversations/{id}", r.get)
		x.rep.measured(r.label+", POST /v1/conversations/{id}/messages", r.pos)
		progress("  %s: %d sequential GET /healthz and GET conversation...", r.h.name, *seqN)
		x.seqHealth[r.h.name] = sequential(x.client, healthz(r.h.url), 20, *seqN)
		x.seqConv[r.h.name] = sequential(x.client, r.f.getConversation(), 20, *seqN)
		x.rep.measured(r.label+", sequential GET /healthz", x.seqHealth[r.h.name])
		x.rep.measured(r.label+", sequential GET /v1/conversations/{id}", x.seqConv[r.h.name])
	}

	base := runs[0]
	var rows [][]string
	for i, r := range runs {
		for _, k := range []struct {
			route     string
			res, base result
		}{
			{"GET /v1/conversations/{id}", r.get, base.get},
			{"POST /v1/conversations/{id}/messages", r.pos, base.pos},
		} {
			ratio := "1 (baseline)"
			if i > 0 {
				ratio = pct(k.res.rps() / k.base.rps())
			}
			rows = append(rows, []string{r.label, k.route, rate(k.res.rps()), ms(k.res.pct(50)), ms(k.res.pct(99)), ratio, strconv.Itoa(k.res.errors)})
		}
	}
	x.rep.section("Throughput and latency: reading a conversation, sending a message",
		fmt.Sprintf("Each home runs on its own fresh data directory (SQLite with `synchronous=FULL`, the KV file, file blobs, the key custodian), "+
			"served by `httptest.Server` over loopback. %d organizations, each set up as an operator would for such traffic: its owner raises its "+
			"request rate (`rate_limit_per_minute`) to the most the API allows and makes one API key at the highest per-minute limit a key can have, "+
			"and it has one contact with %d conversations; the requests take the organizations, and each one's conversations, in turn. Only requests answered with the route's "+
			"expected status count in req/s and latency; the errors column counts the others (any makes the run fail). "+
			"%d clients send requests back to back for %s after a %s warm-up, per home and route, in two rounds (native, pooled, per request; "+
			"then the reverse) whose figures are added up. The load generator shares the machine's %d cores with the server. "+
			"Each request runs the whole route as shipped: API-key authentication and the key's per-minute counter; `GET` reads the conversation's row, "+
			"opens its sealed subject and writes the data-access audit record; `POST` sends a visitor's message of %d characters with a fresh "+
			"`Idempotency-Key`: the text sealed, the message, its event, the inbox feed row and the key in one SQL batch, then the realtime wake-ups.",
			*orgsN, convsPerOrg, *conc, *duration, *warmup, runtime.NumCPU(), len(messageText)))
	x.rep.table([]string{"home", "route", "req/s", "p50", "p99", "vs native", "errors"}, rows)
	for _, r := range runs[1:] {
		get, post := r.get.rps()/base.get.rps(), r.pos.rps()/base.pos.rps()
		x.rep.check(r.label+": GET conversation req/s vs native", pct(get), "≥ 50 %", metIf(get >= 0.5, r.get, base.get))
		x.rep.check(r.label+": messages sent per second vs native", pct(post), "≥ 50 %", metIf(post >= 0.5, r.pos, base.pos))
	}
	return nil
}

// memory returns VmRSS and VmHWM in KiB.
func memory() (rss, hwm int64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return
}

// aead compares AES-256-GCM in the guest's software with the host's native
// key custodian and with attachments sealed through the host.
func (x *b) aead() error {
	defer func() {
		if x.pooled != nil {
			x.pooled.close()
			x.pooled = nil
		}
	}()
	progress("measuring AES-256-GCM: software in the guest (%d MiB)...", *aeadMiB)
	n := *aeadMiB << 20
	aeadURL := func(n int) string { return fmt.Sprintf("%s/__test/aead?bytes=%d", x.pooled.url, n) }
	// A short run first warms the instance; the long one is measured.
	request{method: "GET", url: aeadURL(1 << 20), want: 200}.do(x.client)
	status, body, err := request{method: "GET", url: aeadURL(n), want: 200}.do(x.client)
	var ar struct{ Bytes, Ns int64 }
	if err != nil || status != 200 || json.Unmarshal(body, &ar) != nil || ar.Ns <= 0 {
		return fmt.Errorf("GET /__test/aead on the host: %d %v %.200s", status, err, body)
	}
	guestBest := float64(ar.Bytes) / float64(ar.Ns) * 1e3 // MB/s

	progress("measuring AES-256-GCM: the host's native key custodian...")
	raw := make([]byte, 32)
	rand.Read(raw)
	dk, err := keyring.NewDataKey(raw)
	if err != nil {
		return err
	}
	chunk := make([]byte, 64<<10)
	out := make([]byte, 0, len(chunk)+16)
	nonce := make([]byte, 12)
	var nativeBest float64
	for range 3 {
		start := time.Now()
		for done := 0; done < n; done += len(chunk) {
			binary.BigEndian.PutUint64(nonce, uint64(done))
			out, _ = dk.Seal(out[:0], nonce, chunk[:min(len(chunk), n-done)], nil)
		}
		nativeBest = max(nativeBest, float64(n)/float64(time.Since(start).Nanoseconds())*1e3)
	}

	progress("measuring encrypted attachment upload/download (%d MiB) through the host and natively...", *blobMiB)
	data := make([]byte, *blobMiB<<20)
	rand.Read(data)
	hostPut, hostGet, err := x.blobs(x.pooled.url, data)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	native, err := x.startNative()
	if err != nil {
		return err
	}
	natPut, natGet, err := x.blobs(native.url, data)
	native.close()
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}

	x.rep.section("AES-256-GCM and encrypted attachments",
		fmt.Sprintf("Software AES is `GET /__test/aead?bytes=%d` on the pooled host: the guest seals %d MiB in 64 KiB chunks with Go's AES-GCM compiled to wasm "+
			"and reports its own time (one run, after a 1 MiB warm-up). The native custodian is the same loop with `keyring.NewDataKey` in the bench process (best of 3). "+
			"Attachments are `PUT` then `GET /v1/conversations/{id}/messages/{mid}/attachment` of %d MiB of random bytes (median of 3, whole request time; "+
			"a message for each upload, since attachments are written once): "+
			"through the host the guest streams the body across the ABI and the host seals and opens it natively. MB = 10⁶ bytes.",
			n, *aeadMiB, *blobMiB))
	x.rep.table([]string{"what", "MB/s", "vs guest software AES"}, [][]string{
		{"AES-256-GCM seal, software in the guest (wasip1)", rate(guestBest), "1 (baseline)"},
		{"AES-256-GCM seal, host's native custodian (AES-NI)", rate(nativeBest), times(nativeBest / guestBest)},
		{"attachment upload through the host (`PUT`, sealed natively)", rate(hostPut), times(hostPut / guestBest)},
		{"attachment download through the host (`GET`, opened natively)", rate(hostGet), times(hostGet / guestBest)},
		{"attachment upload, native handlers (reference)", rate(natPut), times(natPut / guestBest)},
		{"attachment download, native handlers (reference)", rate(natGet), times(natGet / guestBest)},
	})
	x.guestAES = guestBest
	up := min(hostPut, hostGet) / guestBest
	x.rep.check("encrypted attachment through the host vs guest software AES (slower of put/get)", times(up), "≥ 20×", met(up >= 20))
	progress("  guest AES %s MB/s, native %s MB/s, host put %s / get %s MB/s", rate(guestBest), rate(nativeBest), rate(hostPut), rate(hostGet))
	return nil
}

// blobs uploads and downloads data as a message's attachment three times
// (three messages) and returns the median MB/s of each.
func (x *b) blobs(base string, data []byte) (put, get float64, err error) {
	f, err := newFixture(context.Background(), x.client, base, 1)
	if err != nil {
		return 0, 0, err
	}
	var puts, gets []float64
	for i := range 3 {
		status, body, err := f.sendMessage().do(x.client)
		var m struct{ ID string }
		if err != nil || status != 201 || json.Unmarshal(body, &m) != nil {
			return 0, 0, fmt.Errorf("sending a message: %d %v %.200s", status, err, body)
		}
		url := base + "/v1/conversations/" + f.conv + "/messages/" + m.ID + "/attachment"
		start := time.Now()
		status, body, err = request{method: "PUT", url: url, body: data,
			header: append(bearer(f.key), "Content-Type", "application/octet-stream")}.do(x.client)
		if err != nil || status != 201 {
			return 0, 0, fmt.Errorf("PUT attachment: %d %v %.200s", status, err, body)
		}
		puts = append(puts, float64(len(data))/float64(time.Since(start).Nanoseconds())*1e3)
		start = time.Now()
		status, body, err = request{method: "GET", url: url, header: bearer(f.key)}.do(x.client)
		if err != nil || status != 200 {
			return 0, 0, fmt.Errorf("GET attachment: %d %v %.200s", status, err, body)
		}
		gets = append(gets, float64(len(data))/float64(time.Since(start).Nanoseconds())*1e3)
		if i == 0 && !bytes.Equal(body, data) {
			return 0, 0, errors.New("the attachment changed in the round trip")
		}
	}
	slices.Sort(puts)
	slices.Sort(gets)
	return puts[1], gets[1], nil
}

// memoryPerInstance estimates one instance's memory from the growth of the
// process's RSS when a pool grows from one instance to eight.
func (x *b) memoryPerInstance() error {
	progress("measuring memory per instance...")
	const size = 8
	h, err := x.startHost("memory", host.Options{Pool: size})
	if err != nil {
		return err
	}
	defer h.close()
	settle := func() (int64, int64) {
		runtime.GC()
		debug.FreeOSMemory()
		rss, _ := memory()
		return rss, h.host.Stats().InstancesRunning
	}
	rss0, inst0 := settle()
	// Requests that each hold an instance for a while make the pool start
	// instances up to its size.
	x.rep.measured("memory per instance, GET /__test/sleep", run(x.client, request{method: "GET", url: h.url + "/__test/sleep?ms=300", want: 200}, size, time.Second))
	rss1, inst1 := settle()
	per := "–"
	if inst1 > inst0 {
		per = mib((rss1 - rss0) / (inst1 - inst0))
	}
	x.rep.section("Memory",
		fmt.Sprintf("Process memory right after the pooled host's load run: VmRSS **%s**, VmHWM %s. This is the whole bench process: "+
			"the three homes of the load runs (the pooled host with %d guest instances alive, the per-request host, the native handlers), "+
			"their SQLite databases and the load generator.",
			mib(x.rss[0]), mib(x.rss[1]), x.poolInstances),
		"",
		fmt.Sprintf("Per instance: a host with `Pool: %d` went from %d to %d live instances under %d concurrent `GET /__test/sleep?ms=300`; "+
			"VmRSS (after a GC) went from %s to %s, about **%s per instance** (linear memory and the Go runtime inside it; "+
			"the compiled code is shared).", size, inst0, inst1, size, mib(rss0), mib(rss1), per))
	x.rep.check("process RSS after the pooled load run (VmHWM)", mib(x.rss[0])+" ("+mib(x.rss[1])+")", "–", "–")
	x.rep.check("memory per guest instance (RSS growth)", per, "–", "–")
	progress("  %s per instance (%d → %d instances)", per, inst0, inst1)
	return nil
}

// workerdAEAD measures software AES-GCM inside the worker's test build
// (/__test/aead), or returns "–" and says why.
func (x *b) workerdAEAD(ctx context.Context, c *http.Client) string {
	progress("  workerd: software AES in the worker's test build (-tags testroutes)...")
	dev, err := wrangler.Start(ctx, wrangler.Options{Root: x.root, Name: "bench-test", Tags: wrangler.TestTags,
		SkipBuild: true, BuildDir: x.testWorker, SkipMigrations: true, Vars: []string{"POMMY_TEST_ROUTES:1"}, Logf: func(f string, a ...any) { progress("  "+f, a...) }})
	if err != nil {
		progress("  workerd test build not measured: %v", err)
		return "–"
	}
	defer dev.Stop()
	status, body, err := request{method: "GET", url: dev.URL + "/__test/aead?bytes=" + strconv.Itoa(16<<20), want: 200}.do(c)
	var r struct{ Bytes, Ns int64 }
	if err != nil || status != 200 || json.Unmarshal(body, &r) != nil || r.Ns <= 0 {
		progress("  GET /__test/aead in workerd: %d %v %.200s", status, err, body)
		return "–"
	}
	return rate(float64(r.Bytes) / float64(r.Ns) * 1e3)
}

// workerd measures the worker in wrangler dev; when that cannot start the
// report says why instead of failing the run.
func (x *b) workerd() {
	x.rep.section("Edge worker in workerd (wrangler dev)",
		fmt.Sprintf("Sequential requests (%d, after 20 unmeasured) from one client. In workerd every request starts a fresh Go runtime "+
			"(syumai/workers' `worker.mjs`); the worker is the shipped `build/app.wasm`. `wrangler dev` adds a local proxy in front of workerd, so these are local-development "+
			"figures, not production latency. The same sequential requests on the local homes are the comparison.", *seqN))
	notMeasured := func(reason string) {
		reason = strings.TrimSpace(reason)
		if i := strings.IndexByte(reason, '\n'); i > 0 {
			reason = reason[:i]
		}
		x.rep.para("Not measured: %s", reason)
		x.rep.check("worker in workerd, GET /healthz p50", "–", "–", "not measured")
		progress("  workerd not measured: %s", reason)
	}
	if *noWorker {
		notMeasured("skipped with -no-workerd.")
		return
	}
	progress("measuring the worker in workerd (starting wrangler dev)...")
	ctx := context.Background()
	_, statErr := os.Stat(filepath.Join(x.root, "build", "app.wasm"))
	dev, err := wrangler.Start(ctx, wrangler.Options{Root: x.root, Name: "bench", SkipBuild: statErr == nil,
		Logf: func(f string, a ...any) { progress("  "+f, a...) }})
	if err != nil {
		notMeasured(err.Error())
		return
	}
	defer dev.Stop()
	verifiers[dev.URL] = d1Verifier(dev)
	c := newClient(1)
	f, err := newFixture(ctx, c, dev.URL, 1)
	if err != nil {
		notMeasured(err.Error())
		return
	}
	progress("  workerd: %d sequential GET /healthz, GET conversation and POST message...", *seqN)
	health := sequential(c, healthz(dev.URL), 20, *seqN)
	get := sequential(c, f.getConversation(), 20, *seqN)
	post := sequential(c, f.sendMessage(), 5, *seqN/2)
	aead := x.workerdAEAD(ctx, c)
	failed := 0
	for _, r := range []struct {
		what string
		res  result
	}{{"GET /healthz", health}, {"GET /v1/conversations/{id}", get}, {"POST /v1/conversations/{id}/messages", post}} {
		if !x.rep.measured("worker in workerd, sequential "+r.what, r.res) {
			failed += r.res.errors
			x.rep.para("%d requests failed in workerd (%s); the first: `%s`.", r.res.errors, r.res.failures(), r.res.firstErr)
		}
	}
	if failed > 0 {
		progress("  wrangler dev output, last 4 KiB:\n%s", dev.Output(4<<10))
	}

	row := func(label, route string, r, base result) []string {
		ratio := "–"
		if base.n > 0 && r.n > 0 {
			ratio = times(float64(r.pct(50)) / float64(base.pct(50)))
		}
		return []string{label, route, ms(r.pct(50)), ms(r.pct(99)), ratio, strconv.Itoa(r.errors)}
	}
	nh, nn := x.seqHealth["native"], x.seqConv["native"]
	x.rep.table([]string{"home", "route", "p50", "p99", "p50 vs native", "errors"}, [][]string{
		row("worker in workerd", "GET /healthz", health, nh),
		row("host, pooled", "GET /healthz", x.seqHealth["pool"], nh),
		row("host, instance per request", "GET /healthz", x.seqHealth["instance-per-request"], nh),
		row("native handlers", "GET /healthz", nh, nh),
		row("worker in workerd", "GET /v1/conversations/{id}", get, nn),
		row("host, pooled", "GET /v1/conversations/{id}", x.seqConv["pool"], nn),
		row("host, instance per request", "GET /v1/conversations/{id}", x.seqConv["instance-per-request"], nn),
		row("native handlers", "GET /v1/conversations/{id}", nn, nn),
		row("worker in workerd", "POST /v1/conversations/{id}/messages", post, result{}),
	})
	x.rep.para("Software AES-256-GCM inside the worker's test build (`/__test/aead`, 16 MiB): %s MB/s (the guest in wazero: %s MB/s).", aead, rate(x.guestAES))
	x.rep.check("worker in workerd, GET /healthz p50 (p99)", ms(health.pct(50))+" ("+ms(health.pct(99))+")", "–", "–")
	progress("  workerd healthz p50 %s p99 %s; conversation p50 %s", ms(health.pct(50)), ms(health.pct(99)), ms(get.pct(50)))
	x.workerdChat(ctx, dev.URL)
}

// workerdChatAlone is the chat core's workerd run for -only chat: its own
// wrangler dev of the shipped worker.
func (x *b) workerdChatAlone() error {
	progress("measuring the chat core in workerd (starting wrangler dev)...")
	ctx := context.Background()
	_, statErr := os.Stat(filepath.Join(x.root, "build", "app.wasm"))
	dev, err := wrangler.Start(ctx, wrangler.Options{Root: x.root, Name: "bench-chat", SkipBuild: statErr == nil,
		Logf: func(f string, a ...any) { progress("  "+f, a...) }})
	if err != nil {
		x.rep.section("Chat core in workerd (wrangler dev)")
		x.rep.para("Not measured: %v", err)
		return nil
	}
	defer dev.Stop()
	verifiers[dev.URL] = d1Verifier(dev)
	x.workerdChat(ctx, dev.URL)
	return nil
}
