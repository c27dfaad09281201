package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseFrame is one Server-Sent Events frame as a client reads it.
type sseFrame struct {
	id    string
	event string
	data  string
}

func (f sseFrame) seq(t testing.TB) int64 {
	t.Helper()
	n, err := strconv.ParseInt(f.id, 10, 64)
	if err != nil {
		t.Fatalf("frame %+v: id is not a seq", f)
	}
	return n
}

// sseClient is an open SSE stream; frames arrive on a channel, closed at
// the stream's end (err says how it ended).
type sseClient struct {
	resp   *http.Response
	frames chan sseFrame
	err    error
	cancel context.CancelFunc
}

// hangGuard bounds every wait for a frame so that a broken hub fails a
// test instead of hanging it; it is not a timing assertion.
const hangGuard = 30 * time.Second

func (h *home) openSSE(t testing.TB, client *http.Client, path string, header ...string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	c := &sseClient{resp: resp, frames: make(chan sseFrame, 1024), cancel: cancel}
	t.Cleanup(c.close)
	go c.read()
	return c
}

func (c *sseClient) read() {
	defer close(c.frames)
	br := bufio.NewReader(c.resp.Body)
	var f sseFrame
	inFrame := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err != io.EOF || line != "" || inFrame {
				c.err = err
			}
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if inFrame {
				c.frames <- f
			}
			f, inFrame = sseFrame{}, false
			continue
		}
		inFrame = true
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			f.id = value
		case "event":
			f.event = value
		case "data":
			f.data = value
		}
	}
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

// next returns the next frame other than a ping; ok is false at the end
// of the stream.
func (c *sseClient) next(t testing.TB) (sseFrame, bool) {
	t.Helper()
	for {
		f, ok := c.nextAny(t)
		if !ok || f.event != "ping" {
			return f, ok
		}
	}
}

func (c *sseClient) nextAny(t testing.TB) (sseFrame, bool) {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(hangGuard):
		t.Fatalf("no frame within %v", hangGuard)
		return sseFrame{}, false
	}
}

// until reads events until one with seq last arrives, returning their
// seqs in order.
func (c *sseClient) until(t testing.TB, last int64) []int64 {
	t.Helper()
	var seqs []int64
	for {
		f, ok := c.next(t)
		if !ok {
			t.Fatalf("stream ended (%v) after %v, before seq %d", c.err, seqs, last)
		}
		if f.event == "error" {
			t.Fatalf("stream error after %v: %s", seqs, f.data)
		}
		n := f.seq(t)
		seqs = append(seqs, n)
		if n >= last {
			return seqs
		}
	}
}

func consecutive(t testing.TB, seqs []int64, from, to int64) {
	t.Helper()
	if int64(len(seqs)) != to-from+1 {
		t.Fatalf("got %d events %v, want %d..%d", len(seqs), seqs, from, to)
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			t.Fatalf("got %v, want %d..%d in order", seqs, from, to)
		}
	}
}
