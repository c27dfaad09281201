package handlers

import "testing"

// FuzzParseOrigin: the Origin header of every state-changing request goes
// through ParseOrigin. It never panics, and what it accepts is already
// normal: parsing it again gives it back.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8787", "https://A.example:443", "http://[::1]:80", "null", "https://a@b",
		"http://a.example:99999", "http://%41.example", "https://a.example/..", "http://[fe80::1%25eth0]:1", "javascript:alert(1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseOrigin(s)
		if err != nil {
			return
		}
		again, err := ParseOrigin(n)
		if err != nil || again != n {
			t.Fatalf("ParseOrigin(%q) = %q, which parses as %q, %v", s, n, again, err)
		}
	})
}
