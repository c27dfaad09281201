package widgettest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"pommy.ai/edge/tests/streamclient"
)

// Watch opens visitor v's event stream of conv and reads it up to the first
// message.created event whose data contains first, so that what follows is
// what the stream gets while it is held. The stream closes at cleanup.
func (s *Site) Watch(t testing.TB, v Visitor, conv, first string) *streamclient.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	st, err := streamclient.Open(ctx, &http.Client{}, s.C.Base+"/v1/widget/conversations/"+conv+"/events/stream", "", s.As(v)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for {
		e, err := st.NextData()
		if err != nil {
			t.Fatalf("the visitor's stream of %s before the change: %v", conv, err)
		}
		if e.Type == "message.created" && strings.Contains(e.Data, first) {
			return st
		}
	}
}

// ExpectStreamEnds reads a held stream after a change that revokes its
// viewer (what: the change, for messages): the stream must end with an
// error event naming code, and deliver nothing containing forbidden before.
func ExpectStreamEnds(t testing.TB, st *streamclient.Stream, what, forbidden, code string) {
	t.Helper()
	for {
		e, err := st.NextData()
		if err != nil {
			t.Errorf("the visitor's stream after %s: %v; want event error %s", what, err, code)
			return
		}
		if strings.Contains(e.Data, forbidden) {
			t.Errorf("the visitor's held stream delivered after %s: %s", what, e.Data)
			return
		}
		if e.Type == "error" {
			if !strings.Contains(e.Data, code) {
				t.Errorf("the visitor's stream after %s ended with %s, want %s", what, e.Data, code)
			}
			return
		}
	}
}
