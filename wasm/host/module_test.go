package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// freshMemory instantiates module without its start function (in the
// interpreter: what is compared is the data, not the code) and returns its
// memory and the module.
func freshMemory(t *testing.T, module []byte) ([]byte, api.Module) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if err := (&Host{rt: rt}).instantiateABI(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, module, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(b), mod
}

func dataSegments(t *testing.T, module []byte) uint64 {
	t.Helper()
	secs, err := sections(module)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secs {
		if s.id == secData {
			n, _ := binary.Uvarint(s.body)
			return n
		}
	}
	return 0
}

// The rewrites must not change what a fresh instance's memory holds.
func TestPrepareModuleKeepsMemory(t *testing.T) {
	want, _ := freshMemory(t, testGuest)
	for _, snapshot := range []bool{false, true} {
		out, globals, err := prepareModule(testGuest, snapshot)
		if err != nil {
			t.Fatal(err)
		}
		got, mod := freshMemory(t, out)
		if !bytes.Equal(got, want) {
			t.Fatalf("snapshot=%v: a fresh instance's memory differs after the rewrite", snapshot)
		}
		if before, after := dataSegments(t, testGuest), dataSegments(t, out); after >= before || after > 2 {
			t.Errorf("data segments: %d before, %d after", before, after)
		}
		if !snapshot {
			if globals != nil {
				t.Errorf("globals exported without a snapshot: %v", globals)
			}
			continue
		}
		// Go's eight registers, all mutable.
		if len(globals) != 8 {
			t.Errorf("exported globals: %v", globals)
		}
		for _, name := range globals {
			if _, ok := mod.ExportedGlobal(name).(api.MutableGlobal); !ok {
				t.Errorf("%s is not an exported mutable global", name)
			}
		}
	}
}

// wasmModule builds a module with four pages of memory and the given
// sections after it.
func wasmModule(secs ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, 5, 3, 1, 0, 4) // memory section: one memory, min 4 pages
	for _, s := range secs {
		m = append(m, s...)
	}
	return m
}

func wasmSection(id byte, count int, entries ...[]byte) []byte {
	body := binary.AppendUvarint(nil, uint64(count))
	for _, e := range entries {
		body = append(body, e...)
	}
	return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
}

func activeSegment(off int32, data string) []byte {
	b := appendSLEB128([]byte{0, opI32Const}, int64(off))
	b = append(b, opEnd)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

func passiveSegment(data string) []byte {
	return append(binary.AppendUvarint([]byte{1}, uint64(len(data))), data...)
}

func TestCoalesceData(t *testing.T) {
	for _, c := range []struct {
		name     string
		module   []byte
		segments uint64 // after; 0: the module must be left as it was
	}{
		{"out of order, with gaps", wasmModule(wasmSection(secData, 3,
			activeSegment(5000, "third"), activeSegment(16, "first"), activeSegment(100, "second"))), 1},
		{"a gap over maxDataGap", wasmModule(wasmSection(secData, 2,
			activeSegment(maxDataGap+100, "far"), activeSegment(0, "near"))), 2},
		{"overlapping", wasmModule(wasmSection(secData, 2,
			activeSegment(0, "aaaa"), activeSegment(2, "bb"))), 0},
		{"passive", wasmModule(wasmSection(secData, 2,
			activeSegment(0, "aaaa"), passiveSegment("bb"))), 0},
		{"with a data count", wasmModule(wasmSection(secDataCount, 2), wasmSection(secData, 2,
			activeSegment(0, "aaaa"), activeSegment(10, "bb"))), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := prepareModule(c.module, false)
			if err != nil {
				t.Fatal(err)
			}
			if c.segments == 0 {
				if !bytes.Equal(out, c.module) {
					t.Fatal("the module was rewritten")
				}
				return
			}
			if got := dataSegments(t, out); got != c.segments {
				t.Errorf("%d segments, want %d", got, c.segments)
			}
			want, _ := freshMemory(t, c.module)
			if got, _ := freshMemory(t, out); !bytes.Equal(got, want) {
				t.Error("memory differs after the rewrite")
			}
		})
	}
}

func TestSLEB128(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 69411, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		r := &wasmReader{b: appendSLEB128(nil, v)}
		if got := r.sleb128(); got != v || r.err != nil || len(r.b) != 0 {
			t.Errorf("%d: got %d, err %v, %d bytes left", v, got, r.err, len(r.b))
		}
	}
}
