package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

type invite struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

type nested struct {
	Name    string            `json:"name"`
	Scopes  []string          `json:"scopes"`
	Limit   *int64            `json:"limit"`
	Labels  map[string]string `json:"labels"`
	Inner   *invite           `json:"inner"`
	Items   []invite          `json:"items"`
	Free    any               `json:"free"`
	Skipped string            `json:"-"`
	Embedded
}

type Embedded struct {
	Extra string `json:"extra"`
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name, body, code, field string
	}{
		{"duplicate key", `{"role":"agent","role":"owner"}`, CodeDuplicateKey, "role"},
		{"duplicate key, other spelling", `{"role":"agent","r\u006fle":"owner"}`, CodeDuplicateKey, "role"},
		{"case variant is unknown", `{"role":"agent","Role":"owner"}`, CodeUnknownField, "Role"},
		{"upper case alone", `{"ROLE":"owner"}`, CodeUnknownField, "ROLE"},
		{"unknown field", `{"email":"a@b","colour":"red"}`, CodeUnknownField, "colour"},
		{"trailing data", `{"email":"a"} {}`, CodeMalformed, ""},
		{"trailing garbage", `{"email":"a"}x`, CodeMalformed, ""},
		{"empty", ``, CodeMalformed, ""},
		{"only spaces", " \n\t", CodeMalformed, ""},
		{"truncated", `{"email":`, CodeMalformed, "email"},
		{"raw C3 28", "{\"email\":\"a\xc3\x28\"}", CodeInvalidText, "email"},
		{"raw surrogate ED A0 80", "{\"email\":\"\xed\xa0\x80\"}", CodeInvalidText, "email"},
		{"overlong slash C0 AF", "{\"email\":\"\xc0\xaf\"}", CodeInvalidText, "email"},
		{"overlong E0 80 AF", "{\"email\":\"\xe0\x80\xaf\"}", CodeInvalidText, "email"},
		{"past U+10FFFF", "{\"email\":\"\xf4\x90\x80\x80\"}", CodeInvalidText, "email"},
		{"lone continuation", "{\"email\":\"\x80\"}", CodeInvalidText, "email"},
		{"escaped high surrogate", `{"email":"\ud800"}`, CodeInvalidText, "email"},
		{"escaped low surrogate", `{"email":"\udc00"}`, CodeInvalidText, "email"},
		{"high surrogate then text", `{"email":"\ud800abcdef"}`, CodeInvalidText, "email"},
		{"two high surrogates", `{"email":"\ud800\ud800"}`, CodeInvalidText, "email"},
		{"reversed pair", `{"email":"\ude00\ud83d"}`, CodeInvalidText, "email"},
		{"escaped NUL", `{"email":"a\u0000b"}`, CodeInvalidText, "email"},
		{"raw NUL", "{\"email\":\"a\x00b\"}", CodeInvalidText, "email"},
		{"NUL in a key", `{"ema\u0000il":"a"}`, CodeInvalidText, ""},
		{"invalid UTF-8 in a key", "{\"e\xffmail\":\"a\"}", CodeInvalidText, ""},
		{"raw control character", "{\"email\":\"a\nb\"}", CodeMalformed, "email"},
		{"bad escape", `{"email":"\x41"}`, CodeMalformed, "email"},
		{"short \\u", `{"email":"\u12"}`, CodeMalformed, "email"},
		{"leading zero", `{"email":01}`, CodeMalformed, "email"},
		{"bare minus", `{"email":-}`, CodeMalformed, "email"},
		{"single quotes", `{'email':'a'}`, CodeMalformed, ""},
		{"trailing comma", `{"email":"a",}`, CodeMalformed, ""},
		{"BOM", "\xef\xbb\xbf{}", CodeMalformed, ""},
		{"invalid UTF-8 outside strings", "{\"email\":\"a\"\xff}", CodeMalformed, "email"},
		{"wrong type", `{"email":42}`, CodeMalformed, "email"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v invite
			err := Decode([]byte(tc.body), &v)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode(%q) = %v, want an *Error %s", tc.body, err, tc.code)
			}
			if e.Code != tc.code {
				t.Errorf("code %s (%v), want %s", e.Code, e, tc.code)
			}
			if tc.field != "" && e.Field != tc.field {
				t.Errorf("field %q (%v), want %q", e.Field, e, tc.field)
			}
			if e.Reason == "" {
				t.Error("no reason")
			}
			if v != (invite{}) {
				t.Errorf("refused body still filled the target: %+v", v)
			}
		})
	}
}

func TestNestedPaths(t *testing.T) {
	cases := []struct{ body, code, field string }{
		{`{"inner":{"role":"a","role":"b"}}`, CodeDuplicateKey, "inner.role"},
		{`{"items":[{"role":"a"},{"email":"x","email":"y"}]}`, CodeDuplicateKey, "items[1].email"},
		{`{"items":[{"colour":"a"}]}`, CodeUnknownField, "items[0].colour"},
		{`{"scopes":["a","b\ud800"]}`, CodeInvalidText, "scopes[1]"},
		{`{"labels":{"a":"1","a":"2"}}`, CodeDuplicateKey, "labels.a"},
		{`{"labels":{"weird key.x":"\u0000"}}`, CodeInvalidText, `labels["weird key.x"]`},
		{`{"free":{"any":{"thing":1,"thing":2}}}`, CodeDuplicateKey, "free.any.thing"},
		{`{"extra":"x","extra":"y"}`, CodeDuplicateKey, "extra"},
		{`{"Skipped":"x"}`, CodeUnknownField, "Skipped"},
		{`{"-":"x"}`, CodeUnknownField, "-"},
		{`{"a.b":"x"}`, CodeUnknownField, `["a.b"]`},
		{`{"scopes":"notes:read"}`, CodeMalformed, "scopes"},
		{`{"limit":1.5}`, CodeMalformed, "limit"},
		{`{"limit":99999999999999999999}`, CodeMalformed, "limit"},
		{`{"free":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, CodeMalformed, ""},
	}
	for _, tc := range cases {
		var v nested
		err := Decode([]byte(tc.body), &v)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Field != tc.field && !(tc.field == "" && e.Code == CodeMalformed) {
			t.Errorf("Decode(%.80q) = %v, want %s at %q", tc.body, err, tc.code, tc.field)
		}
	}
}

func TestAccepts(t *testing.T) {
	body := `{"name":"caf\u00e9 \ud83d\ude00 ✓ <b>&amp;</b>","scopes":["notes:read"],"limit":7,"labels":{"a":"1","A":"2"},
		"inner":{"email":"x@example.com","role":"agent"},"items":[{"role":"admin"}],"free":{"k":[1,2.5e3,-0,true,false,null,"s"]},"extra":"e"}`
	var got, want nested
	if err := Decode([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("strict %+v\nencoding/json %+v", got, want)
	}
	if got.Name != "café 😀 ✓ <b>&amp;</b>" {
		t.Errorf("name %q", got.Name)
	}
	// The same name under two different escapings is one name.
	if err := Decode([]byte(`{"labels":{"\u00e9":"1","é":"2"}}`), &got); err == nil {
		t.Error("\\u00e9 and é accepted as two keys")
	}
}

func TestErrorsDoNotEchoInput(t *testing.T) {
	huge := strings.Repeat("k", 1<<20)
	for _, body := range []string{
		`{"` + huge + `":1}`,
		`{"email":"` + huge + "\x00" + `"}`,
		`{"email":"` + huge + `",` + `"email":"` + huge + `"}`,
	} {
		err := Decode([]byte(body), &invite{})
		if err == nil {
			t.Fatal("accepted")
		}
		if n := len(err.Error()); n > 400 {
			t.Errorf("error of %d bytes for a %d-byte body: %.200s", n, len(body), err)
		}
	}
}

// FuzzDecodeStrict checks the strict path against encoding/json: it never
// panics; whatever it accepts is valid JSON that encoding/json decodes to
// the same value, holds only valid UTF-8 without NUL, has no key twice in
// an object, and re-encodes to a body the strict path accepts again.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []string{
		`{"role":"agent","role":"owner"}`, `{"password":"wrong","password":"right"}`,
		`{"role":"agent","Role":"owner"}`, `{"a":{"b":{"c":1,"c":2}}}`, `[{"a":1},{"a":1,"a":1}]`,
		"{\"title\":\"\xc3\x28\"}", "{\"title\":\"\xed\xa0\x80\"}", "{\"title\":\"\xc0\xaf\"}",
		`{"title":"\ud800"}`, `{"title":"\udc00"}`, `{"title":"\ud83d\ude00"}`, `{"title":"\ud83dx"}`,
		`{"title":"a\u0000b"}`, "{\"title\":\"a\x00b\"}", `{"title":"x"} {}`, `{"title":"x"}]`,
		`{"\u0074itle":"x","title":"y"}`, `{"title":"<script>&</script>"}`, `{"n":-0.5e-3}`, `[]`, `""`, `null`,
		`{"deep":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "\xef\xbb\xbf{}", ` {"a" : [ 1 , 2 ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		err := Decode(data, &v)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Reason == "" || e.Offset < 0 || e.Offset > len(data) {
				t.Fatalf("refusal is not a complete *Error: %#v", err)
			}
			// What encoding/json decodes, the strict path refuses only for a
			// text or key problem (or nesting past MaxDepth).
			var ref any
			if json.Unmarshal(data, &ref) == nil && e.Code == CodeMalformed && !strings.Contains(e.Reason, "nest deeper") {
				t.Fatalf("encoding/json accepts %q, the strict path calls it malformed: %v", data, err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("strict path accepted %q, which encoding/json calls invalid", data)
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted invalid UTF-8: %q", data)
		}
		var ref any
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("encoding/json refuses what the strict path accepted: %v", err)
		}
		if !reflect.DeepEqual(v, ref) {
			t.Fatalf("strict %#v, encoding/json %#v", v, ref)
		}
		checkValue(t, v)
		if k := duplicateKey(t, data); k != "" {
			t.Fatalf("accepted %q, which has the key %q twice in one object", data, k)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var again any
		if err := Decode(out, &again); err != nil {
			t.Fatalf("re-encoded %q refused: %v", out, err)
		}
		// And into a struct: an accepted body fills it exactly as
		// encoding/json does.
		var a, b invite
		if Decode(data, &a) == nil {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&b); err != nil || a != b {
				t.Fatalf("struct: strict %+v, encoding/json %+v (%v)", a, b, err)
			}
		}
	})
}

// duplicateKey finds a key given twice in one object with encoding/json's
// tokenizer, independently of the scanner.
func duplicateKey(t *testing.T, data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return k
				}
				top.keys[k] = true
				top.expect = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expect = true
		}
	}
}

// checkValue walks a decoded value: every string, key or value, is valid
// UTF-8 without NUL.
func checkValue(t *testing.T, v any) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) || strings.IndexByte(x, 0) >= 0 {
			t.Fatalf("accepted string %q", x)
		}
	case []any:
		for _, e := range x {
			checkValue(t, e)
		}
	case map[string]any:
		for k, e := range x {
			checkValue(t, k)
			checkValue(t, e)
		}
	}
}
