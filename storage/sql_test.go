package storage

import "testing"

func TestRowsScanConversions(t *testing.T) {
	r := &Rows{Columns: []string{"i", "f", "s", "b", "n"}, Values: [][]any{{float64(42), float64(1.5), "x", []byte("y"), nil}}}
	var i int64
	var f float64
	var s string
	var b []byte
	var n *int64
	if err := r.Scan(0, &i, &f, &s, &b, &n); err != nil {
		t.Fatal(err)
	}
	if i != 42 || f != 1.5 || s != "x" || string(b) != "y" || n != nil {
		t.Fatalf("got %v %v %q %q %v", i, f, s, b, n)
	}
	if err := r.Scan(0, &i, &i, &s, &b, &n); err == nil {
		t.Fatal("non-integral float scanned into int64")
	}
	if err := r.Scan(1, &i); err == nil {
		t.Fatal("out-of-range row scanned")
	}
	r.Values[0][4] = int64(7)
	if err := r.Scan(0, &i, &f, &s, &b, &n); err != nil || n == nil || *n != 7 {
		t.Fatalf("nullable int: %v %v", n, err)
	}
}
