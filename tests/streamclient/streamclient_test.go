package streamclient

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	in := ": comment\n\nid: 1\nevent: test\ndata: {\"n\":1}\n\n" +
		"event: ping\r\ndata: {\"t\":5}\r\n\r\n" +
		"data:a\ndata: b\n\n" +
		"id: 7\rdata: x\r\r" +
		"event: error\ndata: {\"error\":{}}\n\n" +
		"data: unfinished"
	r := NewReader(strings.NewReader(in))
	want := []Event{
		{"1", "test", `{"n":1}`},
		{"1", "ping", `{"t":5}`},
		{"1", "message", "a\nb"},
		{"7", "message", "x"},
		{"7", "error", `{"error":{}}`},
	}
	for i, w := range want {
		e, err := r.Next()
		if err != nil || e != w {
			t.Fatalf("event %d = %+v, %v; want %+v", i, e, err, w)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after an unfinished event: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReaderLineLimit(t *testing.T) {
	r := NewReader(strings.NewReader("data: " + strings.Repeat("x", MaxLine) + "\n\n"))
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a line over MaxLine: %v", err)
	}
	r = NewReader(strings.NewReader("data: " + strings.Repeat("x", MaxLine-len("data: ")) + "\n\n"))
	if e, err := r.Next(); err != nil || len(e.Data) != MaxLine-len("data: ") {
		t.Fatalf("a line of exactly MaxLine: %v", err)
	}
}

func TestQuantile(t *testing.T) {
	var l Latencies
	for i := 1; i <= 100; i++ {
		l = append(l, timeMs(i))
	}
	if l.Quantile(0.5) != timeMs(50) || l.Quantile(0.99) != timeMs(99) || l.Quantile(1) != timeMs(100) {
		t.Fatalf("quantiles of 1..100 ms: %v", l)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("id: 1\nevent: test\ndata: {}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n: c\n\n"))
	f.Add([]byte("id: \x00\ndata\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(strings.NewReader(string(b)))
		for i := 0; i <= len(b); i++ {
			e, err := r.Next()
			if err != nil {
				return
			}
			if strings.ContainsRune(e.ID, 0) {
				t.Fatalf("an id with NUL was taken: %q", e.ID)
			}
		}
		t.Fatalf("more events than bytes in %q", b)
	})
}

func timeMs(i int) time.Duration { return time.Duration(i) * time.Millisecond }
