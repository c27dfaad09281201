package e2e

import (
	"encoding/json"
	"strconv"
	"testing"
)

func (h *home) appendEvents(t testing.TB, topic string, n int) int64 {
	t.Helper()
	path := "/__test/stream/" + topic
	if n > 1 {
		path += "?count=" + strconv.Itoa(n)
	}
	r := h.do(t, "POST", path, nil)
	if r.status != 200 {
		t.Fatalf("append to %s: %s", topic, r)
	}
	var out struct{ Seq int64 }
	mustJSON(t, r, &out)
	return out.Seq
}

// TestSSEDeliversEventsAfterSubscribing: a held stream gets what is
// appended after it subscribed, through wake-ups, in order; the first
// answer's events come first; internal headers never reach the client.
func TestSSEDeliversEventsAfterSubscribing(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := startHome(t, homeOptions{perRequest: m.perRequest})
			h.appendEvents(t, "t/a/c/1", 2)
			c := h.openSSE(t, nil, "/__test/stream/t/a/c/1")
			for name := range c.resp.Header {
				if len(name) >= 13 && name[:13] == "Pommy-Stream-" {
					t.Errorf("internal header %s reached the client", name)
				}
			}
			consecutive(t, c.until(t, 2), 1, 2)
			for i := 0; i < 5; i++ {
				h.appendEvents(t, "t/a/c/1", 1)
			}
			last := h.appendEvents(t, "t/a/c/1", 3)
			consecutive(t, c.until(t, last), 3, last)
			if st := h.host.Stats(); st.Busy != 0 || st.Streams.Held != 1 {
				t.Errorf("with one stream held: busy %d, held %d", st.Busy, st.Streams.Held)
			}
		})
	}
}

func mustJSON(t testing.TB, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
}
