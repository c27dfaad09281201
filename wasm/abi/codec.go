package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
)

// The wire format is deliberately plain: unsigned integers are uvarints,
// signed ones zigzag varints, floats 8 little-endian bytes, booleans one byte
// (0 or 1), strings and byte slices a uvarint length followed by the bytes,
// lists a uvarint count followed by the elements. A message is its fields in
// declaration order with nothing after them.

// Message is one request or reply body.
type Message interface {
	Encode(*Encoder)
	Decode(*Decoder)
}

// Encoder appends a message's fields to a buffer.
type Encoder struct {
	buf []byte
	err error
}

// NewEncoder returns an encoder that appends to buf (which may be nil).
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Finish returns the encoded bytes, or the first error (an unencodable
// value, or a message larger than MaxMessage).
func (e *Encoder) Finish() ([]byte, error) {
	if e.err == nil && len(e.buf) > MaxMessage {
		e.err = fmt.Errorf("%w: %d bytes exceeds %d", ErrTooLarge, len(e.buf), MaxMessage)
	}
	return e.buf, e.err
}

// Fail records an error; the first one wins.
func (e *Encoder) Fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *Encoder) Uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *Encoder) Varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }
func (e *Encoder) Uint32(v uint32)  { e.Uvarint(uint64(v)) }
func (e *Encoder) Int(v int)        { e.Varint(int64(v)) }
func (e *Encoder) Byte(v byte)      { e.buf = append(e.buf, v) }

func (e *Encoder) Bool(v bool) {
	if v {
		e.Byte(1)
	} else {
		e.Byte(0)
	}
}

func (e *Encoder) Float64(v float64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v))
}

func (e *Encoder) Bytes(v []byte) {
	e.Uvarint(uint64(len(v)))
	e.buf = append(e.buf, v...)
}

func (e *Encoder) String(v string) {
	e.Uvarint(uint64(len(v)))
	e.buf = append(e.buf, v...)
}

func (e *Encoder) Strings(v []string) {
	e.Uvarint(uint64(len(v)))
	for _, s := range v {
		e.String(s)
	}
}

// Header encodes an http.Header with its names sorted, so that equal headers
// encode to equal bytes.
func (e *Encoder) Header(h http.Header) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	e.Uvarint(uint64(len(names)))
	for _, k := range names {
		e.String(k)
		e.Strings(h[k])
	}
}

// Decoder reads a message's fields. The first error sticks: every later read
// returns a zero value, so decode methods need no error checks of their own.
// Byte slices are copied, so a decoded message never aliases the buffer (on
// the host that buffer is guest memory), unless the decoder was made to
// alias (DecodeReplyAliased).
type Decoder struct {
	buf   []byte
	err   error
	alias bool // Bytes returns sub-slices of buf instead of copies
}

// NewDecoder returns a decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// ErrTooLarge is wrapped by the error of a message over MaxMessage.
var ErrTooLarge = errors.New("abi: message too large")

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("abi: malformed message")

// Err returns the first decoding error.
func (d *Decoder) Err() error { return d.err }

// Remaining is the number of bytes not yet read.
func (d *Decoder) Remaining() int { return len(d.buf) }

// Fail records an error (wrapped in ErrMalformed); the first one wins.
func (d *Decoder) Fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
		d.buf = nil
	}
}

func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.Fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *Decoder) Uint32() uint32 {
	v := d.Uvarint()
	if v > math.MaxUint32 {
		d.Fail("uint32 out of range")
		return 0
	}
	return uint32(v)
}

// Int decodes a signed integer that must fit in 32 bits, so that it means
// the same on the 32-bit guest and the 64-bit host.
func (d *Decoder) Int() int {
	v := d.Varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.Fail("int out of range")
		return 0
	}
	return int(v)
}

func (d *Decoder) Byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 1 {
		d.Fail("truncated")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *Decoder) Bool() bool {
	switch d.Byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.Fail("bad bool")
		return false
	}
}

func (d *Decoder) Float64() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 8 {
		d.Fail("truncated float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.buf))
	d.buf = d.buf[8:]
	return v
}

// raw returns the next n bytes, aliasing the buffer, after checking that n
// bytes remain.
func (d *Decoder) raw() []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.Fail("length %d exceeds the %d bytes left", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// Bytes decodes a byte slice into a fresh copy. An empty slice decodes as
// non-nil, so "empty" and "absent" stay distinct where a message cares.
func (d *Decoder) Bytes() []byte {
	b := d.raw()
	if d.err != nil {
		return nil
	}
	if d.alias {
		return b[:len(b):len(b)] // capped: an append must not write past it
	}
	return append([]byte{}, b...)
}

func (d *Decoder) String() string { return string(d.raw()) }

// Count decodes a list length and checks it against the bytes left, given
// that every element takes at least minSize bytes. This is what stops a
// forged count from making the decoder allocate more than the input.
func (d *Decoder) Count(minSize int) int {
	n := d.Uvarint()
	if d.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(len(d.buf)/minSize) {
		d.Fail("count %d exceeds what %d bytes can hold", n, len(d.buf))
		return 0
	}
	return int(n)
}

func (d *Decoder) Strings() []string {
	n := d.Count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.String())
	}
	return out
}

// Header decodes an http.Header. Names repeated in a hostile message are
// merged rather than rejected; the result is still a valid header.
func (d *Decoder) Header() http.Header {
	n := d.Count(2)
	if n == 0 {
		return http.Header{}
	}
	h := make(http.Header, n)
	for range n {
		k := d.String()
		v := d.Strings()
		if d.err != nil {
			break
		}
		h[k] = append(h[k], v...)
	}
	return h
}

// Marshal encodes m.
func Marshal(m Message) ([]byte, error) {
	e := NewEncoder(nil)
	m.Encode(e)
	return e.Finish()
}

// Unmarshal decodes b into m. Trailing bytes are an error: a message has
// exactly one encoding length.
func Unmarshal(b []byte, m Message) error { return unmarshal(b, m, false) }

func unmarshal(b []byte, m Message, alias bool) error {
	d := &Decoder{buf: b, alias: alias}
	m.Decode(d)
	if d.err == nil && len(d.buf) != 0 {
		d.Fail("%d trailing bytes", len(d.buf))
	}
	return d.err
}

// Replies start with a status byte: StatusOK followed by the reply message,
// or an error code followed by the error message (a string).
const StatusOK byte = 0

// AppendReply encodes a successful reply.
func AppendReply(buf []byte, m Message) ([]byte, error) {
	e := NewEncoder(append(buf, StatusOK))
	m.Encode(e)
	return e.Finish()
}

// AppendError encodes an error reply. Long messages are cut so that an error
// can always be delivered.
func AppendError(buf []byte, code Code, msg string) []byte {
	if code == CodeOK || code >= codeEnd {
		code = CodeInternal
	}
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	e := NewEncoder(append(buf, byte(code)))
	e.String(msg)
	return e.buf
}

// DecodeReply decodes a reply into m, returning the reply's *Error if it is
// an error reply.
func DecodeReply(b []byte, m Message) error { return decodeReply(b, m, false) }

// DecodeReplyAliased is DecodeReply whose decoded byte slices point into b
// instead of being copied. It is for the guest's bulk reads, which consume
// the bytes before the reply buffer is reused: the copy would be one
// allocation per chunk, and garbage is what makes the guest slow (each GC
// cycle scans the whole heap under the host's cancellation checks; see
// docs/decisions.md). Never use it on the host, where b is guest memory.
func DecodeReplyAliased(b []byte, m Message) error { return decodeReply(b, m, true) }

func decodeReply(b []byte, m Message, alias bool) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: empty reply", ErrMalformed)
	}
	if b[0] == StatusOK {
		return unmarshal(b[1:], m, alias)
	}
	code := Code(b[0])
	if code >= codeEnd {
		return fmt.Errorf("%w: unknown status %d", ErrMalformed, b[0])
	}
	var msg ErrorMessage
	if err := Unmarshal(b[1:], &msg); err != nil {
		return err
	}
	return &Error{Code: code, Message: msg.Message}
}
