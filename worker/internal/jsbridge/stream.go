//go:build js && wasm

package jsbridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
)

// ErrClosed is returned by a stream reader after Close.
var ErrClosed = errors.New("jsbridge: stream closed")

// StreamReader reads a JavaScript ReadableStream of bytes. Close cancels the
// stream, so a caller that stops early releases the source (an R2 object, a
// fetch response).
type StreamReader struct {
	reader  js.Value
	pending []byte
	err     error
}

// NewStreamReader locks stream and returns a reader of its bytes.
func NewStreamReader(stream js.Value) (*StreamReader, error) {
	r, err := Call(stream, "getReader")
	if err != nil {
		return nil, err
	}
	return &StreamReader{reader: r}, nil
}

func (s *StreamReader) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		res, err := CallAwait(context.Background(), s.reader, "read")
		if err != nil {
			s.err = err
			return 0, err
		}
		if res.Get("done").Bool() {
			s.err = io.EOF
			return 0, io.EOF
		}
		chunk, err := Bytes(res.Get("value"))
		if err != nil {
			s.err = err
			return 0, err
		}
		s.pending = chunk
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// Close cancels the stream. It is safe to call more than once.
func (s *StreamReader) Close() error {
	if s.err == ErrClosed {
		return nil
	}
	if s.err != io.EOF {
		// Cancelling returns a promise; nothing useful can be done if it fails.
		ignore(Call(s.reader, "cancel"))
	}
	s.err = ErrClosed
	s.pending = nil
	return nil
}

// Pipe feeds a JavaScript ReadableStream from a Go reader, so that a body can
// be handed to a binding (R2 put, fetch) without holding it all in memory.
type Pipe struct {
	// Readable is the stream to pass to the consumer.
	Readable js.Value
	writer   js.Value
	src      io.Reader
	size     int64
	done     chan error
	abort    chan struct{}
	once     sync.Once
}

// chunkSize is how much the pump reads from Go per write.
const chunkSize = 64 << 10

// ErrSizeMismatch means a body was shorter or longer than its declared size.
var ErrSizeMismatch = errors.New("jsbridge: body length differs from declared size")

// NewPipe makes the stream. With size >= 0 it is a FixedLengthStream, whose
// length consumers can see (R2 requires a known length; fetch sends
// Content-Length); a body of any other length makes the stream error. With
// size < 0 it is an IdentityTransformStream of unknown length.
//
// Call Start after handing Readable to its consumer: writes wait for the
// consumer to read.
func NewPipe(src io.Reader, size int64) (*Pipe, error) {
	var ts js.Value
	var err error
	if size >= 0 {
		ts, err = Try(func() js.Value { return global.Get("FixedLengthStream").New(float64(size)) })
	} else {
		ts, err = Try(func() js.Value { return global.Get("IdentityTransformStream").New() })
	}
	if err != nil {
		return nil, err
	}
	w, err := Call(ts.Get("writable"), "getWriter")
	if err != nil {
		return nil, err
	}
	return &Pipe{Readable: ts.Get("readable"), writer: w, src: src, size: size,
		done: make(chan error, 1), abort: make(chan struct{})}, nil
}

// Start begins copying from the Go reader in a goroutine.
func (p *Pipe) Start(ctx context.Context) {
	go func() { p.done <- p.pump(ctx) }()
}

// Wait returns the pump's outcome: nil when every byte was written and the
// stream closed, otherwise why the stream was aborted.
func (p *Pipe) Wait() error { return <-p.done }

// Abort errors the stream (the consumer's operation fails) and stops the
// pump. It is safe to call at any time and more than once.
func (p *Pipe) Abort(reason error) {
	p.once.Do(func() {
		close(p.abort)
		ignore(Call(p.writer, "abort", global.Get("Error").New(reason.Error())))
	})
}

func (p *Pipe) pump(ctx context.Context) error {
	// Stop waiting on the stream when the consumer gave up (Abort) or the
	// request ended.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.abort:
			cancel()
		case <-ctx.Done():
		}
	}()
	fail := func(err error) error {
		p.Abort(err)
		return err
	}
	buf := make([]byte, chunkSize)
	var n int64
	for {
		k, rerr := p.src.Read(buf)
		if k > 0 {
			if p.size >= 0 && n+int64(k) > p.size {
				return fail(fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, p.size))
			}
			if _, err := Await(ctx, p.writer.Get("ready")); err != nil {
				return fail(err)
			}
			// The Uint8Array is a copy, so buf can be reused at once.
			if _, err := CallAwait(ctx, p.writer, "write", Uint8Array(buf[:k])); err != nil {
				return fail(err)
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if p.size >= 0 && n != p.size {
		return fail(fmt.Errorf("%w: %d of %d bytes", ErrSizeMismatch, n, p.size))
	}
	if _, err := CallAwait(ctx, p.writer, "close"); err != nil {
		return fail(err)
	}
	return nil
}

// noop is a JavaScript function that does nothing (Function.prototype is one).
var noop = global.Get("Function").Get("prototype")

// ignore marks a promise's rejection as handled, so that an outcome nobody
// needs (cancelling a stream, aborting a writer) does not surface as an
// unhandled rejection in the runtime's log.
func ignore(p js.Value, err error) {
	if err == nil && p.Type() == js.TypeObject && p.Get("catch").Type() == js.TypeFunction {
		Call(p, "catch", noop)
	}
}
