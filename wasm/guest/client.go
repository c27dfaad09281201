package main

import (
	"fmt"
	"sync"

	"pommy.ai/edge/wasm/abi"
)

// transport delivers one encoded request to the host and returns the raw
// reply (status byte first). The reply is valid until the next call.
type transport interface {
	call(op abi.Op, in []byte) []byte
}

// client encodes requests, makes calls and decodes replies. Calls are
// serialised: the reply buffer is shared, and although Wasm runs one
// goroutine at a time, a goroutine switch between call and take must not let
// another call in.
type client struct {
	mu  sync.Mutex
	t   transport
	enc []byte
}

func newClient(t transport) *client { return &client{t: t} }

// do performs op. An error reply comes back as *abi.Error, which unwraps to
// the storage sentinel of its code, so errors.Is works as it would against
// the native adapter.
func (c *client) do(op abi.Op, req, resp abi.Message) error {
	return c.call(op, req, resp, abi.DecodeReply)
}

// doAliased is do for bulk reads: resp's byte slices point into the reply
// buffer and are valid only until the next call, so the caller copies them
// out first. It saves an allocation per chunk (docs/decisions.md: garbage,
// not copying, is what costs in the guest).
func (c *client) doAliased(op abi.Op, req, resp abi.Message) error {
	return c.call(op, req, resp, abi.DecodeReplyAliased)
}

// keepBuf is the largest encoding buffer (and, in the transport, reply
// buffer) kept between calls: room for one bulk chunk and its framing, so
// streaming a body allocates nothing per chunk. Anything larger (a big SQL
// result) is left to the collector.
const keepBuf = bulkChunk + 4<<10

func (c *client) call(op abi.Op, req, resp abi.Message, decode func([]byte, abi.Message) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := abi.NewEncoder(c.enc[:0])
	req.Encode(e)
	in, err := e.Finish()
	if err != nil {
		return &abi.Error{Code: abi.CodeInvalid, Message: fmt.Sprintf("%v: %v", op, err)}
	}
	out := c.t.call(op, in)
	if cap(in) <= keepBuf {
		c.enc = in[:0]
	}
	if err := decode(out, resp); err != nil {
		if _, ok := err.(*abi.Error); ok {
			return err
		}
		// The host sent something this guest cannot read: a version skew
		// the instantiate-time check should have caught.
		return &abi.Error{Code: abi.CodeInternal, Message: fmt.Sprintf("%v: %v", op, err)}
	}
	return nil
}
