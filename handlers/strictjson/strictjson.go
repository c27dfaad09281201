// Package strictjson is the one strict decoding path for JSON request
// bodies. Every route that reads a JSON body goes through it, in every home,
// so that what the application acts on is exactly what the client sent and
// what anything in front of the server (a proxy, a WAF, a log) saw.
//
// encoding/json alone is lenient in ways that let two readers of one body
// disagree: the last of two equal keys wins, keys match struct fields
// regardless of case, invalid UTF-8 and escaped lone surrogates become
// U+FFFD. Decode first checks the raw bytes with a small scanner and refuses,
// naming the field:
//
//   - syntax errors, an empty body, data after the value, nesting deeper
//     than MaxDepth (CodeMalformed);
//   - a key given twice in one object, at any depth (CodeDuplicateKey);
//   - a key the target type does not have, compared exactly, case included
//     (CodeUnknownField);
//   - invalid UTF-8 (a bad sequence, an overlong form, an encoded
//     surrogate), an escaped lone surrogate such as "\ud800", and NUL, raw
//     or escaped, in any string, key or value (CodeInvalidText).
//
// Only then does encoding/json fill the target, which on such input gives
// the same result as any other conforming reader.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Error codes, as the API reports them.
const (
	CodeMalformed    = "malformed_json"
	CodeDuplicateKey = "duplicate_key"
	CodeUnknownField = "unknown_field"
	CodeInvalidText  = "invalid_text"
)

// MaxDepth bounds the nesting of objects and arrays; no request needs more,
// and it bounds the scanner's recursion.
const MaxDepth = 32

// maxKeyShown is the most of a key an error message repeats.
const maxKeyShown = 64

// Error is why a body was refused.
type Error struct {
	Code string
	// Field is the path of the offending member: dotted keys and [index]
	// for array elements ("scopes[1]", "changes.name"); "" for the body as
	// a whole.
	Field string
	// Offset is the byte offset in the body where the problem was found.
	Offset int
	// Reason is a sentence for the client. It never repeats a value, and
	// repeats at most 64 bytes of a key.
	Reason string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s, byte %d)", e.Code, e.Reason, e.Field, e.Offset)
	}
	return fmt.Sprintf("%s: %s (byte %d)", e.Code, e.Reason, e.Offset)
}

// Decode checks data strictly and, if it passes, decodes it into v (a
// non-nil pointer). Every refusal is an *Error.
func Decode(data []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return errors.New("strictjson: Decode needs a non-nil pointer")
	}
	if err := Validate(data, t.Elem()); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return typeError(err, len(data))
	}
	return nil
}

// typeError turns what encoding/json can still refuse after Validate (a
// value of the wrong JSON type, a number out of range) into an *Error.
func typeError(err error, size int) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "of type " + te.Type.String()
		switch te.Type.Kind() {
		case reflect.String:
			want = "a string"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			want = "an integer in range"
		case reflect.Float32, reflect.Float64, reflect.Interface:
			want = "a number in range"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice, reflect.Array:
			want = "an array"
		case reflect.Struct, reflect.Map:
			want = "an object"
		}
		// te.Value is "number 1e1000" for numbers: only its kind is
		// repeated, never the client's digits.
		got, _, _ := strings.Cut(te.Value, " ")
		reason := "must be " + want
		if got != "number" || !strings.Contains(want, "in range") {
			reason += ", not " + article(got)
		}
		return &Error{Code: CodeMalformed, Field: te.Field, Offset: min(int(te.Offset), size), Reason: reason}
	}
	// Validate has checked the syntax, so this is a decoder this package
	// does not expect to fail (a custom UnmarshalJSON); say so plainly.
	return &Error{Code: CodeMalformed, Reason: "the body does not fit this route"}
}

func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	case "bool":
		return "true or false"
	case "":
		return "that"
	}
	return "a " + kind
}

// Validate checks data strictly against the shape of t (nil: any JSON
// value, no field names checked). It does not decode.
func Validate(data []byte, t reflect.Type) error {
	s := scanner{data: data}
	s.ws()
	if s.pos == len(data) {
		return s.fail(CodeMalformed, "the body is empty; send a JSON object")
	}
	if err := s.value(shapeOf(t), 0); err != nil {
		return err
	}
	s.ws()
	if s.pos != len(data) {
		s.path = s.path[:0]
		return s.fail(CodeMalformed, "the body has data after the JSON value")
	}
	return nil
}

// pathElem is one step of the path to the value being scanned: a key (the
// offset of its opening quote; decoded again only for an error message),
// or an array index when keyAt is -1.
type pathElem struct {
	keyAt int
	index int
}

type scanner struct {
	data []byte
	pos  int
	path []pathElem
	buf  []byte // scratch for decoding keys
}

func (s *scanner) fail(code, reason string) *Error {
	return &Error{Code: code, Field: s.field(), Offset: s.pos, Reason: reason}
}

func (s *scanner) syntax(what string) *Error {
	if s.pos >= len(s.data) {
		return s.fail(CodeMalformed, "the body ends in the middle of "+what)
	}
	return s.fail(CodeMalformed, "unexpected "+describe(s.data[s.pos])+" in "+what)
}

func describe(c byte) string {
	switch {
	case c >= 0x21 && c < 0x7f:
		return strconv.QuoteRune(rune(c))
	default:
		return fmt.Sprintf("byte 0x%02x", c)
	}
}

// field renders the path: a.b[2].c. Keys that are not plain words are
// quoted, and long ones cut.
func (s *scanner) field() string {
	var b strings.Builder
	for _, p := range s.path {
		if p.keyAt < 0 {
			fmt.Fprintf(&b, "[%d]", p.index)
			continue
		}
		k := s.keyAt(p.keyAt)
		if len(k) > maxKeyShown {
			k = k[:maxKeyShown]
			for !utf8.ValidString(k) {
				k = k[:len(k)-1]
			}
			k += "…"
		}
		if plainKey(k) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		} else {
			b.WriteString("[" + strconv.Quote(k) + "]")
		}
	}
	return b.String()
}

// keyAt decodes the key whose opening quote is at i, as far as it is
// valid (an error inside the key itself stops it there).
func (s *scanner) keyAt(i int) string {
	k := scanner{data: s.data, pos: i}
	b, _ := k.str(true)
	if b == nil {
		b = k.buf
	}
	return string(b)
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(sh *shape, depth int) error {
	if s.pos >= len(s.data) {
		return s.syntax("a value")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		if depth >= MaxDepth {
			return s.fail(CodeMalformed, fmt.Sprintf("objects and arrays nest deeper than %d levels", MaxDepth))
		}
		return s.object(sh, depth+1)
	case c == '[':
		if depth >= MaxDepth {
			return s.fail(CodeMalformed, fmt.Sprintf("objects and arrays nest deeper than %d levels", MaxDepth))
		}
		return s.array(sh, depth+1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntax("a value")
	}
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.syntax("a value")
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

// number checks RFC 8259's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.data) && s.data[s.pos] == '0' {
		s.pos++
	} else if !s.digits() {
		return s.syntax("a number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return s.syntax("a number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return s.syntax("a number")
		}
	}
	return nil
}

func (s *scanner) array(sh *shape, depth int) error {
	s.pos++ // [
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	elem := sh.elem()
	s.path = append(s.path, pathElem{keyAt: -1})
	for i := 0; ; i++ {
		s.path[len(s.path)-1].index = i
		if err := s.value(elem, depth); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.syntax("an array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case ']':
			s.pos++
			s.path = s.path[:len(s.path)-1]
			return nil
		default:
			return s.syntax("an array")
		}
	}
}

func (s *scanner) object(sh *shape, depth int) error {
	s.pos++ // {
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	// Keys seen so far, as offsets into one buffer: objects in requests are
	// small, so a linear search beats a map until they are not.
	var keys []byte
	var ends []int
	var seen map[string]bool
	s.path = append(s.path, pathElem{keyAt: -1})
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			s.path = s.path[:len(s.path)-1]
			return s.syntax("an object (a key must be a string)")
		}
		keyAt := s.pos
		s.path[len(s.path)-1] = pathElem{keyAt: keyAt}
		key, err := s.str(true)
		if err != nil {
			return err
		}
		dup := false
		if seen != nil {
			dup = seen[string(key)]
			seen[string(key)] = true
		} else {
			start := 0
			for _, end := range ends {
				if bytes.Equal(keys[start:end], key) {
					dup = true
					break
				}
				start = end
			}
			keys = append(keys, key...)
			ends = append(ends, len(keys))
			if len(ends) > 16 {
				seen = make(map[string]bool, 32)
				start := 0
				for _, end := range ends {
					seen[string(keys[start:end])] = true
					start = end
				}
			}
		}
		if dup {
			s.pos = keyAt
			return s.fail(CodeDuplicateKey, "this key appears more than once in one object")
		}
		member, known := sh.member(key)
		if !known {
			s.pos = keyAt
			return s.fail(CodeUnknownField, "this route takes no such field (names are case-sensitive)")
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntax("an object (expected ':' after the key)")
		}
		s.pos++
		s.ws()
		if err := s.value(member, depth); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.syntax("an object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case '}':
			s.pos++
			s.path = s.path[:len(s.path)-1]
			return nil
		default:
			return s.syntax("an object")
		}
	}
}

// str scans a string at s.pos, checking its text; with decode it returns
// the unescaped bytes (valid only until the next call).
func (s *scanner) str(decode bool) ([]byte, error) {
	s.pos++ // "
	s.buf = s.buf[:0]
	for {
		if s.pos >= len(s.data) {
			return nil, s.syntax("a string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.buf, nil
		case c == '\\':
			if err := s.escape(decode); err != nil {
				return nil, err
			}
		case c == 0:
			return nil, s.fail(CodeInvalidText, "strings must not contain NUL")
		case c < 0x20:
			return nil, s.fail(CodeMalformed, "a control character must be escaped in a string")
		case c < utf8.RuneSelf:
			if decode {
				s.buf = append(s.buf, c)
			}
			s.pos++
		default:
			// DecodeRune refuses bad sequences, overlong forms, encoded
			// surrogates (ED A0 80) and code points past U+10FFFF.
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n <= 1 {
				return nil, s.fail(CodeInvalidText, "the text is not valid UTF-8")
			}
			if decode {
				s.buf = append(s.buf, s.data[s.pos:s.pos+n]...)
			}
			s.pos += n
		}
	}
}

func (s *scanner) escape(decode bool) error {
	if s.pos+1 >= len(s.data) {
		s.pos = len(s.data)
		return s.syntax("a string")
	}
	e := s.data[s.pos+1]
	var out byte
	switch e {
	case '"', '\\', '/':
		out = e
	case 'b':
		out = '\b'
	case 'f':
		out = '\f'
	case 'n':
		out = '\n'
	case 'r':
		out = '\r'
	case 't':
		out = '\t'
	case 'u':
		r, ok := s.hex4(s.pos + 2)
		if !ok {
			s.pos++
			return s.fail(CodeMalformed, `\u must be followed by four hexadecimal digits`)
		}
		switch {
		case r == 0:
			return s.fail(CodeInvalidText, "strings must not contain NUL")
		case r >= 0xD800 && r < 0xDC00:
			// A high surrogate must be followed by an escaped low one.
			lo, ok := rune(0), false
			if s.pos+7 < len(s.data) && s.data[s.pos+6] == '\\' && s.data[s.pos+7] == 'u' {
				lo, ok = s.hex4(s.pos + 8)
			}
			if !ok || lo < 0xDC00 || lo >= 0xE000 {
				return s.fail(CodeInvalidText, `an escaped surrogate must be a pair (\ud83d\ude00), never alone`)
			}
			if decode {
				s.buf = utf8.AppendRune(s.buf, 0x10000+(r-0xD800)<<10+(lo-0xDC00))
			}
			s.pos += 12
			return nil
		case r >= 0xDC00 && r < 0xE000:
			return s.fail(CodeInvalidText, `an escaped surrogate must be a pair (\ud83d\ude00), never alone`)
		}
		if decode {
			s.buf = utf8.AppendRune(s.buf, r)
		}
		s.pos += 6
		return nil
	default:
		s.pos++
		return s.syntax("a string escape")
	}
	if decode {
		s.buf = append(s.buf, out)
	}
	s.pos += 2
	return nil
}

// hex4 reads four hexadecimal digits at i.
func (s *scanner) hex4(i int) (rune, bool) {
	if i+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// --- shapes ------------------------------------------------------------

// shape is what Validate knows of a target type: for a struct, its JSON
// field names (exact) and their shapes; for a map, slice or array, its
// element's. A nil shape takes any JSON value.
type shape struct {
	fields map[string]*shape // struct: the names encoding/json would fill
	strict bool              // fields is the complete set of names
	item   *shape            // map value or slice/array element
}

func (sh *shape) elem() *shape {
	if sh == nil {
		return nil
	}
	return sh.item
}

func (sh *shape) member(key []byte) (*shape, bool) {
	if sh == nil || !sh.strict {
		return sh.elem(), true
	}
	m, ok := sh.fields[string(key)]
	return m, ok
}

var (
	shapes    sync.Map // reflect.Type -> *shape
	unmarshal = reflect.TypeFor[json.Unmarshaler]()
	textual   = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return nil
	}
	if sh, ok := shapes.Load(t); ok {
		return sh.(*shape)
	}
	sh := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, sh)
	return sh
}

// buildShape follows encoding/json's rules for which names fill which
// field: exported fields, named by their tag or their Go name, "-"
// skipped, untagged embedded structs promoted. Types that decode
// themselves take any value.
func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshal) || reflect.PointerTo(t).Implements(unmarshal) ||
		t.Implements(textual) || reflect.PointerTo(t).Implements(textual) {
		return nil
	}
	if sh, ok := building[t]; ok {
		return sh // a recursive type
	}
	switch t.Kind() {
	case reflect.Struct:
		sh := &shape{fields: map[string]*shape{}, strict: true}
		building[t] = sh
		addFields(sh, t, building)
		return sh
	case reflect.Map:
		sh := &shape{}
		building[t] = sh
		sh.item = buildShape(t.Elem(), building)
		return sh
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil // []byte is a base64 string
		}
		sh := &shape{}
		building[t] = sh
		sh.item = buildShape(t.Elem(), building)
		return sh
	default:
		return nil
	}
}

func addFields(sh *shape, t reflect.Type, building map[reflect.Type]*shape) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(sh, ft, building)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := sh.fields[name]; !dup {
			sh.fields[name] = buildShape(f.Type, building)
		}
	}
}
