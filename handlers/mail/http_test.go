package mail

import (
	"net/url"
	"strings"
	"testing"
)

// The listing's query parameters are refused unless exact.
func TestParseList(t *testing.T) {
	c := encodeCursor(1764000000000, LogID("x"))
	q, err := parseList(url.Values{"status": {"failed"}, "template": {TemplateInvitation}, "limit": {"100"}, "cursor": {c}})
	if err != nil || q.Status != "failed" || q.Template != TemplateInvitation || q.Limit != 100 || q.AfterAt != 1764000000000 || q.AfterID != LogID("x") {
		t.Fatalf("%+v %v", q, err)
	}
	for _, bad := range []url.Values{
		{"status": {"sending"}}, {"template": {"welcome"}}, {"limit": {"0"}}, {"limit": {"101"}}, {"limit": {"01"}},
		{"limit": {"1", "2"}}, {"to": {"a@example.com"}}, {"cursor": {"x"}}, {"cursor": {c + "A"}},
		{"cursor": {encodeCursor(1, "ml_notanid")}}, {"cursor": {encodeCursor(1<<53, LogID("x"))}},
		{"cursor": {strings.Repeat("A", 201)}},
	} {
		if _, err := parseList(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// FuzzMailCursor: a cursor is either one encodeCursor made, read back to
// the same position, or refused.
func FuzzMailCursor(f *testing.F) {
	f.Add(encodeCursor(0, LogID("a")))
	f.Add(encodeCursor(1764000000000, LogID("b")))
	f.Add("MTIzLm1sXzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		at, id, err := parseCursor(s)
		if err != nil {
			return
		}
		if encodeCursor(at, id) != s || !validLogID(id) || at < 0 {
			t.Fatalf("%q read as (%d, %q)", s, at, id)
		}
	})
}
