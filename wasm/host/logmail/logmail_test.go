package logmail

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"pommy.ai/edge/storage"
)

func TestPrintsWholeMessages(t *testing.T) {
	var b strings.Builder
	var mu sync.Mutex
	m := New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return b.Write(p) }))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := m.Send(context.Background(), storage.Mail{ID: "ml_" + string(rune('a'+i)), To: "a@example.com", Subject: "Reset",
				Text: "line one\r\nhttps://x.example/account/reset#token=T" + string(rune('a'+i)) + "\r\n", HTML: "<p>not printed</p>"})
			if err != nil || id == "" {
				t.Errorf("send: %q %v", id, err)
			}
		}()
	}
	wg.Wait()
	out := b.String()
	if strings.Count(out, Banner) != 8 || strings.Count(out, "===== end of mail =====") != 8 || strings.Contains(out, "<p>") || strings.Contains(out, "\r") {
		t.Fatalf("printed:\n%s", out)
	}
	// Messages are printed whole, never interleaved.
	for _, part := range strings.Split(out, "===== end of mail =====")[:8] {
		if strings.Count(part, Banner) != 1 || strings.Count(part, "#token=T") != 1 {
			t.Fatalf("an interleaved message:\n%s", part)
		}
	}
}

func TestRefusesWhatAdaptersRefuse(t *testing.T) {
	var b strings.Builder
	m := New(&b)
	_, err := m.Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com\r\nBcc: b@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, storage.ErrInvalid) || b.Len() != 0 {
		t.Fatalf("got %v, printed %q", err, b.String())
	}
}

func TestNoTerminalEscapes(t *testing.T) {
	var b strings.Builder
	if _, err := New(&b).Send(context.Background(), storage.Mail{ID: "ml_1", To: "a@example.com", Subject: "s", Text: "Hello \x1b[2J\x1b]0;owned\x07 Acme\r\nbye\tnow\u009b"}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.ContainsAny(out, "\x1b\x07\r\u009b") || !strings.Contains(out, "bye\tnow") {
		t.Fatalf("printed %q", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
