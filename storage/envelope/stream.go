package envelope

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"pommy.ai/edge/storage"
)

// ChunkSize is the plaintext size of one sealed chunk of a stream. 64 KiB
// keeps the per-chunk overhead (16-byte tag, one host call in the guest)
// under 0.03% while bounding memory per open stream.
const ChunkSize = 64 << 10

// Streams follow the STREAM construction (Hoang, Reyhanitabar, Rogaway,
// Vizár 2015): a random 7-byte nonce prefix, a 4-byte chunk counter and a
// final-chunk flag form each chunk's nonce, so chunks cannot be reordered,
// dropped or truncated without detection.
const prefixSize = 7

// SealedSize is the sealed length of a stream of n plaintext bytes.
func SealedSize(n int64) int64 {
	chunks := max(1, (n+ChunkSize-1)/ChunkSize) // an empty stream is one empty chunk
	return 1 + prefixSize + n + chunks*storage.Overhead
}

func chunkNonce(prefix []byte, counter uint32, last bool) []byte {
	n := make([]byte, storage.NonceSize)
	copy(n, prefix)
	binary.BigEndian.PutUint32(n[prefixSize:], counter)
	if last {
		n[storage.NonceSize-1] = 1
	}
	return n
}

// StreamParams is what sealing or opening one stream takes besides its
// bytes: the tenant's data key, the stream's nonce prefix (PrefixSize bytes)
// and its associated data.
type StreamParams struct {
	Key    storage.DataKey
	Prefix []byte
	AD     []byte
}

// PrefixSize is the length of a stream's random nonce prefix.
const PrefixSize = prefixSize

// SealReader returns a reader of the sealed form of r, for a streaming Put.
// The reader also implements PlaintextSource.
func (k *Keyring) SealReader(ctx context.Context, tenant, kind, id string, r io.Reader) (io.Reader, error) {
	dk, err := k.key(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, prefixSize)
	rand.Read(prefix)
	return SealStream(StreamParams{Key: dk, Prefix: prefix, AD: appendAD(nil, "stream", tenant, kind, id)}, r)
}

// SealStream returns a reader of the sealed form of r: the format byte, the
// prefix, then the sealed chunks. SealReader is SealStream with fresh
// parameters; a blob store that takes the plaintext from a PlaintextSource
// calls it with that source's parameters, so that every home writes the same
// bytes for the same stream.
func SealStream(p StreamParams, r io.Reader) (io.Reader, error) {
	if len(p.Prefix) != prefixSize || p.Key == nil {
		return nil, fmt.Errorf("envelope: a stream needs a data key and a %d-byte nonce prefix: %w", prefixSize, storage.ErrInvalid)
	}
	dk := p.Key
	return &chunker{
		src: r, params: p, prefix: p.Prefix, ad: p.AD,
		out:     append([]byte{formatStream}, p.Prefix...),
		bufSize: ChunkSize + 1,
		transform: func(dst, nonce, chunk, ad []byte) ([]byte, error) {
			return dk.Seal(dst, nonce, chunk, ad)
		},
	}, nil
}

// PlaintextSource is implemented by the reader SealReader returns. A blob
// store that can seal where the blob is written (the local home's host,
// natively, instead of one host call per 64 KiB chunk from the guest) may
// take the plaintext and the parameters from it and store exactly what
// SealStream(params, plaintext) yields. Unsealed does not change the reader:
// a store that then finds it cannot seal reads the reader instead (it must
// not have read plaintext in between). ok is false once the reader has been
// read.
type PlaintextSource interface {
	Unsealed() (p StreamParams, plaintext io.Reader, ok bool)
}

// Unsealed implements PlaintextSource.
func (c *chunker) Unsealed() (StreamParams, io.Reader, bool) {
	if c.params.Key == nil || c.started {
		return StreamParams{}, nil, false
	}
	return c.params, c.src, true
}

// StreamOpener may be implemented by the reader handed to OpenReader (the
// local home's guest implements it on host blob streams). OpenReader reads
// and checks the stream's head, then offers the opener the parameters: if it
// accepts, reads of the returned reader yield exactly the plaintext that
// OpenStream(params, rest of the stream) would, opened where the bytes are
// (natively, in the host), and OpenReader returns it. If it declines, it
// must be unchanged, and OpenReader opens the stream itself.
type StreamOpener interface {
	OpenSealed(p StreamParams) (plaintext io.Reader, ok bool)
}

// OpenReader returns a reader of the plaintext of a sealed stream. Every
// byte it returns has been authenticated; a truncated, reordered or altered
// stream ends in ErrCorrupt.
func (k *Keyring) OpenReader(ctx context.Context, tenant, kind, id string, r io.Reader) (io.Reader, error) {
	head := make([]byte, 1+prefixSize)
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrCorrupt
		}
		return nil, err
	}
	if head[0] != formatStream {
		return nil, ErrCorrupt
	}
	dk, err := k.key(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	p := StreamParams{Key: dk, Prefix: head[1:], AD: appendAD(nil, "stream", tenant, kind, id)}
	if o, ok := r.(StreamOpener); ok {
		if pt, ok := o.OpenSealed(p); ok {
			return pt, nil
		}
	}
	return OpenStream(p, r)
}

// OpenStream returns a reader of the plaintext of the sealed chunks in r,
// which is positioned just after the stream's head (format byte and
// prefix). A host that opens streams for a guest (StreamOpener) calls it.
func OpenStream(p StreamParams, r io.Reader) (io.Reader, error) {
	if len(p.Prefix) != prefixSize || p.Key == nil {
		return nil, fmt.Errorf("envelope: a stream needs a data key and a %d-byte nonce prefix: %w", prefixSize, storage.ErrInvalid)
	}
	dk := p.Key
	return &chunker{
		src: r, prefix: p.Prefix, ad: p.AD,
		bufSize: ChunkSize + storage.Overhead + 1,
		transform: func(dst, nonce, chunk, ad []byte) ([]byte, error) {
			if len(chunk) < storage.Overhead {
				return nil, ErrCorrupt
			}
			pt, err := dk.Open(dst, nonce, chunk, ad)
			if err != nil && !errors.Is(err, storage.ErrUnavailable) {
				return nil, ErrCorrupt
			}
			return pt, err
		},
	}, nil
}

// chunker reads src in chunks of len(buf)-1 bytes, transforms each (seal or
// open) with its nonce, and hands out the results. The one byte of
// lookahead in buf tells whether a chunk is the stream's last, which the
// nonce must say.
type chunker struct {
	src       io.Reader
	params    StreamParams // set when sealing, for Unsealed
	started   bool         // Read has been called
	prefix    []byte
	ad        []byte
	transform func(dst, nonce, chunk, ad []byte) ([]byte, error)
	counter   uint32
	buf       []byte // allocated on first use: a reader handed off (Unsealed) never needs it
	bufSize   int
	have      int
	out       []byte // results not yet returned
	done      bool
	err       error
}

func (c *chunker) Read(p []byte) (int, error) {
	c.started = true
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.done {
			return 0, io.EOF
		}
		c.err = c.next()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (c *chunker) next() error {
	if c.buf == nil {
		c.buf = make([]byte, c.bufSize)
	}
	n, err := io.ReadFull(c.src, c.buf[c.have:])
	c.have += n
	last := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return err
	}
	full := len(c.buf) - 1
	size := min(c.have, full)
	if last && c.have > full {
		last = false // the lookahead byte starts one more chunk
	}
	if c.counter == ^uint32(0) {
		return errors.New("envelope: stream too long")
	}
	out, err := c.transform(c.out[:0], chunkNonce(c.prefix, c.counter, last), c.buf[:size], c.ad)
	if err != nil {
		return err
	}
	c.out = out
	c.counter++
	c.have = copy(c.buf, c.buf[size:c.have])
	c.done = last
	return nil
}
