package host

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"pommy.ai/edge/wasm/abi"
)

// instantiateABI defines the pommy_v1 host module: call and take. They are
// the only way the guest reaches the host besides WASI.
func (h *Host) instantiateABI(ctx context.Context) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	_, err := h.rt.NewHostModuleBuilder(abi.ImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(h.abiCall), []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i64}).
		WithParameterNames("op", "in_ptr", "in_len", "out_ptr", "out_cap").
		Export(abi.ImportCall).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(h.abiTake), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("out_ptr", "out_len").
		Export(abi.ImportTake).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("host: defining %s: %w", abi.ImportModule, err)
	}
	return nil
}

// abiCall is pommy_v1.call(op, in_ptr, in_len, out_ptr, out_cap) -> i64.
func (h *Host) abiCall(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		// Called through a context we did not make: nothing to answer for.
		stack[0] = api.EncodeI64(abi.ErrNoPending)
		return
	}
	op := abi.Op(api.DecodeU32(stack[0]))
	in, out := region{api.DecodeU32(stack[1]), api.DecodeU32(stack[2])}, region{api.DecodeU32(stack[3]), api.DecodeU32(stack[4])}
	stack[0] = api.EncodeI64(h.call(ctx, inst, mod.Memory(), op, in, out))
}

// abiTake is pommy_v1.take(out_ptr, out_len) -> i32.
func (h *Host) abiTake(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	out := region{api.DecodeU32(stack[0]), api.DecodeU32(stack[1])}
	if inst == nil {
		stack[0] = api.EncodeI32(int32(abi.ErrNoPending))
		return
	}
	stack[0] = api.EncodeI32(int32(take(inst, mod.Memory(), out)))
}

// region is a (pointer, length) pair in guest memory, not yet trusted.
type region struct{ ptr, len uint32 }

// within reports whether the region lies inside memory. The sum is taken
// in 64 bits so that a pointer near 4 GiB cannot wrap around.
func (r region) within(mem api.Memory) bool {
	return mem != nil && uint64(r.ptr)+uint64(r.len) <= uint64(mem.Size())
}

// call validates the guest's regions, decodes and performs the op, and
// delivers the reply, or keeps it pending if the guest's buffer is too
// small. A negative result marks the instance broken.
func (h *Host) call(ctx context.Context, inst *instance, mem api.Memory, op abi.Op, in, out region) int64 {
	inst.pending = nil
	switch {
	case in.len > abi.MaxMessage:
		inst.broken = true
		return abi.ErrInTooLarge
	case !in.within(mem):
		inst.broken = true
		return abi.ErrInOutOfRange
	case !out.within(mem):
		inst.broken = true
		return abi.ErrOutOutOfRange
	}
	// The view aliases guest memory; the decoder copies what it keeps,
	// and the guest cannot run (and change it) while we hold it.
	msg, _ := mem.Read(in.ptr, in.len)
	reply := h.dispatch(ctx, invocationFrom(ctx), op, msg)
	if uint32(len(reply)) > out.len {
		inst.pending = reply
		return int64(len(reply))
	}
	mem.Write(out.ptr, reply) // within, checked above
	return int64(len(reply))
}

// take delivers a pending reply into a buffer the guest has grown for it.
func take(inst *instance, mem api.Memory, out region) int64 {
	p := inst.pending
	inst.pending = nil
	switch {
	case p == nil || uint32(len(p)) != out.len:
		inst.broken = true
		return abi.ErrNoPending
	case !out.within(mem):
		inst.broken = true
		return abi.ErrOutOutOfRange
	}
	mem.Write(out.ptr, p)
	return 0
}
