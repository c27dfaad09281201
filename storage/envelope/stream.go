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
	return &sealReader{
		dk: dk, src: r, prefix: prefix,
		ad:  appendAD(nil, "stream", tenant, kind, id),
		out: append([]byte{formatStream}, prefix...),
		buf: make([]byte, ChunkSize+1),
	}, nil
}

type sealReader struct {
	dk      storage.DataKey
	src     io.Reader
	prefix  []byte
	ad      []byte
	counter uint32
	buf     []byte // plaintext; one byte of lookahead tells whether a chunk is last
	have    int
	out     []byte // sealed bytes not yet returned
	done    bool
	err     error
}

func (s *sealReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.done {
			return 0, io.EOF
		}
		s.err = s.fill()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// fill seals the next chunk into s.out.
func (s *sealReader) fill() error {
	n, err := io.ReadFull(s.src, s.buf[s.have:])
	s.have += n
	last := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return err
	}
	size := min(s.have, ChunkSize)
	if last && s.have > ChunkSize {
		last = false // the lookahead byte starts one more chunk
	}
	if s.counter == ^uint32(0) {
		return errors.New("envelope: stream too long")
	}
	sealed, err := s.dk.Seal(s.out[:0], chunkNonce(s.prefix, s.counter, last), s.buf[:size], s.ad)
	if err != nil {
		return err
	}
	s.out = sealed
	s.counter++
	s.have = copy(s.buf, s.buf[size:s.have])
	s.done = last
	return nil
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
	return &openReader{
		dk: dk, src: r, prefix: head[1:],
		ad:  appendAD(nil, "stream", tenant, kind, id),
		buf: make([]byte, ChunkSize+storage.Overhead+1),
	}, nil
}

type openReader struct {
	dk      storage.DataKey
	src     io.Reader
	prefix  []byte
	ad      []byte
	counter uint32
	buf     []byte
	have    int
	out     []byte
	done    bool
	err     error
}

func (o *openReader) Read(p []byte) (int, error) {
	for len(o.out) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.done {
			return 0, io.EOF
		}
		o.err = o.fill()
	}
	n := copy(p, o.out)
	o.out = o.out[n:]
	return n, nil
}

func (o *openReader) fill() error {
	n, err := io.ReadFull(o.src, o.buf[o.have:])
	o.have += n
	last := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	case err != nil:
		return err
	}
	full := ChunkSize + storage.Overhead
	size := min(o.have, full)
	if last && o.have > full {
		last = false
	}
	if size < storage.Overhead {
		return ErrCorrupt
	}
	pt, err := o.dk.Open(o.out[:0], chunkNonce(o.prefix, o.counter, last), o.buf[:size], o.ad)
	if err != nil {
		if errors.Is(err, storage.ErrUnavailable) {
			return err
		}
		return ErrCorrupt
	}
	o.out = pt
	o.counter++
	o.have = copy(o.buf, o.buf[size:o.have])
	o.done = last
	return nil
}
