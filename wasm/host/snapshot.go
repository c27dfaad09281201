package host

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// A snapshot is a guest instance's state just after _initialize: its
// linear memory and its mutable globals. Restoring it into an instance
// that skipped _initialize gives an instance in the state _initialize
// would have left it in (the same heap, the same goroutines parked at the
// same places), for a memory copy instead of starting the Go runtime and
// running every package's init.
//
// That memory and globals are all the state there is, for a Go wasip1
// guest (docs/decisions.md, "Instances start from a snapshot"):
//   - Go keeps everything, goroutine stacks included, in linear memory;
//     its eight globals are its registers (SP, CTXT, g, RET0-3, PAUSE),
//     and the Wasm call stack is empty between export calls.
//   - Its one table is filled by an element segment and never written:
//     the Go toolchain emits no table instructions.
//   - The WASI state wazero keeps outside memory (the fd table, args,
//     environment, clocks, random source) is built per instance from the
//     same ModuleConfig, and what the runtime read of it at init (the
//     environment) is in memory. The one WASI write at init, making stdio
//     non-blocking, fails on wazero's writer-backed stdio, so no fd flag
//     differs between the template and its copies.
//   - The pommy_v1 host module keeps per-call state in the call's context,
//     never in the module.
//
// What the copies do share is the outcome of every random draw made
// during init: the runtime's generator, and so math/rand's sequence, map
// hash seeds and hash/maphash seeds. crypto/rand keeps no state on
// wasip1 and calls random_get on every read. Clocks are the host's (wall
// and process-wide monotonic), so the copies see time moving on from the
// snapshot as if the instance had been idle since.
type snapshot struct {
	pages   uint32        // memory size, in 64 KiB pages
	chunks  []memChunk    // the bytes that differ from a fresh instance's
	globals []globalValue // every mutable global
	bytes   int           // the bytes in chunks
	// memory is the linear memory of the live instances made from it, in
	// bytes reserved (Stats.GuestMemory).
	memory atomic.Int64
}

type memChunk struct {
	off  uint32
	data []byte
}

type globalValue struct {
	name string
	val  uint64
}

// snapshotGlobalPrefix names the exports exportGlobals adds.
const snapshotGlobalPrefix = "pommy.snapshot.global."

// snapshotBlock is the granularity at which memory is compared with a
// fresh instance's: a block that differs is copied whole.
const snapshotBlock = 4096

const wasmPage = 65536

// runtimeSeed is the randomness the Go runtime reads at start (runtime
// randinit: one random_get of 32 bytes), from which it derives its
// generator and hash keys. A snapshot shares it; it refuses to share more.
const runtimeSeed = 32

// takeSnapshot instantiates the module without running its start
// function, records its memory, calls initialize (with ctx, which carries
// the template's instance for the ABI functions) and records what
// changed, and the globals.
//
// It fails if init read randomness beyond the runtime's seed: a key or
// token drawn from crypto/rand in a package's init would otherwise be the
// same in every instance.
func takeSnapshot(ctx context.Context, rt wazero.Runtime, compiled wazero.CompiledModule, cfg wazero.ModuleConfig, initialize string, globals []string) (*snapshot, error) {
	random := &countingReader{r: rand.Reader}
	mod, err := rt.InstantiateModule(ctx, compiled, cfg.WithStartFunctions().WithRandSource(random))
	if err != nil {
		return nil, err
	}
	defer mod.Close(context.Background())
	mem := mod.Memory()
	if mem == nil {
		return nil, fmt.Errorf("the module has no memory")
	}
	fresh, _ := mem.Read(0, mem.Size())
	fresh = bytes.Clone(fresh)
	if _, err := mod.ExportedFunction(initialize).Call(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", initialize, err)
	}
	if random.reads > 1 || random.first > runtimeSeed {
		return nil, fmt.Errorf("the guest read %d bytes of randomness in %d calls during init, more than the Go runtime's seed "+
			"(one call, %d bytes): every instance started from a snapshot would share them; draw them after init, or set NoSnapshot",
			random.bytes, random.reads, runtimeSeed)
	}
	after, _ := mem.Read(0, mem.Size())
	s := &snapshot{pages: mem.Size() / wasmPage}
	var zero [snapshotBlock]byte
	for off := 0; off < len(after); off += snapshotBlock {
		block := after[off : off+snapshotBlock]
		var was []byte // what a fresh instance has here
		if off < len(fresh) {
			was = fresh[off : off+snapshotBlock]
		} else {
			was = zero[:]
		}
		if bytes.Equal(block, was) {
			continue
		}
		if n := len(s.chunks); n > 0 && int(s.chunks[n-1].off)+len(s.chunks[n-1].data) == off {
			s.chunks[n-1].data = append(s.chunks[n-1].data, block...)
		} else {
			s.chunks = append(s.chunks, memChunk{off: uint32(off), data: bytes.Clone(block)})
		}
		s.bytes += snapshotBlock
	}
	for _, name := range globals {
		g := mod.ExportedGlobal(name)
		if g == nil {
			return nil, fmt.Errorf("global %s is not exported", name)
		}
		s.globals = append(s.globals, globalValue{name: name, val: g.Get()})
	}
	return s, nil
}

// instantiate creates an instance in the snapshot's state: it
// instantiates the module without its start function, in memory already
// as large as the snapshot's, then writes the snapshot's bytes and
// globals over it.
func (s *snapshot) instantiate(ctx context.Context, rt wazero.Runtime, compiled wazero.CompiledModule, cfg wazero.ModuleConfig) (api.Module, error) {
	ctx = experimental.WithMemoryAllocator(ctx, memoryAllocator{initialCap: uint64(s.pages) * wasmPage, total: &s.memory})
	mod, err := rt.InstantiateModule(ctx, compiled, cfg.WithStartFunctions())
	if err != nil {
		return nil, err
	}
	if err := s.restore(mod); err != nil {
		mod.Close(context.Background())
		return nil, fmt.Errorf("restoring the snapshot: %w", err)
	}
	return mod, nil
}

// countingReader counts the reads of the random source during init.
type countingReader struct {
	r                   io.Reader
	reads, first, bytes int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 1 {
		c.first = len(p)
	}
	c.bytes += len(p)
	return c.r.Read(p)
}

func (s *snapshot) restore(mod api.Module) error {
	mem := mod.Memory()
	cur := mem.Size() / wasmPage
	if cur > s.pages {
		return fmt.Errorf("a fresh instance has %d pages of memory, more than the snapshot's %d", cur, s.pages)
	}
	if _, ok := mem.Grow(s.pages - cur); !ok {
		return fmt.Errorf("growing memory to %d pages failed", s.pages)
	}
	for _, c := range s.chunks {
		mem.Write(c.off, c.data) // within: the memory has s.pages now
	}
	for _, g := range s.globals {
		mg, ok := mod.ExportedGlobal(g.name).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("global %s is not exported mutable", g.name)
		}
		mg.Set(g.val)
	}
	return nil
}

// memoryAllocator backs a linear memory with a Go slice whose first
// allocation already has room for initialCap bytes, so that growing a new
// instance's memory to the snapshot's size does not reallocate and copy
// it (wazero's own growth appends). Later growth (the guest's heap)
// adds a quarter, as append does for large slices. Fresh bytes are zero,
// as Wasm requires: a slice's bytes past its length were zeroed by make
// and never written, since linear memory never shrinks.
type memoryAllocator struct {
	initialCap uint64
	total      *atomic.Int64
}

func (a memoryAllocator) Allocate(capacity, maximum uint64) experimental.LinearMemory {
	m := &linearMemory{buf: make([]byte, 0, min(max(capacity, a.initialCap), maximum)), max: maximum, total: a.total}
	a.total.Add(int64(cap(m.buf)))
	return m
}

type linearMemory struct {
	buf   []byte
	max   uint64
	total *atomic.Int64
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	c := uint64(cap(m.buf))
	nb := make([]byte, size, max(size, min(c+c/4, m.max)))
	m.total.Add(int64(cap(nb)) - int64(c))
	copy(nb, m.buf)
	m.buf = nb
	return m.buf
}

func (m *linearMemory) Free() {
	m.total.Add(-int64(cap(m.buf)))
	m.buf = nil
}
