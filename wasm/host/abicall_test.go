package host

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/wasm/abi"
)

// fakeMemory is guest memory without a guest: a byte slice behind the
// api.Memory methods call and take use. Calling any other method panics
// (the embedded interface is nil), which would show a new dependency.
type fakeMemory struct {
	api.Memory
	b []byte
}

func (m *fakeMemory) Size() uint32 { return uint32(len(m.b)) }

func (m *fakeMemory) Read(off, n uint32) ([]byte, bool) {
	if uint64(off)+uint64(n) > uint64(len(m.b)) {
		return nil, false
	}
	return m.b[off : off+n], true
}

func (m *fakeMemory) Write(off uint32, v []byte) bool {
	if uint64(off)+uint64(len(v)) > uint64(len(m.b)) {
		return false
	}
	copy(m.b[off:], v)
	return true
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// TestCallBounds drives call and take directly, with regions a hostile
// guest could pass, and checks the host refuses each one without touching
// memory outside the guest's.
func TestCallBounds(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h.opts.Platform = storage.Platform{Clock: fixedClock{now}}
	inv := h.newInvocation(context.Background(), "test", now.Add(time.Hour))
	defer inv.cleanup()
	inst := &instance{}
	inv.inst = inst
	ctx := context.WithValue(context.WithValue(context.Background(), instanceKey, inst), invocationKey, inv)
	mem := &fakeMemory{b: make([]byte, 4096)}

	req, _ := abi.Marshal(&abi.ClockNowReq{})
	copy(mem.b[100:], req)
	reply, _ := abi.AppendReply(nil, &abi.ClockNow{Now: now})

	for _, tc := range []struct {
		name    string
		in, out region
		want    int64
	}{
		{"good", region{100, uint32(len(req))}, region{1000, 64}, int64(len(reply))},
		{"input past the end", region{4090, 10}, region{1000, 64}, abi.ErrInOutOfRange},
		{"input wraps around 4 GiB", region{math.MaxUint32 - 2, 8}, region{1000, 64}, abi.ErrInOutOfRange},
		{"input over the message cap", region{0, abi.MaxMessage + 1}, region{1000, 64}, abi.ErrInTooLarge},
		{"output past the end", region{100, uint32(len(req))}, region{4000, 200}, abi.ErrOutOutOfRange},
		{"output wraps around 4 GiB", region{100, uint32(len(req))}, region{math.MaxUint32, 2}, abi.ErrOutOutOfRange},
		{"output too small: kept pending", region{100, uint32(len(req))}, region{1000, 2}, int64(len(reply))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst.broken = false
			before := append([]byte(nil), mem.b...)
			got := h.call(ctx, inst, mem, abi.OpClockNow, tc.in, tc.out)
			if got != tc.want {
				t.Fatalf("call = %d, want %d", got, tc.want)
			}
			if broken := got < 0; inst.broken != broken {
				t.Errorf("broken = %v after result %d", inst.broken, got)
			}
			if got < 0 && string(before) != string(mem.b) {
				t.Error("memory changed by a refused call")
			}
		})
	}

	// The pending reply is delivered by take into a buffer of its size, once.
	inst.broken = false
	if got := take(inst, mem, region{2000, uint32(len(reply)) - 1}); got != abi.ErrNoPending || !inst.broken {
		t.Fatalf("take with the wrong length = %d", got)
	}
	h.call(ctx, inst, mem, abi.OpClockNow, region{100, uint32(len(req))}, region{1000, 2})
	if got := take(inst, mem, region{4090, uint32(len(reply))}); got != abi.ErrOutOutOfRange {
		t.Fatalf("take past the end = %d", got)
	}
	h.call(ctx, inst, mem, abi.OpClockNow, region{100, uint32(len(req))}, region{1000, 2})
	if got := take(inst, mem, region{2000, uint32(len(reply))}); got != 0 {
		t.Fatalf("take = %d", got)
	}
	var cn abi.ClockNow
	if err := abi.DecodeReply(mem.b[2000:2000+len(reply)], &cn); err != nil || !cn.Now.Equal(now) {
		t.Fatalf("taken reply: %v %v", err, cn.Now)
	}
	if got := take(inst, mem, region{2000, uint32(len(reply))}); got != abi.ErrNoPending {
		t.Fatalf("second take = %d", got)
	}
}

// TestDispatchRefusesBadInput: unknown ops, undecodable messages and
// handles of the wrong kind are error replies, not host failures.
func TestDispatchRefusesBadInput(t *testing.T) {
	h := &Host{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h.opts.Platform = storage.Platform{Clock: storage.SystemClock{}}
	inv := h.newInvocation(context.Background(), "test", time.Now().Add(time.Minute))
	defer inv.cleanup()
	inv.inst = &instance{}
	code := func(reply []byte) abi.Code {
		err := abi.DecodeReply(reply, &abi.Empty{})
		if e, ok := err.(*abi.Error); ok {
			return e.Code
		}
		t.Fatalf("not an error reply: %v", err)
		return 0
	}
	if c := code(h.dispatch(context.Background(), inv, abi.Op(9999), nil)); c != abi.CodeInvalid {
		t.Errorf("unknown op: %v", c)
	}
	if c := code(h.dispatch(context.Background(), inv, abi.OpKVGet, []byte{0xFF})); c != abi.CodeInvalid {
		t.Errorf("garbage message: %v", c)
	}
	msg, _ := abi.Marshal(&abi.ReadReq{Handle: 42, Max: 10})
	if c := code(h.dispatch(context.Background(), inv, abi.OpRead, msg)); c != abi.CodeInvalid {
		t.Errorf("read of an unknown handle: %v", c)
	}
	msg, _ = abi.Marshal(&abi.KVGetReq{Key: "k"})
	if c := code(h.dispatch(context.Background(), inv, abi.OpKVGet, msg)); c != abi.CodeUnavailable {
		t.Errorf("KV op with no KV port: %v", c)
	}
	msg, _ = abi.Marshal(&abi.ResponseHead{Status: 200})
	if c := code(h.dispatch(context.Background(), inv, abi.OpResponseHead, msg)); c != abi.CodeInvalid {
		t.Errorf("response head with no request: %v", c)
	}
	// Outside an export call only log and clock work.
	msg, _ = abi.Marshal(&abi.KVGetReq{Key: "k"})
	if c := code(h.dispatch(context.Background(), nil, abi.OpKVGet, msg)); c != abi.CodeInvalid {
		t.Errorf("KV op outside a call: %v", c)
	}
	for range abi.MaxHandles {
		if _, err := inv.add(&keyHandle{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inv.add(&keyHandle{}); err == nil {
		t.Error("no limit on open handles")
	}
}
