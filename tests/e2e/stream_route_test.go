package e2e

import (
	"encoding/json"
	"testing"
)

// TestStreamTestRoute checks the application side of the test stream
// (handlers/testroutes/stream.go) that both homes' stream tests stand on:
// appends take consecutive seqs, a read after a cursor returns the rest in
// order with the cursor of its last event, pages are bounded, and a bad
// cursor is a 400 invalid_cursor.
func TestStreamTestRoute(t *testing.T) {
	h := startHome(t, homeOptions{})
	for i, want := range []float64{1, 4} {
		count := []string{"", "?count=3"}[i]
		r := h.do(t, "POST", "/__test/stream/t/route"+count, nil)
		var out map[string]any
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil || out["seq"] != want {
			t.Fatalf("append %d: %s", i, r)
		}
	}
	var page struct {
		Events []struct {
			Seq  int64
			Type string
			At   string
			Data struct{ N int64 }
		}
		Cursor int64
	}
	r := h.get(t, "/__test/stream/t/route?mode=longpoll&after=1&page=2")
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil {
		t.Fatalf("read: %s", r)
	}
	if len(page.Events) != 2 || page.Events[0].Seq != 2 || page.Events[1].Seq != 3 || page.Cursor != 3 ||
		page.Events[1].Data.N != 3 || page.Events[0].Type != "test" || page.Events[0].At == "" {
		t.Fatalf("read after 1, page 2: %+v", page)
	}
	// Last-Event-ID (an SSE resume, and every re-poll) wins over after=.
	r = h.do(t, "GET", "/__test/stream/t/route?mode=longpoll&after=0", nil, "Last-Event-ID", "3")
	if r.status != 200 || json.Unmarshal(r.body, &page) != nil || len(page.Events) != 1 || page.Events[0].Seq != 4 {
		t.Fatalf("read with Last-Event-ID 3: %s", r)
	}
	for _, bad := range []string{"after=-1", "after=1.5", "after=9007199254740992", "after=", "after=x"} {
		r := h.get(t, "/__test/stream/t/route?mode=longpoll&"+bad)
		if r.status != 400 || r.errorCode() != "invalid_cursor" {
			t.Errorf("%s: %s", bad, r)
		}
	}
	if r := h.do(t, "POST", "/__test/stream/bad%20topic", nil); r.status != 400 {
		t.Errorf("bad topic: %s", r)
	}
}
