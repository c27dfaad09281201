package host

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The host rewrites the guest module before compiling it, in two ways that
// leave its code untouched (and are deterministic, so that the compilation
// cache still hits):
//
//   - coalesceData merges the data segments. Go's linker writes one
//     segment per run of non-zero bytes (75,955 segments for 2 MB in the
//     real guest), and wazero evaluates and copies them one at a time on
//     every instantiation: about 5 ms of an instantiation's 6. Merged, the
//     zeros between them included, they are one copy of 3.4 MB.
//   - exportGlobals exports the mutable globals (Go's registers), which a
//     snapshot must read and restore (snapshot.go).

// Wasm section ids and kinds used below.
const (
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secData      = 11
	secDataCount = 12
	kindGlobal   = 3

	opEnd      = 0x0b
	opI32Const = 0x41
)

// maxDataGap is the longest run of zeros coalesceData writes out to join
// two segments; a longer gap starts a new segment.
const maxDataGap = 64 << 10

type section struct {
	id         byte
	start, end int // the whole section, header included
	body       []byte
}

func sections(module []byte) ([]section, error) {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return nil, errors.New("not a Wasm module")
	}
	var out []section
	for p := 8; p < len(module); {
		id := module[p]
		size, n := binary.Uvarint(module[p+1:])
		if n <= 0 || size > uint64(len(module)-p-1-n) {
			return nil, errors.New("malformed section header")
		}
		end := p + 1 + n + int(size)
		out = append(out, section{id: id, start: p, end: end, body: module[p+1+n : end]})
		p = end
	}
	return out, nil
}

// replaceSections returns module with the given sections' bodies replaced.
func replaceSections(module []byte, secs []section, bodies map[int][]byte) []byte {
	out := make([]byte, 0, len(module))
	out = append(out, module[:8]...)
	for i, s := range secs {
		b, ok := bodies[i]
		if !ok {
			out = append(out, module[s.start:s.end]...)
			continue
		}
		out = append(out, s.id)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

// prepareModule applies the rewrites: coalesceData always (it cannot change
// what the module does), exportGlobals when snapshotting. globals are the
// names of the added exports.
func prepareModule(module []byte, snapshot bool) (out []byte, globals []string, err error) {
	secs, err := sections(module)
	if err != nil {
		// Not a module we can read: compiling it reports why.
		return module, nil, nil
	}
	bodies := map[int][]byte{}
	for i, s := range secs {
		if s.id == secData {
			if b, ok := coalesceData(s.body, secs); ok {
				bodies[i] = b
			}
		}
	}
	exports := slices.IndexFunc(secs, func(s section) bool { return s.id == secExport })
	// A module without exports is not a guest: checkExports says so.
	if snapshot && exports >= 0 {
		bodies[exports], globals, err = exportGlobals(secs)
		if err != nil {
			return nil, nil, err
		}
	}
	return replaceSections(module, secs, bodies), globals, nil
}

// coalesceData merges the data section's segments into as few as it can:
// each run of segments separated by at most maxDataGap bytes becomes one
// segment, with the gaps written as zeros (what a fresh memory holds
// there). It leaves the section alone (ok false) unless every segment is
// active, in memory 0, at an i32.const offset, and no two overlap, and
// unless no data count section exists (memory.init and data.drop name
// segments by index).
func coalesceData(body []byte, secs []section) (out []byte, ok bool) {
	for _, s := range secs {
		if s.id == secDataCount {
			return nil, false
		}
	}
	type segment struct {
		off  uint32
		data []byte
	}
	r := &wasmReader{b: body}
	n := r.uvarint()
	segs := make([]segment, 0, min(n, uint64(len(body))))
	for range n {
		if r.uvarint() != 0 || r.byte() != opI32Const { // flags 0: active, memory 0
			return nil, false
		}
		off := uint32(r.sleb128())
		if r.byte() != opEnd {
			return nil, false
		}
		size := r.uvarint()
		data := r.bytes(size)
		if r.err != nil {
			return nil, false
		}
		segs = append(segs, segment{off, data})
	}
	if r.err != nil || len(r.b) != 0 || len(segs) < 2 {
		return nil, false
	}
	// Segments that do not overlap can be applied in any order; Go's are
	// not in address order.
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.off, b.off) })
	for i := 1; i < len(segs); i++ {
		if uint64(segs[i].off) < uint64(segs[i-1].off)+uint64(len(segs[i-1].data)) {
			return nil, false
		}
	}
	var merged []segment
	for _, s := range segs {
		if k := len(merged); k > 0 {
			last := &merged[k-1]
			if end := last.off + uint32(len(last.data)); s.off-end <= maxDataGap {
				last.data = append(last.data, make([]byte, s.off-end)...)
				last.data = append(last.data, s.data...)
				continue
			}
		}
		merged = append(merged, segment{s.off, bytes.Clone(s.data)})
	}
	out = binary.AppendUvarint(out, uint64(len(merged)))
	for _, s := range merged {
		out = append(out, 0, opI32Const)
		out = appendSLEB128(out, int64(int32(s.off)))
		out = append(out, opEnd)
		out = binary.AppendUvarint(out, uint64(len(s.data)))
		out = append(out, s.data...)
	}
	return out, true
}

// appendSLEB128 appends v as a signed LEB128 number.
func appendSLEB128(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// exportGlobals returns the export section with each of the module's own
// mutable globals also exported, as snapshotGlobalPrefix+index.
func exportGlobals(secs []section) (body []byte, names []string, err error) {
	var importedGlobals uint32
	var mutable []uint32 // indexes of the module's own mutable globals
	var exports []byte
	for _, s := range secs {
		switch s.id {
		case secImport:
			g, err := countImportedGlobals(s.body)
			if err != nil {
				return nil, nil, fmt.Errorf("import section: %w", err)
			}
			importedGlobals = g
		case secGlobal:
			m, err := mutableGlobals(s.body)
			if err != nil {
				return nil, nil, fmt.Errorf("global section: %w", err)
			}
			for _, i := range m {
				mutable = append(mutable, importedGlobals+i)
			}
		case secExport:
			exports = s.body
		}
	}
	count, cn := binary.Uvarint(exports)
	if cn <= 0 {
		return nil, nil, errors.New("malformed export section")
	}
	body = binary.AppendUvarint(body, count+uint64(len(mutable)))
	body = append(body, exports[cn:]...)
	for _, idx := range mutable {
		name := fmt.Sprintf("%s%d", snapshotGlobalPrefix, idx)
		names = append(names, name)
		body = binary.AppendUvarint(body, uint64(len(name)))
		body = append(body, name...)
		body = append(body, kindGlobal)
		body = binary.AppendUvarint(body, uint64(idx))
	}
	return body, names, nil
}

func countImportedGlobals(body []byte) (uint32, error) {
	r := &wasmReader{b: body}
	var globals uint32
	for range r.uvarint() {
		r.skip(r.uvarint()) // module
		r.skip(r.uvarint()) // name
		switch kind := r.byte(); kind {
		case 0: // func
			r.uvarint()
		case 1: // table
			r.byte()
			r.limits()
		case 2: // memory
			r.limits()
		case 3: // global
			r.byte()
			r.byte()
			globals++
		default:
			if r.err == nil {
				r.err = fmt.Errorf("unknown import kind %d", kind)
			}
		}
		if r.err != nil {
			break
		}
	}
	return globals, r.err
}

// mutableGlobals returns the indexes, within the section, of the mutable
// globals. Only the constant expressions a Go module uses are understood;
// anything else is an error.
func mutableGlobals(body []byte) ([]uint32, error) {
	r := &wasmReader{b: body}
	var out []uint32
	for i := range uint32(r.uvarint()) {
		typ, mut := r.byte(), r.byte()
		if mut == 1 {
			switch typ {
			case 0x7f, 0x7e, 0x7d, 0x7c: // i32 i64 f32 f64
			default:
				if r.err == nil {
					return nil, fmt.Errorf("global %d: a mutable global of type 0x%x cannot be snapshotted", i, typ)
				}
			}
			out = append(out, i)
		}
		// The initialiser: constants and global.get, up to end.
	expr:
		for r.err == nil {
			switch op := r.byte(); op {
			case opEnd:
				break expr
			case opI32Const, 0x42, 0x23: // i32.const, i64.const, global.get
				r.sleb128()
			case 0x43: // f32.const
				r.skip(4)
			case 0x44: // f64.const
				r.skip(8)
			default:
				if r.err == nil {
					r.err = fmt.Errorf("global %d: initialiser opcode 0x%x not understood", i, op)
				}
			}
		}
		if r.err != nil {
			break
		}
	}
	return out, r.err
}

// wasmReader is a cursor over a section's bytes; the first error sticks.
type wasmReader struct {
	b   []byte
	err error
}

func (r *wasmReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errors.New("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wasmReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad LEB128")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// sleb128 reads a signed LEB128 number (at most 64 bits).
func (r *wasmReader) sleb128() int64 {
	var v int64
	var shift uint
	for r.err == nil {
		if shift >= 64 {
			r.err = errors.New("bad LEB128")
			return 0
		}
		c := r.byte()
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	return 0
}

func (r *wasmReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("truncated")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *wasmReader) skip(n uint64) { r.bytes(n) }

func (r *wasmReader) limits() {
	flags := r.byte()
	r.uvarint()
	if flags&1 != 0 {
		r.uvarint()
	}
}
