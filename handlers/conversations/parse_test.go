package conversations

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets for every parser of client input: they must never panic,
// and what they accept must satisfy the documented rules.

func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"0", "1", "9007199254740991", "9007199254740992", "-1", "01", "+1", " 1", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSeq(s)
		if err != nil {
			return
		}
		if n < 0 || n > maxSafeInt || strconv.FormatInt(n, 10) != s {
			t.Fatalf("accepted %q as %d", s, n)
		}
	})
}

func FuzzKeyCursor(f *testing.F) {
	f.Add(keyCursor{At: 1700000000000, ID: "c_" + strings.Repeat("a", 26)}.encode())
	f.Add("")
	f.Add("MTcuY19h")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseKeyCursor(s, "c")
		if err != nil {
			return
		}
		if !validID("c", c.ID) || c.At < 0 || c.At > maxSafeInt {
			t.Fatalf("accepted %q as %+v", s, c)
		}
		if back, err := parseKeyCursor(c.encode(), "c"); err != nil || back != c {
			t.Fatalf("round trip of %+v: %+v %v", c, back, err)
		}
	})
}

func FuzzParseLabels(f *testing.F) {
	f.Add("vip,Billing, billing")
	f.Add("")
	f.Add("a:b.c-d_e,-x")
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ParseLabels(strings.Split(s, ","))
		if err != nil {
			return
		}
		if len(out) > MaxLabels {
			t.Fatalf("%d labels", len(out))
		}
		for i, l := range out {
			if !validLabel(l) || i > 0 && out[i-1] >= l {
				t.Fatalf("accepted %q: %q", s, out)
			}
		}
	})
}

func FuzzParseAttributes(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"plan":"pro","seats":3,"vip":true,"x":null}`, `{"a":{"b":1}}`, `[1]`, `{"a":1}{}`, `{"a":1e999}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ParseAttributes(json.RawMessage(s))
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || len(out) > MaxAttributesLen || len(m) > MaxAttributes {
			t.Fatalf("accepted %q as %q (%v)", s, out, err)
		}
		for k, v := range m {
			if !validAttributeKey(k) {
				t.Fatalf("key %q", k)
			}
			switch x := v.(type) {
			case map[string]any, []any:
				t.Fatalf("nested value under %q", k)
			case string:
				if utf8.RuneCountInString(x) > MaxAttributeText {
					t.Fatalf("long value under %q", k)
				}
			}
		}
		// Canonical: parsing the output again gives it back.
		if again, err := ParseAttributes(out); err != nil || string(again) != string(out) {
			t.Fatalf("not canonical: %q -> %q (%v)", out, again, err)
		}
	})
}

func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"a", "8e3c1b2a-9f4d-4c1e-b0a7-3d2f1e0c9b8a", "", "has space", "é", strings.Repeat("k", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidIdempotencyKey(s) {
			return
		}
		if len(s) == 0 || len(s) > MaxIdemKey || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"Ann@Example.com", " a@b.c ", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@b.c."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := NormalizeEmail(s)
		if err != nil {
			return
		}
		if strings.Count(e, "@") != 1 || len(e) > MaxEmail || e != strings.ToLower(e) || strings.TrimSpace(e) != e {
			t.Fatalf("accepted %q as %q", s, e)
		}
		if again, err := NormalizeEmail(e); err != nil || again != e {
			t.Fatalf("not idempotent: %q -> %q", e, again)
		}
	})
}

func TestParseLimits(t *testing.T) {
	big := map[string]string{}
	for i := range MaxAttributes + 1 {
		big["k"+strconv.Itoa(i)] = "v"
	}
	b, _ := json.Marshal(big)
	if _, err := ParseAttributes(b); err == nil {
		t.Fatal("accepted too many attributes")
	}
	delete(big, "k0")
	b, _ = json.Marshal(big)
	if _, err := ParseAttributes(b); err != nil {
		t.Fatal(err)
	}
	long, _ := json.Marshal(map[string]string{"a": strings.Repeat("x", MaxAttributeText+1)})
	if _, err := ParseAttributes(long); err == nil {
		t.Fatal("accepted a long value")
	}
	huge := map[string]string{}
	for i := range 20 {
		huge["k"+strconv.Itoa(i)] = strings.Repeat("x", MaxAttributeText)
	}
	b, _ = json.Marshal(huge)
	if _, err := ParseAttributes(b); err == nil {
		t.Fatal("accepted attributes over the size bound")
	}
	if ValidIdempotencyKey(strings.Repeat("k", MaxIdemKey+1)) || !ValidIdempotencyKey(strings.Repeat("k", MaxIdemKey)) {
		t.Fatal("idempotency key bound")
	}
	if _, err := ParseSeq("9007199254740992"); err == nil {
		t.Fatal("2^53 accepted")
	}
	if n, err := ParseSeq("9007199254740991"); err != nil || n != maxSafeInt {
		t.Fatal(n, err)
	}
	if w, _ := parseWait("100"); w != 30 {
		t.Fatal(w)
	}
	if w, _ := parseWait("0"); w != 1 {
		t.Fatal(w)
	}
}
