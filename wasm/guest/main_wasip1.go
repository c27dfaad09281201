//go:build wasip1

package main

import (
	"fmt"
	"runtime"
	"unsafe"

	"pommy.ai/edge/wasm/abi"
)

// This file is the only place that touches Wasm: the functions the guest
// exports to the host and the two it imports. Everything else in the package
// is plain Go, so it also compiles natively (where its tests connect it to
// the host's dispatcher without Wasm in between).

//go:wasmexport pommy_v1_abi_version
func exportABIVersion() int32 { return abi.Version }

//go:wasmexport pommy_v1_handle
func exportHandle() int32 { return handle(hostClient) }

//go:wasmexport pommy_v1_scheduled
func exportScheduled() int32 { return scheduled(hostClient) }

//go:wasmimport pommy_v1 call
func hostCall(op uint32, in unsafe.Pointer, inLen uint32, out unsafe.Pointer, outCap uint32) int64

//go:wasmimport pommy_v1 take
func hostTake(out unsafe.Pointer, outLen uint32) int32

var hostClient = newClient(&wasmTransport{buf: make([]byte, smallReplyBuf)})

// init builds the application during _initialize, which the host runs once
// and snapshots, so no request pays for building the handler. It makes no
// host call: the ABI has no invocation to serve one until an export runs.
func init() { setup(hostClient) }

// smallReplyBuf is the reply buffer an instance starts with. Most replies
// fit; a larger one grows it, and a buffer of up to keepBuf (one bulk read)
// is kept so that streaming does not allocate a reply buffer per chunk.
const smallReplyBuf = 64 << 10

// wasmTransport makes calls through the pommy_v1 imports.
type wasmTransport struct{ buf []byte }

func (t *wasmTransport) call(op abi.Op, in []byte) []byte {
	if cap(t.buf) > keepBuf {
		// Let a large reply buffer from an earlier call be collected.
		t.buf = make([]byte, smallReplyBuf)
	}
	n := hostCall(uint32(op), unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)),
		unsafe.Pointer(unsafe.SliceData(t.buf)), uint32(len(t.buf)))
	runtime.KeepAlive(in)
	if n < 0 {
		panic(fmt.Sprintf("pommy_v1.call(%v): the host reports an ABI violation (%d)", op, n))
	}
	if n > int64(len(t.buf)) {
		// The reply did not fit: the host holds it until we take it.
		// Grow straight to keepBuf, the size kept, so that a stream of
		// large replies pays for one allocation, not one each.
		t.buf = make([]byte, max(n, keepBuf))
		if r := hostTake(unsafe.Pointer(unsafe.SliceData(t.buf)), uint32(n)); r != 0 {
			panic(fmt.Sprintf("pommy_v1.take(%v): the host reports an ABI violation (%d)", op, r))
		}
	}
	return t.buf[:n]
}
