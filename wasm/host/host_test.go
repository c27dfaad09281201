package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
)

// The host's tests run testdata/testguest, a small guest that can misbehave
// on request. The real guest is exercised end to end in tests/e2e.

var (
	testGuest []byte
	// cacheDir is shared by the tests so the guest compiles once.
	cacheDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pommy-host-test")
	if err != nil {
		panic(err)
	}
	out := filepath.Join(dir, "testguest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/testguest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test guest:", err)
		os.Exit(1)
	}
	cacheDir = filepath.Join(dir, "cache")
	testGuest, err = os.ReadFile(out)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// probeKV is a KV that records how many requests are between their
// "enter" and "leave" puts at once.
type probeKV struct {
	mu          sync.Mutex
	active, max int
	values      map[string][]byte
}

func (k *probeKV) Get(_ context.Context, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.values[key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}

func (k *probeKV) Put(_ context.Context, key string, v []byte, _ storage.KVPutOptions) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch key {
	case "enter":
		k.active++
		k.max = max(k.max, k.active)
	case "leave":
		k.active--
	}
	if k.values == nil {
		k.values = map[string][]byte{}
	}
	k.values[key] = v
	return nil
}

func (k *probeKV) Delete(context.Context, string) error { return nil }
func (k *probeKV) List(context.Context, string, string, int) (storage.KVList, error) {
	return storage.KVList{}, nil
}

// logBuffer collects log records so tests can look for them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type fixture struct {
	h   *Host
	url string
	kv  *probeKV
	log *logBuffer
}

func start(t testing.TB, opts Options) *fixture {
	t.Helper()
	f := &fixture{kv: &probeKV{}, log: &logBuffer{}}
	opts.Module = testGuest
	opts.CacheDir = cacheDir
	opts.Platform.KV = f.kv
	opts.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	h, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, ServerOptions{})
	go srv.Serve(ln)
	f.url = "http://" + ln.Addr().String()
	t.Cleanup(func() {
		srv.Close()
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", f.log)
		}
	})
	return f
}

func (f *fixture) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not the JSON error shape: %q", body)
	}
	return e.Error.Code
}

type randReply struct {
	Random   string
	Now      int64
	Deadline int64
}

func TestRealRandomnessAndClocks(t *testing.T) {
	// A fresh instance per request: with wazero's default (seeded)
	// random source both instances would draw the same bytes.
	f := start(t, Options{InstancePerRequest: true, Timeout: 7 * time.Second})
	seen := map[string]bool{}
	for range 2 {
		before := time.Now()
		status, body := f.get(t, "/rand")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var r randReply
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if seen[r.Random] {
			t.Fatalf("two fresh instances drew the same random bytes %s: the random source is not crypto/rand", r.Random)
		}
		seen[r.Random] = true
		// wazero's default walltime is a fake clock starting in 2022.
		if now := time.Unix(0, r.Now); now.Before(before.Add(-time.Minute)) || now.After(time.Now().Add(time.Minute)) {
			t.Errorf("guest clock says %v, host %v", now, before)
		}
		if d := time.Unix(0, r.Deadline).Sub(before); d < 6*time.Second || d > 8*time.Second {
			t.Errorf("guest deadline is %v after the request started, want about 7s", d)
		}
	}
	if got := f.h.Stats().Instantiated; got < 3 {
		t.Errorf("instantiated %d instances for 2 requests with InstancePerRequest", got)
	}
}

func TestPoolBoundsConcurrency(t *testing.T) {
	f := start(t, Options{Pool: 2})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, body := f.get(t, "/sleep?ms=150"); status != 200 {
				t.Errorf("status %d: %s", status, body)
			}
		}()
	}
	wg.Wait()
	if f.kv.max != 2 {
		t.Errorf("at most %d requests ran at once, want exactly the pool size 2", f.kv.max)
	}
	if s := f.h.Stats(); s.Instantiated > 2 || s.InstancesRunning > 2 {
		t.Errorf("pool of 2 made %d instances (%d alive)", s.Instantiated, s.InstancesRunning)
	}
}

func TestTrapDiscardsInstanceAndServerGoesOn(t *testing.T) {
	for _, how := range []string{"panic", "crash"} {
		t.Run(how, func(t *testing.T) {
			f := start(t, Options{Pool: 1})
			status, body := f.get(t, "/trap?how="+how)
			if status != 500 || errorCode(t, body) != "internal" {
				t.Fatalf("trap: status %d body %s", status, body)
			}
			s := f.h.Stats()
			if s.Traps != 1 || s.Discarded != 1 {
				t.Errorf("after a trap: %+v", s)
			}
			if status, body := f.get(t, "/rand"); status != 200 {
				t.Fatalf("request after the trap: %d %s", status, body)
			}
			if got := f.h.Stats().Instantiated; got != 2 {
				t.Errorf("instantiated %d, want the first and its replacement", got)
			}
			if how == "crash" && !strings.Contains(f.log.String(), "crashed on request") {
				t.Errorf("the guest's report is not in the log:\n%s", f.log)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	t.Run("reaches the guest's context", func(t *testing.T) {
		f := start(t, Options{Timeout: 300 * time.Millisecond})
		status, body := f.get(t, "/sleep?ms=20000")
		if status != 503 || body != "ctx: context deadline exceeded" {
			t.Fatalf("status %d body %q", status, body)
		}
		if s := f.h.Stats(); s.Killed != 0 || s.Discarded != 0 {
			t.Errorf("a guest that honoured its deadline was killed: %+v", s)
		}
	})
	for _, mode := range []string{"spin", "ignore"} {
		t.Run("kills a guest that "+mode+"s", func(t *testing.T) {
			f := start(t, Options{Timeout: 300 * time.Millisecond, Grace: 200 * time.Millisecond, Pool: 1})
			start := time.Now()
			status, body := f.get(t, "/sleep?ms=60000&mode="+mode)
			// 504, not 503: the guest ran, and may have changed
			// something before it was stopped.
			if status != 504 || errorCode(t, body) != "timeout" || !strings.Contains(body, "may or may not have taken effect") {
				t.Fatalf("status %d body %s", status, body)
			}
			// Not a speed assertion: the guest asked for 60 s and
			// must not get them.
			if took := time.Since(start); took > 20*time.Second {
				t.Fatalf("the host waited %v for a guest past its deadline", took)
			}
			if s := f.h.Stats(); s.Killed != 1 || s.Discarded != 1 {
				t.Errorf("%+v", s)
			}
			if status, _ := f.get(t, "/rand"); status != 200 {
				t.Fatalf("request after the kill: %d", status)
			}
		})
	}
	t.Run("waiting for an instance counts", func(t *testing.T) {
		f := start(t, Options{Timeout: 300 * time.Millisecond, Grace: time.Second, Pool: 1})
		done := make(chan struct{})
		go func() { defer close(done); f.get(t, "/sleep?ms=20000&mode=spin") }()
		time.Sleep(50 * time.Millisecond)
		status, body := f.get(t, "/rand")
		<-done
		if status != 503 || errorCode(t, body) != "busy" {
			t.Fatalf("status %d body %s", status, body)
		}
	})
}

func TestABIMisuseIsRefusedAndInstanceDiscarded(t *testing.T) {
	for which, want := range map[string]string{"in": "rc=-1", "out": "rc=-3", "take": "rc=-4", "huge": "rc=-2"} {
		t.Run(which, func(t *testing.T) {
			f := start(t, Options{Pool: 1})
			resp, err := http.Get(f.url + "/badptr?which=" + which)
			if err == nil {
				// The response went out before the host saw the
				// instance was broken; it must then be cut short.
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatalf("a response from a guest that misused the ABI arrived whole")
			}
			if !strings.Contains(f.log.String(), want) {
				t.Errorf("guest did not see %s:\n%s", want, f.log)
			}
			if s := f.h.Stats(); s.Discarded != 1 || s.Traps != 1 {
				t.Errorf("%+v", s)
			}
			if status, _ := f.get(t, "/rand"); status != 200 {
				t.Fatalf("request after misuse: %d", status)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	f := start(t, Options{MaxBody: 1000})
	post := func(body io.Reader, size int64) (int, string) {
		req, _ := http.NewRequest("POST", f.url+"/echo", body)
		req.ContentLength = size
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := post(strings.NewReader(strings.Repeat("x", 999)), 999); status != 200 || body != "read 999 bytes, then unexpected EOF" {
		t.Errorf("within the limit: %d %q", status, body)
	}
	before := f.h.Stats().Requests
	if status, body := post(strings.NewReader(strings.Repeat("x", 1001)), 1001); status != 413 || errorCode(t, body) != "too_large" {
		t.Errorf("declared too large: %d %q", status, body)
	}
	if f.h.Stats().Requests != before {
		t.Error("a body declared too large reached the guest")
	}
	// Unknown length (chunked): refused before the guest runs.
	if status, body := post(io.MultiReader(strings.NewReader(strings.Repeat("x", 50))), -1); status != 411 || errorCode(t, body) != "length_required" {
		t.Errorf("chunked: %d %q", status, body)
	}
	if f.h.Stats().Requests != before {
		t.Error("a chunked body reached the guest")
	}
	// Large replies take the pending/take path (the test guest's buffer
	// is 1 KiB) and large responses stream out in chunks.
	if status, body := f.get(t, "/big?n=3000000"); status != 200 || len(body) != 3000000 || body[2999999] != byte('a'+2999999%26) {
		t.Errorf("big response: %d, %d bytes", status, len(body))
	}
	if status, body := f.get(t, "/kv?key=missing"); status != 200 || body != `"" storage: not found` {
		t.Errorf("kv miss: %d %q", status, body)
	}
	if status, body := f.get(t, "/noresponse"); status != 500 {
		t.Errorf("no response: %d %q", status, body)
	}
}

func TestScheduled(t *testing.T) {
	f := start(t, Options{ScheduledTimeout: 5 * time.Second})
	if err := f.h.RunScheduled(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.kv.values["scheduled"]; !ok {
		t.Fatal("scheduled work did not run")
	}
	g := start(t, Options{Config: handlers.Config{Version: "sched-fail"}})
	if err := g.h.RunScheduled(context.Background()); err == nil || !strings.Contains(err.Error(), "failed on purpose") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewRefusesOtherABIVersion(t *testing.T) {
	_, err := New(context.Background(), Options{Module: testGuest, CacheDir: cacheDir, Config: handlers.Config{Version: "wrong-abi"}})
	if err == nil || !strings.Contains(err.Error(), "ABI version") {
		t.Fatalf("err = %v", err)
	}
	_, err = New(context.Background(), Options{Module: []byte("\x00asm\x01\x00\x00\x00")})
	if err == nil || !strings.Contains(err.Error(), "does not export") {
		t.Fatalf("empty module: err = %v", err)
	}
}

func TestCloseWaitsForRunningRequests(t *testing.T) {
	f := start(t, Options{})
	done := make(chan int)
	go func() { s, _ := f.get(t, "/sleep?ms=300"); done <- s }()
	time.Sleep(100 * time.Millisecond)
	if err := f.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := <-done; s != 200 {
		t.Fatalf("in-flight request got %d", s)
	}
	if status, body := f.get(t, "/rand"); status != 503 || errorCode(t, body) != "shutting_down" {
		t.Fatalf("after close: %d %s", status, body)
	}
}

func TestCompilationCache(t *testing.T) {
	dir := t.TempDir()
	var compile [2]time.Duration
	for i := range compile {
		h, err := New(context.Background(), Options{Module: testGuest, CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		compile[i] = h.Stats().Compile
		h.Close(context.Background())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) == 0 {
		t.Fatal("nothing written to the cache directory")
	}
	t.Logf("compile: %v uncached, %v from the cache", compile[0], compile[1])
}

// BenchmarkCall measures one request through the host with the test guest
// (the floor under every request: head, response, export call, deadline
// watch) and the cost of one ABI call, from requests making 0 and 100
// clock.now calls.
func BenchmarkCall(b *testing.B) {
	f := start(b, Options{Pool: 1})
	serve := func(path string) {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			b.Fatalf("%s: %d", path, w.Code)
		}
	}
	var base time.Duration
	b.Run("request", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			serve("/ops?n=0")
		}
		base = time.Since(start) / time.Duration(b.N)
	})
	b.Run("abi-call", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			serve("/ops?n=100")
		}
		per := (time.Since(start)/time.Duration(b.N) - base) / 100
		b.ReportMetric(float64(per.Nanoseconds()), "ns/call")
	})
}
