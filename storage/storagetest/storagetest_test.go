package storagetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReportCollectsFailuresFatalsAndPanics(t *testing.T) {
	s := Suite{Name: "x", Cases: []Case{
		{"ok", func(t T) { t.Logf("fine") }},
		{"errors", func(t T) {
			var wg sync.WaitGroup
			for range 10 {
				wg.Add(1)
				go func() { defer wg.Done(); t.Errorf("from a goroutine") }()
			}
			wg.Wait()
		}},
		{"fatal", func(t T) {
			cleaned := false
			defer func() { cleaned = true; _ = cleaned }()
			t.Fatalf("stop")
			t.Errorf("not reached")
		}},
		{"panic", func(t T) { panic("boom") }},
	}}
	rs := Report(s)
	if len(rs) != 4 || !rs[0].Passed || rs[0].Logs[0] != "fine" {
		t.Fatalf("results %+v", rs)
	}
	if rs[1].Passed || len(rs[1].Failures) != 10 {
		t.Errorf("concurrent Errorf: %+v", rs[1])
	}
	if rs[2].Passed || len(rs[2].Failures) != 1 {
		t.Errorf("Fatalf: %+v", rs[2])
	}
	if rs[3].Passed || !strings.Contains(rs[3].Failures[0], "boom") {
		t.Errorf("panic: %+v", rs[3])
	}
	if w := s.Without("fatal", "panic"); len(w.Cases) != 2 || w.Cases[1].Name != "errors" {
		t.Errorf("Without: %+v", w)
	}
}

func TestPattern(t *testing.T) {
	a := patternBytes("seed", 100000)
	var b bytes.Buffer
	p := newPattern("seed", 100000)
	buf := make([]byte, 7)
	for {
		n, err := p.Read(buf)
		b.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(a, b.Bytes()) {
		t.Errorf("pattern depends on read sizes")
	}
	if bytes.Equal(patternBytes("seed", 64), patternBytes("other", 64)) {
		t.Errorf("pattern ignores its seed")
	}
}

func TestEchoHandler(t *testing.T) {
	srv := httptest.NewServer(EchoHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/p?status=201&header=X-A:b", "text/plain", strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e Echo
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != 201 || resp.Header.Get("X-A") != "b" || e.Method != "POST" || e.Length != 2 || e.Path != "/p" {
		t.Errorf("echo: %d %+v", resp.StatusCode, e)
	}
	resp, err = http.Get(srv.URL + "/?stream=100001")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, patternBytes("http-stream", 100001)) {
		t.Errorf("stream: %d bytes", len(body))
	}
}

// The HTTP suite must fail against a doer that buffers whole responses
// (it would hide a non-streaming adapter) and one that drops headers.
func TestHTTPSuiteCatchesBrokenDoers(t *testing.T) {
	srv := httptest.NewServer(newEchoHandler(500 * time.Millisecond))
	defer srv.Close()
	failed := map[string]bool{}
	for _, r := range Report(HTTPSuite(buffering{http.DefaultClient}, srv.URL).only("ResponseIsStreamed", "GetHeadersQuery")) {
		if !r.Passed {
			failed[r.Name] = true
		}
	}
	if !failed["ResponseIsStreamed"] {
		t.Errorf("a buffering doer passed ResponseIsStreamed")
	}
	failed = map[string]bool{}
	for _, r := range Report(HTTPSuite(noHeaders{http.DefaultClient}, srv.URL).only("GetHeadersQuery")) {
		if !r.Passed {
			failed[r.Name] = true
		}
	}
	if !failed["GetHeadersQuery"] {
		t.Errorf("a doer that drops headers passed GetHeadersQuery")
	}
}

func (s Suite) only(names ...string) Suite {
	out := Suite{Name: s.Name}
	for _, c := range s.Cases {
		for _, n := range names {
			if c.Name == n {
				out.Cases = append(out.Cases, c)
			}
		}
	}
	return out
}

type buffering struct{ c *http.Client }

func (b buffering) Do(req *http.Request) (*http.Response, error) {
	resp, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, err
}

type noHeaders struct{ c *http.Client }

func (n noHeaders) Do(req *http.Request) (*http.Response, error) {
	req.Header = http.Header{}
	return n.c.Do(req)
}
