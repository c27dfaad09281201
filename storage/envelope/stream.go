package envelope

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
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

// SealReader returns a reader of the sealed form of r, for a streaming Put.
func (k *Keyring) SealReader(ctx context.Context, tenant, kind, id string, r io.Reader) (io.Reader, error) {
	dk, err := k.key(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, prefixSize)
	rand.Read(prefix)
	return &chunker{
		src: r, prefix: prefix, ad: appendAD(nil, "stream", tenant, kind, id),
		out: append([]byte{formatStream}, prefix...),
		buf: make([]byte, ChunkSize+1),
		transform: func(dst, nonce, chunk, ad []byte) ([]byte, error) {
			return dk.Seal(dst, nonce, chunk, ad)
		},
	}, nil
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
	return &chunker{
		src: r, prefix: head[1:], ad: appendAD(nil, "stream", tenant, kind, id),
		buf: make([]byte, ChunkSize+storage.Overhead+1),
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
	prefix    []byte
	ad        []byte
	transform func(dst, nonce, chunk, ad []byte) ([]byte, error)
	counter   uint32
	buf       []byte
	have      int
	out       []byte // results not yet returned
	done      bool
	err       error
}

func (c *chunker) Read(p []byte) (int, error) {
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
