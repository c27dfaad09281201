package host

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"pommy.ai/edge/wasm/abi"
)

// instance is one instantiated guest. Only one goroutine uses it at a time
// (the pool hands it out exclusively), so its fields need no lock, except
// callCtx, which the WASI sleep function reads.
type instance struct {
	id        uint64
	mod       api.Module
	handle    api.Function
	scheduled api.Function
	// pending is a reply too large for the guest's buffer, kept until the
	// guest takes it.
	pending []byte
	// broken is set when the guest misused the ABI; the instance is
	// discarded when the export returns.
	broken bool
	// callCtx is the context of the export call in progress. Sleeping in
	// WASI (poll_oneoff) ends early when it is cancelled, so that a guest
	// sleeping past its deadline can be killed: wazero's own sleep ignores
	// contexts.
	callCtx atomic.Pointer[context.Context]
}

var instanceIDs atomic.Uint64

type ctxKey int

const (
	instanceKey ctxKey = iota
	invocationKey
)

func instanceFrom(ctx context.Context) *instance {
	i, _ := ctx.Value(instanceKey).(*instance)
	return i
}

func invocationFrom(ctx context.Context) *invocation {
	i, _ := ctx.Value(invocationKey).(*invocation)
	return i
}

// newInstance prepares an instance's record, its module configuration
// (its own log lines and sleep) and the context to start it in: bounded,
// since an init that hangs must not hang the host, and carrying the
// instance for the ABI functions init may call. The caller calls cancel.
func (h *Host) newInstance(ctx context.Context) (inst *instance, cfg wazero.ModuleConfig, ictx context.Context, cancel context.CancelFunc) {
	inst = &instance{id: instanceIDs.Add(1)}
	logw := &lineLogger{log: h.log, instance: inst.id}
	cfg = h.modCfg.
		WithNanosleep(inst.sleep).
		WithStdout(logw).
		WithStderr(logw)
	ictx, cancel = context.WithTimeout(context.WithValue(ctx, instanceKey, inst), 30*time.Second)
	inst.callCtx.Store(&ictx)
	return inst, cfg, ictx, cancel
}

// instantiate creates an instance, from the snapshot or by running the Go
// runtime's _initialize, and checks the ABI version it reports.
func (h *Host) instantiate(ctx context.Context) (*instance, error) {
	inst, cfg, ictx, cancel := h.newInstance(ctx)
	defer cancel()
	start := time.Now()
	var mod api.Module
	var err error
	if h.snap != nil {
		mod, err = h.snap.instantiate(ictx, h.rt, h.compiled, cfg)
	} else {
		mod, err = h.rt.InstantiateModule(ictx, h.compiled, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("host: starting a guest instance: %w", err)
	}
	h.stats.lastInst.Store(int64(time.Since(start)))
	inst.mod = mod
	inst.handle = mod.ExportedFunction(abi.ExportHandle)
	inst.scheduled = mod.ExportedFunction(abi.ExportScheduled)
	res, err := mod.ExportedFunction(abi.ExportABIVersion).Call(ictx)
	if err != nil {
		mod.Close(context.Background())
		return nil, fmt.Errorf("host: asking the guest its ABI version: %w", err)
	}
	if v := int32(res[0]); v != abi.Version {
		mod.Close(context.Background())
		return nil, fmt.Errorf("host: the guest speaks ABI version %d, this host version %d; rebuild them together", v, abi.Version)
	}
	inst.callCtx.Store(nil)
	h.stats.instantiated.Add(1)
	h.stats.alive.Add(1)
	return inst, nil
}

// takeSnapshot runs _initialize in a template instance, which is then
// closed, and keeps its state for every later instance to start from.
func (h *Host) takeSnapshot(ctx context.Context, globals []string) (*snapshot, error) {
	_, cfg, ictx, cancel := h.newInstance(ctx)
	defer cancel()
	return takeSnapshot(ictx, h.rt, h.compiled, cfg, abi.ExportInitialize, globals)
}

func (i *instance) close(h *Host) {
	i.mod.Close(context.Background())
	h.stats.alive.Add(-1)
}

// sleep implements WASI's nanosleep (the Go runtime sleeps through
// poll_oneoff when all goroutines wait on timers). It returns early when the
// current call is cancelled, after which wazero stops the guest.
func (i *instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	var done <-chan struct{}
	if p := i.callCtx.Load(); p != nil {
		done = (*p).Done()
	}
	select {
	case <-t.C:
	case <-done:
	}
}

// call runs one export with inv as its invocation. callCtx is cancelled
// to kill the guest; the returned error is a trap, an exit or a kill.
func (i *instance) call(callCtx context.Context, fn api.Function, inv *invocation) (int32, error) {
	ctx := context.WithValue(context.WithValue(callCtx, instanceKey, i), invocationKey, inv)
	i.callCtx.Store(&ctx)
	defer i.callCtx.Store(nil)
	i.pending = nil
	res, err := fn.Call(ctx)
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

// lineLogger turns the guest's stdout and stderr (a Go panic's message and
// stack, log lines of code that bypasses slog) into log records, one per
// line, each capped so that a runaway guest cannot flood the log.
type lineLogger struct {
	log      interface{ Warn(string, ...any) }
	instance uint64
	mu       sync.Mutex
	buf      []byte
}

const maxLogLine = 8 << 10

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > maxLogLine {
				l.emit(l.buf[:maxLogLine])
				l.buf = l.buf[:0]
			}
			return len(p), nil
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) emit(line []byte) {
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	if s := strings.TrimRight(string(line), "\r"); s != "" {
		l.log.Warn("guest output", "instance", l.instance, "line", s)
	}
}
