package conversations

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf8"

	"pommy.ai/edge/handlers/strictjson"
)

var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 100)...)

func sniff(data []byte, oneByte bool) string {
	var r io.Reader = bytes.NewReader(data)
	if oneByte {
		r = iotest.OneByteReader(r)
	}
	s := newSniffer(r)
	io.Copy(io.Discard, s)
	return s.Type()
}

// TestSniff: the type comes from the bytes; what is not on the list, and
// text a browser would render as a page or run, is "".
func TestSniff(t *testing.T) {
	jpeg := append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0}, make([]byte, 40)...)
	webp := append([]byte("RIFF\x24\x00\x00\x00WEBPVP8 "), make([]byte, 40)...)
	long := strings.Repeat("Merhaba dünya, ğüşıöç. ", 1000) // runes cut across reads
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"png", pngBytes, TypePNG},
		{"jpeg", jpeg, TypeJPEG},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), TypeGIF},
		{"webp", webp, TypeWebP},
		{"pdf", []byte("%PDF-1.4\n%âãÏÓ\n"), TypePDF},
		{"text", []byte("hello\nworld\n"), TypeText},
		{"utf-8 text", []byte(long), TypeText},
		{"utf-8 with BOM", []byte("\xEF\xBB\xBFhello"), TypeText},
		{"empty", nil, TypeText},
		{"NUL after the head", append([]byte(strings.Repeat("a", 10000)), 0), ""},
		{"invalid UTF-8 after the head", append([]byte(strings.Repeat("a", 10000)), 0xff, 'a'), ""},
		{"truncated rune at the end", append([]byte(strings.Repeat("a", 700)), 0xC3), ""},
		{"utf-16", []byte("\xFF\xFEh\x00i\x00"), ""},
		{"html", []byte("<!DOCTYPE html><html><body>hi"), ""},
		{"html after spaces", []byte("\n\n   <p onclick=x>hi"), ""},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), ""},
		{"xml", []byte(`<?xml version="1.0"?><a/>`), ""},
		{"script late in the head", []byte("hello there\n" + strings.Repeat("x", 1000) + "<SCRIPT>alert(1)</SCRIPT>"), ""},
		{"shebang", []byte("#!/bin/sh\nrm -rf /\n"), ""},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00"), ""},
		{"exe", []byte("MZ\x90\x00\x03\x00\x00\x00"), ""},
		{"gzip", []byte("\x1f\x8b\x08\x00\x00\x00"), ""},
	} {
		for _, one := range []bool{false, true} {
			if got := sniff(c.data, one); got != c.want {
				t.Errorf("%s (one byte a read %v): %q, want %q", c.name, one, got, c.want)
			}
		}
	}
}

// FuzzSniff: how the stream is cut into reads never changes the verdict,
// and text is called text only when it is valid UTF-8 without NUL.
func FuzzSniff(f *testing.F) {
	for _, s := range []string{"hello", "<html>", "\x89PNG\r\n\x1a\n", "ğüş", "a\x00b", "\xC3", "%PDF-"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, bytewise := sniff(data, false), sniff(data, true)
		if whole != bytewise {
			t.Fatalf("%q: %q whole, %q byte by byte", data, whole, bytewise)
		}
		if whole == TypeText && (!utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0) {
			t.Fatalf("%q called text", data)
		}
	})
}

func TestParseFileName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.png":                       "photo.png",
		"C:\\Users\\ayşe\\Desktop\\a.pdf": "a.pdf",
		"../../etc/passwd":                "passwd",
		"  .hidden.  ":                    "hidden",
		"a\x00b\nc\td\u202Egnp.exe":       "abcdgnp.exe",
		"two  spaces\u00a0here.txt":       "two  spaces here.txt",
		"<img src=x onerror=alert(1)>":    "<img src=x onerror=alert(1)>",
		strings.Repeat("ş", 300) + ".txt": strings.Repeat("ş", MaxFileName-4) + ".txt",
	} {
		got, err := ParseFileName(in)
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "/", "...", "dir/", "\x01\x02", "\xff.png", strings.Repeat("a", maxFileNameBytes+1)} {
		if got, err := ParseFileName(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
	// 200 characters are kept whole; 201 are cut to 200.
	if got, _ := ParseFileName(strings.Repeat("a", MaxFileName)); got != strings.Repeat("a", MaxFileName) {
		t.Errorf("a name at the limit changed: %d", len(got))
	}
	if got, _ := ParseFileName(strings.Repeat("a", MaxFileName+1)); utf8.RuneCountInString(got) != MaxFileName {
		t.Errorf("a name over the limit: %d", utf8.RuneCountInString(got))
	}
}

// FuzzParseFileName: an accepted name is 1..MaxFileName characters of
// valid UTF-8 without a path separator or control character, and the
// Content-Disposition made from it is ASCII that a MIME parser reads back
// as the same name.
func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{"a.png", "../x", "a\"b\\c%d.txt", "résumé.pdf", "\u202Eexe.png", "日本語.txt", " ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := ParseFileName(s)
		if err != nil {
			return
		}
		if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxFileName || strings.ContainsAny(name, `/\`) ||
			strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Fatalf("%q accepted as %q", s, name)
		}
		cd := contentDisposition(name)
		for i := 0; i < len(cd); i++ {
			if cd[i] < 0x20 || cd[i] > 0x7e {
				t.Fatalf("non-ASCII header %q", cd)
			}
		}
		typ, params, err := mime.ParseMediaType(cd)
		if err != nil || typ != "attachment" || params["filename"] != name {
			t.Fatalf("%q: %q parses as %q %v %v", name, cd, typ, params, err)
		}
	})
}

// FuzzParseCSAT: the body as the route decodes it; an accepted rating is
// 1..5 with a comment of at most MaxCSATComment characters.
func FuzzParseCSAT(f *testing.F) {
	for _, s := range []string{`{"rating":5}`, `{"rating":0}`, `{"rating":3,"comment":"ok"}`, `{"rating":1.5}`, `{"comment":"x"}`, `{"rating":5,"comment":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in CSATInput
		if strictjson.Decode(body, &in) != nil {
			return
		}
		r, c, err := ParseCSAT(in)
		if err != nil {
			return
		}
		if r < 1 || r > 5 || !utf8.ValidString(c) || utf8.RuneCountInString(c) > MaxCSATComment || c != strings.TrimSpace(c) {
			t.Fatalf("%q accepted as %d %q", body, r, c)
		}
	})
}

// FuzzVisitorBodies: the visitor's send and start bodies, as decoded; an
// accepted announcement has a clean name and a size within the limit.
func FuzzVisitorBodies(f *testing.F) {
	for _, s := range []string{`{"text":"hi"}`, `{"text":"","attachment":{"name":"a.png","size":10}}`, `{"attachment":{"name":"../a","size":-1}}`,
		`{"text":"x","attachment":{"name":"a","size":99999999999}}`, `{"pre_chat":{"name":"A","email":"a@b.co"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in VisitorSendInput
		if strictjson.Decode(body, &in) == nil {
			if a, err := ParseAnnouncement(in.Attachment, 1024); err == nil && a != nil {
				if a.Size < 0 || a.Size > 1024 || a.Name == "" || strings.ContainsAny(a.Name, `/\`) {
					t.Fatalf("%q accepted as %+v", body, a)
				}
			}
		}
		var st VisitorStartInput
		if strictjson.Decode(body, &st) == nil {
			checkPreChat(st.PreChat)
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"", "1", "200", "201", "0", "-1", "01", "1e2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseLimit(s, 50, 200)
		if err == nil && (n < 1 || n > 200) {
			t.Fatalf("%q accepted as %d", s, n)
		}
	})
}
