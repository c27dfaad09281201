// Package host is the local home's runtime: it runs the wasip1 guest
// (wasm/guest) with wazero and serves HTTP through it, exposing a
// storage.Platform of native adapters (SQLite, the KV store, files or S3,
// the key custodian, net/http with an allow-list) across the pommy_v1 ABI
// (wasm/abi/ABI.md).
//
// What it guarantees:
//
//   - One request per instance at a time (wazero functions are not safe for
//     concurrent calls), with at most Options.Pool instances alive (plus
//     one spare, which has served nothing, with InstancePerRequest).
//   - Admission control: requests wait for an instance in a bounded FIFO
//     queue (Options.MaxQueue, Options.QueueWait); past it they get a fast
//     503 "overloaded" with Retry-After rather than a long wait.
//   - Every request has a deadline. The guest sees it as its request
//     context's deadline; past it the host answers 504 (the guest ran: it
//     may have changed something), and past it plus a grace period the host
//     kills the instance, even one spinning in a loop or sleeping. A 503
//     from the host means no guest ran for the request.
//   - An instance is held only while the guest works: a request's body, or
//     its first PreReadLimit bytes, is read before an instance is taken,
//     and the rest is streamed under per-read deadlines (body.go).
//   - A trap, a panic that escapes the application, a timeout or any ABI
//     misuse discards the instance; that request gets a JSON 500 or 504 and
//     the server goes on serving with fresh instances.
//   - The guest's clocks are the real ones and its randomness is
//     crypto/rand (wazero's defaults are fake clocks and a fixed seed).
//   - Unless Options.NoSnapshot, new instances start as a copy of one
//     instance's state just after _initialize (snapshot.go), taken in New:
//     they share the Go runtime's random seed and nothing else random, and
//     New refuses a guest whose init draws more randomness than that.
//   - Nothing a request opened (streams, pending blob puts, data-key
//     handles) outlives the export call: the host closes or aborts it.
//   - Streams (SSE, long-poll) are held by the host's hub, never by an
//     instance: the guest answers a stream request's first step and each
//     re-poll after a wake-up, and the hub keeps the connection in
//     between (hub.go, stream.go, docs/realtime.md).
//
// Server (server.go) is the HTTP server the command runs and the tests
// start: connection limits, and net/http's own error responses in the
// platform's shape.
//
// Background work is an explicit host task: RunScheduled calls the guest's
// pommy_v1_scheduled export, and the command runs it from a ticker.
package host

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// Options configure a Host. Only the module and the platform are required.
type Options struct {
	// Module is the guest's Wasm bytes; ModulePath is read when Module is nil.
	Module     []byte
	ModulePath string
	// CacheDir keeps compiled machine code between runs (a 6 MB guest
	// compiles in about a second, and loads from the cache in tens of
	// milliseconds). Empty: compile in memory every time.
	CacheDir string

	// Pool is the most instances alive at once, and so the most requests
	// served at once; more wait in a bounded queue for a free instance.
	// Default: GOMAXPROCS, at least 2.
	Pool int
	// MaxQueue is the most requests waiting for an instance at once. A
	// request that finds the queue full is refused at once with 503
	// "overloaded" and Retry-After (counted in Stats.Shed), so that past
	// capacity the excess fails fast while admitted requests wait at most
	// about MaxQueue/Pool request times. Default: 4 × Pool (see
	// docs/decisions.md, "Admission control").
	MaxQueue int
	// QueueWait is the longest a request waits in the queue before it is
	// refused the same way: a backstop for when instances are held by slow
	// requests. Default: 1s. The request's deadline (Timeout) still
	// applies if it is shorter.
	QueueWait time.Duration
	// InstancePerRequest gives every request and scheduled run a fresh
	// instance, as the edge does, so nothing can leak between requests.
	InstancePerRequest bool
	// NoSnapshot makes every new instance run the guest's _initialize
	// (start the Go runtime and run every package's init: 2-5 ms) instead
	// of starting as a copy of the state a template instance reached after
	// it, taken once in New (snapshot.go). The copies share the Go
	// runtime's random seed (math/rand's sequence, map hash seeds;
	// crypto/rand is unaffected): see docs/decisions.md. Setting it is for
	// comparison and as an escape hatch.
	NoSnapshot bool
	// NoSpare stops the host keeping one spare instance ready with
	// InstancePerRequest (made in the background once the last one is
	// taken), so that every request waits for its own to be made. The
	// spare is one instance alive beyond Pool.
	NoSpare bool

	// Timeout is each request's deadline (default 30s).
	Timeout time.Duration
	// Grace is how long past its deadline a guest may run before its
	// instance is killed (default 1s).
	Grace time.Duration
	// ScheduledTimeout bounds one scheduled run (default 5m).
	ScheduledTimeout time.Duration
	// JobWorkers is how many guest instances run background jobs and the
	// scheduled work, besides Pool (default 2; negative: none, and
	// scheduled runs share the request pool). They never take an
	// instance that requests wait for, and a job that waits on a slow
	// endpoint holds only its own worker.
	JobWorkers int
	// JobEvery is how often each idle job worker looks for due jobs
	// (default 1s).
	JobEvery time.Duration
	// JobTimeout bounds one job worker's run (default 60s); the
	// application takes no job whose timeout does not fit in what is left.
	JobTimeout time.Duration
	// MaxBody is the largest request body accepted (default
	// handlers.MaxRequestBody). Larger ones get 413 before the guest runs.
	MaxBody int64
	// BodyReadTimeout bounds the wait for a request body (default
	// DefaultBodyReadTimeout): a body of at most PreReadLimit bytes must
	// arrive whole within it, before an instance is taken, and each read
	// of the rest of a larger one must make progress within it. A client
	// too slow gets 408 and its connection is closed (body.go).
	BodyReadTimeout time.Duration
	// BodyMinRate is the slowest average, in bytes per second, at which
	// the streamed part of a large body may arrive once an instance waits
	// on it (default DefaultBodyMinRate; negative: no minimum).
	BodyMinRate int64
	// PreReadMemory bounds the bytes of request bodies held in memory at
	// once (default DefaultPreReadMemory); past it a request with a body
	// gets 503.
	PreReadMemory int64
	// MemoryLimitMiB caps each instance's linear memory (default 512).
	MemoryLimitMiB int

	// StreamHeartbeat is how often a held SSE stream gets `event: ping`
	// (default DefaultStreamHeartbeat).
	StreamHeartbeat time.Duration
	// MaxStreams bounds the streams held at once, SSE streams and waiting
	// long-polls together (default DefaultMaxStreams); past it a stream
	// is refused with too_many_streams (docs/realtime.md).
	MaxStreams int
	// StreamPollers bounds the streams' re-polls running at once (default
	// Pool/2, at least 1), so that streams woken together never take
	// every instance from other requests.
	StreamPollers int

	// MailTimeout bounds each mail.send (default MailTimeout).
	MailTimeout time.Duration

	// Platform holds the native adapters the guest reaches through the ABI.
	// Platform.Mail sends the guest's mail (mail.send); nil: every send
	// is unavailable, and mail jobs retry until a mail service is set.
	// Platform.Home is ignored: the guest reports "local". Its Realtime is
	// ignored too: the host's own hub (Host.Realtime) takes the guest's
	// wake-ups.
	Platform storage.Platform
	// Config is handed to the guest's handlers.New, as JSON in the module's
	// environment (variable POMMY_CONFIG).
	Config handlers.Config
	// Logger receives the host's and the guest's log lines (default
	// slog.Default()).
	Logger *slog.Logger
}

// Host runs the guest. It is an http.Handler; create it with New and
// release it with Close.
type Host struct {
	opts     Options
	log      *slog.Logger
	rt       wazero.Runtime
	cache    wazero.CompilationCache
	compiled wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	snap     *snapshot // nil with Options.NoSnapshot
	pool     *pool
	hub      *hub
	// jobs holds the job workers' instances (nil without JobWorkers).
	jobs  *pool
	stats counters
	// bodyMemory is the bytes of request bodies held now (body.go).
	bodyMemory atomic.Int64
	// streams holds a slot for each request whose body is being streamed
	// to an instance: fewer than the pool, so that clients trickling
	// uploads cannot take every instance.
	streams chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

// Stats are counters and timings for tests, logs and benchmarks.
type Stats struct {
	Compile          time.Duration // compiling (or loading from the cache) the module
	Snapshot         time.Duration // taking the snapshot new instances start from (0 with NoSnapshot)
	LastInstantiate  time.Duration // the most recent instantiation: _initialize or the snapshot's restore included
	Instantiated     int64         // instances created
	Discarded        int64         // instances thrown away after a fault
	Traps            int64         // traps, escaped panics and ABI misuse
	Timeouts         int64         // requests past their deadline
	Killed           int64         // instances killed at deadline plus grace
	Requests         int64         // requests served by the guest
	ScheduledRuns    int64
	InstancesRunning int64 // instances alive now (idle or busy)
	Busy             int64 // instances in use now (by requests or scheduled runs)
	Queued           int64 // requests waiting for an instance now
	Shed             int64 // requests refused by admission control (503 overloaded)
	ShedWaited       int64 // of Shed, those refused after waiting QueueWait (the others found the queue full)
	// GuestMemory is the linear memory the live instances hold, in bytes
	// (counted for instances started from the snapshot; 0 with
	// NoSnapshot). It is part of the Go heap.
	GuestMemory int64
	Streams     StreamStats
}

type counters struct {
	compile, snapshot, lastInst              atomic.Int64
	instantiated, discarded, traps, timeouts atomic.Int64
	killed, requests, scheduled, alive       atomic.Int64
	busy, queued, shed, shedWaited           atomic.Int64
}

// Stats returns a snapshot of the counters.
func (h *Host) Stats() Stats {
	c := &h.stats
	st := Stats{
		Compile: time.Duration(c.compile.Load()), Snapshot: time.Duration(c.snapshot.Load()),
		LastInstantiate: time.Duration(c.lastInst.Load()),
		Instantiated:    c.instantiated.Load(), Discarded: c.discarded.Load(), Traps: c.traps.Load(),
		Timeouts: c.timeouts.Load(), Killed: c.killed.Load(), Requests: c.requests.Load(),
		ScheduledRuns: c.scheduled.Load(), InstancesRunning: c.alive.Load(),
		Busy: c.busy.Load(), Queued: c.queued.Load(), Shed: c.shed.Load(), ShedWaited: c.shedWaited.Load(),
		Streams: h.hub.statsNow(),
	}
	if h.snap != nil {
		st.GuestMemory = h.snap.memory.Load()
	}
	return st
}

// Realtime is the host's hub as the Realtime port: a Publish wakes the
// streams held on its topic. The guest's realtime.publish op comes here.
func (h *Host) Realtime() storage.Realtime { return h.hub }

// New compiles the module, checks its ABI, and starts one instance so that
// a broken module fails here rather than on the first request.
func New(ctx context.Context, opts Options) (*Host, error) {
	if opts.Module == nil {
		if opts.ModulePath == "" {
			return nil, errors.New("host: no module (set Options.Module or Options.ModulePath)")
		}
		b, err := os.ReadFile(opts.ModulePath)
		if err != nil {
			return nil, fmt.Errorf("host: reading the guest module: %w", err)
		}
		opts.Module = b
	}
	if opts.Pool <= 0 {
		opts.Pool = max(runtime.GOMAXPROCS(0), 2)
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 4 * opts.Pool
	}
	if opts.QueueWait <= 0 {
		opts.QueueWait = time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Second
	}
	if opts.ScheduledTimeout <= 0 {
		opts.ScheduledTimeout = 5 * time.Minute
	}
	if opts.JobWorkers == 0 {
		opts.JobWorkers = 2
	}
	if opts.JobEvery <= 0 {
		opts.JobEvery = time.Second
	}
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = time.Minute
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = handlers.MaxRequestBody
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = DefaultBodyReadTimeout
	}
	switch {
	case opts.BodyMinRate == 0:
		opts.BodyMinRate = DefaultBodyMinRate
	case opts.BodyMinRate < 0:
		opts.BodyMinRate = 0
	}
	if opts.PreReadMemory <= 0 {
		opts.PreReadMemory = DefaultPreReadMemory
	}
	if opts.MemoryLimitMiB <= 0 {
		opts.MemoryLimitMiB = 512
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StreamHeartbeat <= 0 {
		opts.StreamHeartbeat = DefaultStreamHeartbeat
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.StreamPollers <= 0 {
		opts.StreamPollers = max(opts.Pool/2, 1)
	}
	if opts.Platform.Clock == nil {
		opts.Platform.Clock = storage.SystemClock{}
	}
	cfgJSON, err := json.Marshal(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("host: encoding the guest config: %w", err)
	}

	h := &Host{opts: opts, log: opts.Logger, closed: make(chan struct{}),
		streams: make(chan struct{}, max(opts.Pool-1, 1))}
	h.hub = newHub(h, opts.StreamHeartbeat, opts.MaxStreams, opts.StreamPollers)
	rc := wazero.NewRuntimeConfig().
		// Without this a guest that never returns blocks its goroutine
		// forever; with it, cancelling the call's context stops it.
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(opts.MemoryLimitMiB) * 16) // 64 KiB pages
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("host: compilation cache: %w", err)
		}
		h.cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("host: compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(h.cache)
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Host, error) {
		h.rt.Close(ctx)
		if h.cache != nil {
			h.cache.Close(ctx)
		}
		return nil, err
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		return fail(fmt.Errorf("host: WASI: %w", err))
	}
	if err := h.instantiateABI(ctx); err != nil {
		return fail(err)
	}

	// Rewritten first (module.go): its data segments merged, and with a
	// snapshot its globals exported.
	module, globals, err := prepareModule(opts.Module, !opts.NoSnapshot)
	if err != nil {
		return fail(fmt.Errorf("host: preparing the guest module for snapshots (Options.NoSnapshot runs it without): %w", err))
	}
	start := time.Now()
	h.compiled, err = h.rt.CompileModule(ctx, module)
	if err != nil {
		return fail(fmt.Errorf("host: compiling the guest: %w", err))
	}
	h.stats.compile.Store(int64(time.Since(start)))
	if err := checkExports(h.compiled); err != nil {
		return fail(err)
	}

	h.modCfg = wazero.NewModuleConfig().
		WithName(""). // anonymous, so that many instances can coexist
		WithStartFunctions(abi.ExportInitialize).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithEnv("POMMY_CONFIG", string(cfgJSON))

	if !opts.NoSnapshot {
		start := time.Now()
		if h.snap, err = h.takeSnapshot(ctx, globals); err != nil {
			return fail(fmt.Errorf("host: starting the guest instance to snapshot: %w", err))
		}
		h.stats.snapshot.Store(int64(time.Since(start)))
		h.log.Debug("guest snapshot taken", "pages", h.snap.pages, "bytes", h.snap.bytes,
			"globals", len(h.snap.globals), "took", time.Since(start))
	}

	h.pool = newPool(h, opts.Pool, opts.InstancePerRequest, opts.MaxQueue, opts.QueueWait)
	// Start one instance now: a module that cannot start, or speaks
	// another ABI version, fails New rather than the first request.
	inst, err := h.pool.acquireUnbounded(ctx)
	if err != nil {
		return fail(err)
	}
	h.pool.release(inst, true)
	if !opts.NoSpare {
		h.pool.startSpare()
	}
	if opts.JobWorkers > 0 {
		h.jobs = newPool(h, opts.JobWorkers, opts.InstancePerRequest, 0, 0)
	}
	return h, nil
}

// checkExports verifies the module is a pommy_v1 reactor before any
// instance runs.
func checkExports(m wazero.CompiledModule) error {
	exports := m.ExportedFunctions()
	for _, name := range []string{abi.ExportABIVersion, abi.ExportHandle, abi.ExportScheduled} {
		f, ok := exports[name]
		if !ok {
			return fmt.Errorf("host: the module does not export %s; is it the Pommy guest built with -buildmode=c-shared?", name)
		}
		if len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 1 || f.ResultTypes()[0] != api.ValueTypeI32 {
			return fmt.Errorf("host: export %s has the wrong signature", name)
		}
	}
	if _, ok := exports[abi.ExportInitialize]; !ok {
		return fmt.Errorf("host: the module has no %s export; build it with -buildmode=c-shared", abi.ExportInitialize)
	}
	if _, ok := m.ExportedMemories()["memory"]; !ok {
		return errors.New("host: the module exports no memory")
	}
	return nil
}

// Close stops taking requests, ends every held stream (clients resume
// from their cursors elsewhere or later), waits for the running requests
// until ctx ends, then closes every instance and the runtime (killing any
// guest still running). It does not close the platform's stores: their
// owner does, after Close returns.
func (h *Host) Close(ctx context.Context) error {
	var err error
	h.closeOnce.Do(func() {
		close(h.closed)
		h.hub.close()
		err = h.pool.close(ctx)
		if h.jobs != nil {
			if jerr := h.jobs.close(ctx); err == nil {
				err = jerr
			}
		}
		if cerr := h.rt.Close(context.Background()); err == nil {
			err = cerr
		}
		if h.cache != nil {
			h.cache.Close(context.Background())
		}
	})
	return err
}

// ErrClosed is returned by RunScheduled after Close.
var ErrClosed = errors.New("host: closed")
