package ui

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(Widget, "widget/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipSize(t *testing.T, b []byte) int {
	t.Helper()
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Len()
}

// The budgets: the loader every page of the tenant's site downloads
// at most 5 KB gzip, and everything a visitor downloads to open the chat
// (loader, frame page, app script and styles) at most 30 KB gzip.
func TestWidgetSizeBudgets(t *testing.T) {
	loader := gzipSize(t, read(t, "loader.js"))
	if loader > 5*1024 {
		t.Errorf("loader.js is %d bytes gzip, over the 5 KB budget", loader)
	}
	total := loader
	for _, f := range []string{"frame.html", "app.js", "app.css"} {
		total += gzipSize(t, read(t, f))
	}
	if total > 30*1024 {
		t.Errorf("opening the chat downloads %d bytes gzip, over the 30 KB budget", total)
	}
	t.Logf("gzip -9: loader %d B, everything to open the chat %d B", loader, total)
}

// The frame runs under script-src 'self'; style-src 'self' and the loader
// under the host page's CSP: no inline script or style in the template, and
// no HTML parsing of data anywhere (text is always put in as text).
func TestWidgetNoInlineCodeNoHTMLParsing(t *testing.T) {
	frame := string(read(t, "frame.html"))
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`} {
		if regexp.MustCompile(`(?i)` + re).MatchString(frame) {
			t.Errorf("frame.html matches %s: inline script or style is refused by the frame's CSP", re)
		}
	}
	if !regexp.MustCompile(`<script[^>]*\ssrc="{{\.AppJS}}"`).MatchString(frame) || !strings.Contains(frame, `href="{{.AppCSS}}"`) {
		t.Error("frame.html does not load {{.AppJS}} and {{.AppCSS}}")
	}
	banned := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment|DOMParser|setAttribute\("style"|\.cssText`)
	for _, f := range []string{"loader.js", "app.js"} {
		if m := banned.FindString(string(read(t, f))); m != "" {
			t.Errorf("%s uses %s: data must be put in the DOM as text, styles through el.style", f, m)
		}
	}
}

// Every string the chat shows exists in English and Turkish.
func TestWidgetTranslationsComplete(t *testing.T) {
	src := string(read(t, "app.js"))
	block := func(lang, next string) map[string]bool {
		i := strings.Index(src, "\n  "+lang+": {")
		j := strings.Index(src[i+1:], next)
		if i < 0 || j < 0 {
			t.Fatalf("no %s block in STR", lang)
		}
		keys := map[string]bool{}
		for _, m := range regexp.MustCompile(`(\w+): "`).FindAllStringSubmatch(src[i:i+1+j], -1) {
			keys[m[1]] = true
		}
		return keys
	}
	en, tr := block("en", "\n  tr: {"), block("tr", "\n};")
	if len(en) < 40 {
		t.Fatalf("found only %d English strings: the test no longer reads STR", len(en))
	}
	for k := range en {
		if !tr[k] {
			t.Errorf("string %q has no Turkish translation", k)
		}
	}
	for k := range tr {
		if !en[k] {
			t.Errorf("string %q is Turkish only", k)
		}
	}
	// Used keys exist: t("key") calls name a key of the English table.
	for _, m := range regexp.MustCompile(`\bt\("(\w+)"`).FindAllStringSubmatch(src, -1) {
		if !en[m[1]] {
			t.Errorf("t(%q) names no string", m[1])
		}
	}
}
