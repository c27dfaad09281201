//go:build !nopasskeys

package identity

import (
	"encoding/binary"
	"errors"
	"math"
)

// A small CBOR reader (RFC 8949) for what WebAuthn hands a relying party:
// the attestation object, the authenticator data's extensions and the COSE
// public key. Authenticators speak the CTAP2 canonical form, so this reads
// only definite lengths and the major types that form uses (unsigned and
// negative integers, byte and text strings, arrays, maps, and the simple
// values false, true and null); tags, indefinite lengths, floats and
// duplicate map keys are refused. A general CBOR library would cost the
// edge worker about 114 KB gzip (docs/decisions.md).

// cborMaxDepth bounds nesting: the deepest structure WebAuthn sends (an
// attestation statement holding a certificate array) is 3 deep.
const cborMaxDepth = 8

// cborMaxItems bounds the items of one decoded value, whatever its lengths
// claim, so a hostile header cannot make the reader allocate.
const cborMaxItems = 1024

var errCBOR = errors.New("malformed CBOR")

// cborValue is one decoded item.
type cborValue struct {
	major byte  // 0 uint, 1 negative int, 2 bytes, 3 text, 4 array, 5 map, 7 simple
	n     int64 // the integer (majors 0 and 1), or the simple value (7)
	b     []byte
	arr   []cborValue
	keys  []cborValue // map keys, in order, with vals
	vals  []cborValue
}

// cborDecode reads one item from the front of b and returns it with the
// bytes after it.
func cborDecode(b []byte) (cborValue, []byte, error) {
	items := 0
	return cborItem(b, 0, &items)
}

func cborItem(b []byte, depth int, items *int) (cborValue, []byte, error) {
	*items++
	if depth > cborMaxDepth || *items > cborMaxItems || len(b) == 0 {
		return cborValue{}, nil, errCBOR
	}
	major, info := b[0]>>5, b[0]&0x1f
	b = b[1:]
	var arg uint64
	switch {
	case info < 24:
		arg = uint64(info)
	case info == 24 && len(b) >= 1:
		arg, b = uint64(b[0]), b[1:]
	case info == 25 && len(b) >= 2:
		arg, b = uint64(binary.BigEndian.Uint16(b)), b[2:]
	case info == 26 && len(b) >= 4:
		arg, b = uint64(binary.BigEndian.Uint32(b)), b[4:]
	case info == 27 && len(b) >= 8:
		arg, b = binary.BigEndian.Uint64(b), b[8:]
	default: // reserved, indefinite length, or truncated
		return cborValue{}, nil, errCBOR
	}
	v := cborValue{major: major}
	switch major {
	case 0, 1:
		if arg > math.MaxInt64 {
			return cborValue{}, nil, errCBOR
		}
		v.n = int64(arg)
		if major == 1 {
			v.n = -1 - v.n
		}
	case 2, 3:
		if arg > uint64(len(b)) {
			return cborValue{}, nil, errCBOR
		}
		v.b, b = b[:arg], b[arg:]
	case 4, 5:
		// Each element takes at least one byte: a count over what is left
		// is a lie, refused before anything is allocated.
		per := uint64(1)
		if major == 5 {
			per = 2
		}
		if arg > uint64(len(b))/per || arg > cborMaxItems {
			return cborValue{}, nil, errCBOR
		}
		for range arg {
			var e cborValue
			var err error
			if e, b, err = cborItem(b, depth+1, items); err != nil {
				return cborValue{}, nil, err
			}
			if major == 4 {
				v.arr = append(v.arr, e)
				continue
			}
			if e.major != 0 && e.major != 1 && e.major != 3 {
				return cborValue{}, nil, errCBOR // keys are integers or text
			}
			for _, k := range v.keys {
				if k.major == e.major && k.n == e.n && string(k.b) == string(e.b) {
					return cborValue{}, nil, errCBOR // a key given twice
				}
			}
			var val cborValue
			if val, b, err = cborItem(b, depth+1, items); err != nil {
				return cborValue{}, nil, err
			}
			v.keys, v.vals = append(v.keys, e), append(v.vals, val)
		}
	case 7:
		if info >= 24 || (arg != 20 && arg != 21 && arg != 22) {
			return cborValue{}, nil, errCBOR // only false, true, null
		}
		v.n = int64(arg)
	default: // tags (6) are not used by WebAuthn
		return cborValue{}, nil, errCBOR
	}
	return v, b, nil
}

// intKey returns the value under the integer key k of a map.
func (v cborValue) intKey(k int64) (cborValue, bool) {
	for i, key := range v.keys {
		if (key.major == 0 || key.major == 1) && key.n == k {
			return v.vals[i], true
		}
	}
	return cborValue{}, false
}

// textKey returns the value under the text key k of a map.
func (v cborValue) textKey(k string) (cborValue, bool) {
	for i, key := range v.keys {
		if key.major == 3 && string(key.b) == k {
			return v.vals[i], true
		}
	}
	return cborValue{}, false
}

func (v cborValue) isInt() bool { return v.major == 0 || v.major == 1 }
