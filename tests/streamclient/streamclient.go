// Package streamclient is a test client of the stream protocol
// (docs/realtime.md) for either home: it reads Server-Sent Events as a
// browser's EventSource does, and measures delivery latency through the
// test stream route (handlers/testroutes/stream.go: POST appends an event
// and publishes a wake-up, GET is the stream). The workerd suite and the
// benchmarks share it.
package streamclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event is one SSE event. Type is "message" when the frame names none.
type Event struct {
	ID, Type, Data string
}

// MaxLine bounds one line of a stream; a longer one is an error (a test
// client has no business buffering without limit).
const MaxLine = 1 << 20

// Reader parses an SSE byte stream (the WHATWG "event stream" rules that
// matter here: field lines, comments, blank line dispatches, one optional
// space after the colon, CR, LF or CRLF line ends).
type Reader struct {
	r  *bufio.Reader
	id string // the last event ID, kept across events as EventSource does
}

func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 4096)} }

// Next returns the next event. At the end of the stream it returns io.EOF
// (an unfinished last event is dropped, as EventSource does).
func (s *Reader) Next() (Event, error) {
	var typ string
	var data []string
	hasData := false
	for {
		line, err := s.line()
		if err != nil {
			return Event{}, err
		}
		if line == "" {
			if !hasData {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return Event{ID: s.id, Type: typ, Data: strings.Join(data, "\n")}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			data = append(data, value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.id = value
			}
		}
	}
}

func (s *Reader) line() (string, error) {
	var b []byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		switch c {
		case '\n':
			return string(b), nil
		case '\r':
			if n, err := s.r.Peek(1); err == nil && n[0] == '\n' {
				s.r.ReadByte()
			}
			return string(b), nil
		}
		if len(b) >= MaxLine {
			return "", fmt.Errorf("streamclient: a line longer than %d bytes", MaxLine)
		}
		b = append(b, c)
	}
}

// Stream is an open SSE response.
type Stream struct {
	Resp *http.Response
	*Reader
	cancel context.CancelFunc
}

// Close ends the stream (the client goes away).
func (s *Stream) Close() {
	s.cancel()
	s.Resp.Body.Close()
}

// Open starts an SSE request for url (Accept: text/event-stream), with
// Last-Event-ID when lastID is not empty and any extra header pairs. It
// returns when the response's headers have arrived; a status other than 200
// is an error that includes the body.
func Open(ctx context.Context, c *http.Client, url, lastID string, header ...string) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return &Stream{Resp: resp, Reader: NewReader(resp.Body), cancel: cancel}, nil
}

// NextData returns the next event that is not a heartbeat ping.
func (s *Stream) NextData() (Event, error) {
	for {
		e, err := s.Next()
		if err != nil || e.Type != "ping" {
			return e, err
		}
	}
}

// Append appends one event to the test stream's topic through
// POST base/__test/stream/{topic} and returns its sequence number.
func Append(ctx context.Context, c *http.Client, base, topic string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/__test/stream/"+topic, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Seq       int64
		Published bool
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
		return 0, fmt.Errorf("POST /__test/stream/%s: %d %s", topic, resp.StatusCode, b)
	}
	if !out.Published {
		return out.Seq, fmt.Errorf("POST /__test/stream/%s: the wake-up was not published: %s", topic, b)
	}
	return out.Seq, nil
}

// Latencies are delivery latencies, append to event received.
type Latencies []time.Duration

// Quantile returns the q-quantile (0..1), nearest rank.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (l Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), l.Quantile(0.5).Round(time.Microsecond),
		l.Quantile(0.99).Round(time.Microsecond), l.Quantile(1).Round(time.Microsecond))
}

// MeasureLatency holds one SSE stream on a new topic at base (a home with
// the test routes) and appends n events one after another, each after the
// previous one arrived; an event's latency runs from just before its POST
// to its arrival on the stream. Every event must arrive once, in order, on
// the one stream (which is never reopened): it comes through the home's
// wake-up and re-poll.
func MeasureLatency(ctx context.Context, c *http.Client, base, topic string, n int) (Latencies, error) {
	s, err := Open(ctx, c, base+"/__test/stream/"+topic, "")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	type arrival struct {
		e   Event
		at  time.Time
		err error
	}
	arrivals := make(chan arrival, 1)
	go func() {
		for {
			e, err := s.NextData()
			select {
			case arrivals <- arrival{e, time.Now(), err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	out := make(Latencies, 0, n)
	for i := 1; i <= n; i++ {
		start := time.Now()
		seq, err := Append(ctx, c, base, topic)
		if err != nil {
			return out, err
		}
		if seq != int64(i) {
			return out, fmt.Errorf("append %d got seq %d: the topic %q was not new", i, seq, topic)
		}
		select {
		case a := <-arrivals:
			if a.err != nil {
				return out, fmt.Errorf("waiting for event %d: %w", i, a.err)
			}
			if a.e.ID != strconv.Itoa(i) {
				return out, fmt.Errorf("event %d: got id %q (%s %s)", i, a.e.ID, a.e.Type, a.e.Data)
			}
			out = append(out, a.at.Sub(start))
		case <-ctx.Done():
			return out, fmt.Errorf("waiting for event %d: %w", i, ctx.Err())
		}
	}
	return out, nil
}
