package testroutes

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseCursor: the test stream's cursor parser accepts exactly the
// decimal integers 0 <= N < 2^53 (docs/realtime.md), as the hub's does.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0", "42", "9007199254740991", "9007199254740992", "-1", "+1", "00000000000000000001", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseCursor(s)
		ref, rerr := strconv.ParseUint(s, 10, 64)
		want := rerr == nil && s != "" && strings.Trim(s, "0123456789") == "" && ref <= maxCursor
		if (err == nil) != want || err == nil && uint64(n) != ref {
			t.Fatalf("%q: %d %v; strconv %d %v", s, n, err, ref, rerr)
		}
	})
}
