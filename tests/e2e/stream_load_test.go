package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// streamClientsEnv makes the test binary a stream-client process
// (streamClientsMain) instead of running tests: TestThousandStreams holds
// its streams from another process so that its memory measurement sees
// the home's side alone.
const streamClientsEnv = "POMMY_E2E_STREAM_CLIENTS"

// streamClientsMain opens $POMMY_E2E_STREAM_N SSE streams to the home at
// $POMMY_E2E_STREAM_CLIENTS, on topics t/k/c/0..99, two at a time (the
// first step of each is an ordinary request under admission control),
// prints "ready N", reads the streams until its stdin closes, then prints
// "frames F" (the event frames received) and exits.
func streamClientsMain() int {
	addr := strings.TrimPrefix(os.Getenv(streamClientsEnv), "http://")
	n, _ := strconv.Atoi(os.Getenv("POMMY_E2E_STREAM_N"))
	var frames atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				for {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					fmt.Fprintf(c, "GET /__test/stream/t/k/c/%d HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", i%100, addr)
					br := bufio.NewReaderSize(c, 512)
					line, err := br.ReadString('\n')
					if err != nil {
						errs <- err
						return
					}
					if strings.HasPrefix(line, "HTTP/1.1 503") {
						c.Close() // shed: try again
						time.Sleep(10 * time.Millisecond)
						continue
					}
					if !strings.HasPrefix(line, "HTTP/1.1 200") {
						errs <- fmt.Errorf("stream %d: %q", i, line)
						return
					}
					go func() {
						for {
							l, err := br.ReadString('\n')
							if err != nil {
								return
							}
							if strings.HasPrefix(l, "id: ") {
								frames.Add(1)
							}
						}
					}()
					break
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Println("error", err)
		return 1
	default:
	}
	fmt.Println("ready", n)
	io.Copy(io.Discard, os.Stdin)
	fmt.Println("frames", frames.Load())
	return 0
}

// TestThousandStreams: a thousand held streams on a pool of two pin no
// instance: health checks and ordinary requests are served while they
// are held and while all of them are woken at once, and admission control
// sheds nothing. It measures the memory a held stream costs the home: how
// much the heap and stacks in use grow per stream from a thousand held
// streams to two thousand, less what the instances' own linear memory (in
// the Go heap) grew meanwhile, which the first steps of the streams cause
// but do not keep.
func TestThousandStreams(t *testing.T) {
	const n = 1000
	h := startHome(t, homeOptions{pool: 2})
	watch := h.openSSE(t, nil, "/__test/stream/t/k/c/7")
	h.waitHeld(t, 1)

	type clients struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Scanner
	}
	spawn := func() clients {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), streamClientsEnv+"="+h.url, "POMMY_E2E_STREAM_N="+strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		out := bufio.NewScanner(stdout)
		if !out.Scan() || out.Text() != "ready "+strconv.Itoa(n) {
			t.Fatalf("stream clients: %q %v", out.Text(), out.Err())
		}
		return clients{cmd, stdin, out}
	}
	first := spawn()
	h.waitHeld(t, n+1)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0, guest0 := runtime.NumGoroutine(), h.host.Stats().GuestMemory
	second := spawn()
	h.waitHeld(t, 2*n+1)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	g1, guest1 := runtime.NumGoroutine(), h.host.Stats().GuestMemory
	guestGrowth := guest1 - guest0
	perStream := (int64(m1.HeapInuse+m1.StackInuse) - int64(m0.HeapInuse+m0.StackInuse) - guestGrowth) / n
	t.Logf("memory per held stream: %d bytes of heap and stacks in use (%d of live heap); goroutines %d -> %d for %d more streams; instances' memory grew %d bytes meanwhile",
		perStream, (int64(m1.HeapAlloc)-int64(m0.HeapAlloc)-guestGrowth)/n, g0, g1, n, guestGrowth)
	if g1-g0 > 50 {
		t.Errorf("%d goroutines for %d held streams: the hub should hold none per stream", g1-g0, n)
	}
	// The live heap is what a stream keeps; in-use spans add the
	// fragmentation of a heap that also served the streams' first steps.
	if live := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc) - guestGrowth) / n; live > 4<<10 || perStream > 16<<10 {
		t.Errorf("%d bytes live, %d in use per held stream; the goal is a few KiB", live, perStream)
	}

	if st := h.host.Stats(); st.Busy != 0 {
		t.Errorf("%d instances busy with %d streams held and no request", st.Busy, 2*n)
	}
	if r := h.get(t, "/healthz"); r.status != 200 {
		t.Fatalf("healthz with %d streams held: %s", 2*n, r)
	}

	// Wake them all: 100 topics, 20 streams each (21 on t/k/c/7).
	before := h.host.Stats()
	last := h.appendEvents(t, "t/k/c/7", 1)
	for i := range 100 {
		if i != 7 {
			h.host.Realtime().Publish(context.Background(), "t/k/c/"+strconv.Itoa(i))
		}
	}
	// While the 2001 polls run: health checks and ordinary requests.
	served := 0
	for h.host.Stats().Streams.Polls-before.Streams.Polls < 2*n+1 {
		if r := h.get(t, "/healthz"); r.status != 200 {
			t.Fatalf("healthz during the wake-up: %s", r)
		}
		h.appendEvents(t, "t/other", 1)
		served++
	}
	consecutive(t, watch.until(t, last), last, last)
	after := h.host.Stats()
	t.Logf("%d healthz and %d appends served while %d polls ran", served, served, after.Streams.Polls-before.Streams.Polls)
	if after.Shed != 0 || after.ShedWaited != 0 || after.Streams.PollRetries != 0 {
		t.Errorf("admission control shed requests or polls: %+v", after)
	}
	// Every client on t/k/c/7 got the event (the others had none to get).
	for _, c := range []clients{first, second} {
		c.stdin.Close()
		if !c.out.Scan() || c.out.Text() != "frames 10" {
			t.Errorf("stream clients: %q, want 10 events received", c.out.Text())
		}
	}
}

// TestStreamLossUnderDrops is the loss test: clients that drop and
// resume (Last-Event-ID) at random during a burst of appends receive
// every event exactly once, in order. After the burst every client holds
// its stream and must get one last event through a wake-up alone: were
// a wake-up dropped, with nothing left to re-read it, that client would
// never see it and the test fails (streamLoss reports how each event
// arrived, so the wake-up path is known to have carried events).
func TestStreamLossUnderDrops(t *testing.T) {
	h := startHome(t, homeOptions{pool: 2, maxQueue: 64, queueWait: 5 * time.Second})
	r := streamLoss(t, h, lossOptions{clients: 20, writers: 2, appends: 100, holdMS: 50, topic: "t/loss/c/1", seed: uint64(time.Now().UnixNano())})
	t.Logf("%+v", r)
	if r.Lost != 0 || r.Duplicated != 0 || r.OutOfOrder != 0 {
		t.Errorf("lost %d, duplicated %d, out of order %d", r.Lost, r.Duplicated, r.OutOfOrder)
	}
	if r.Reconnects == 0 || r.ViaWakeup == 0 || h.host.Stats().Streams.Polls == 0 {
		t.Errorf("the test did not exercise what it tests: %+v", r)
	}
}

type lossOptions struct {
	clients, writers, appends int
	topic                     string
	seed                      uint64
	// holdMS makes each re-poll hold its instance this long after it has
	// read the log, so that wake-ups often arrive while a poll runs: the
	// case where a hub that dropped them would lose events.
	holdMS int
}

// lossResult counts, over all clients, what arrived.
type lossResult struct {
	Events     int64 // the topic's events at the end
	Received   int64 // event frames received, all clients
	Lost       int64 // events some client never received
	Duplicated int64 // events a client received twice
	OutOfOrder int64 // events received after a later one
	Reconnects int64
	ViaWakeup  int64 // events of the second burst, received on streams held since before it
	Seed       uint64
}

// streamLoss runs the loss scenario against h and counts; the
// bench can call it with larger numbers.
func streamLoss(t testing.TB, h *home, o lossOptions) lossResult {
	t.Helper()
	res := lossResult{Seed: o.seed}
	var received, dups, order, reconnects, viaWakeup atomic.Int64
	var burstDone atomic.Bool
	var wg sync.WaitGroup
	seen := make([]map[int64]int, o.clients)
	lastSeen := make([]int64, o.clients)
	// count records client i's receipt of seq: a second copy is a
	// duplicate, a seq not above the last one seen is out of order.
	count := func(i int, seq int64) {
		received.Add(1)
		if seen[i][seq]++; seen[i][seq] > 1 {
			dups.Add(1)
		}
		if seq <= lastSeen[i] {
			order.Add(1)
		} else {
			lastSeen[i] = seq
		}
	}
	settled := make([]chan *sseClient, o.clients)
	for i := range o.clients {
		seen[i] = map[int64]int{}
		settled[i] = make(chan *sseClient, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(o.seed, uint64(i)))
			for {
				c := h.openSSE(t, nil, "/__test/stream/"+o.topic+"?hold_ms="+strconv.Itoa(o.holdMS), "Last-Event-ID", strconv.FormatInt(lastSeen[i], 10))
				if c.resp.StatusCode != 200 {
					// Shed by admission control, as any request may be
					// under load: a client retries.
					c.close()
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
					continue
				}
				drop := rng.IntN(30) + 1
				for k := 0; ; k++ {
					if burstDone.Load() {
						settled[i] <- c
						return
					}
					f, ok := c.nextWithin(t, 20*time.Millisecond)
					if !ok {
						break // no frame for a while: drop anyway, at random
					}
					if f.event == "ping" {
						continue
					}
					if f.event != "test" {
						t.Errorf("client %d: %+v", i, f)
						return
					}
					count(i, f.seq(t))
					if k >= drop {
						break
					}
				}
				c.close()
				reconnects.Add(1)
				if rng.IntN(2) == 0 {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				}
			}
		}()
	}
	// A burst: writers append 1-3 events at a time.
	burst := func(appends int) {
		var writers sync.WaitGroup
		for w := range o.writers {
			writers.Add(1)
			go func() {
				defer writers.Done()
				rng := rand.New(rand.NewPCG(o.seed, uint64(1000+w+appends)))
				for range appends {
					path := "/__test/stream/" + o.topic + "?count=" + strconv.Itoa(rng.IntN(3)+1)
					for {
						r := h.do(t, "POST", path, nil)
						if r.status == 200 {
							break
						}
						if r.status != 503 {
							t.Errorf("append: %s", r)
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
		}
		writers.Wait()
	}
	burst(o.appends)
	burstDone.Store(true)
	wg.Wait()
	// Every client now holds a stream (its last connection): read it up
	// to the end of the burst, then one more event comes by wake-up only.
	clients := make([]*sseClient, o.clients)
	for i := range clients {
		clients[i] = <-settled[i]
	}
	read := func(i int, c *sseClient, to int64, phase string) {
		for lastSeen[i] < to {
			f, ok := c.nextWithin(t, hangGuard)
			if f.event == "ping" {
				continue
			}
			if !ok || f.event != "test" {
				t.Fatalf("client %d %s (last seen %d of %d): %+v, open %v (%v); hub %+v", i, phase, lastSeen[i], to, f, ok, c.err, h.host.Stats().Streams)
			}
			count(i, f.seq(t))
			if phase == "after the burst" {
				viaWakeup.Add(1)
			}
		}
	}
	// A second burst while every client holds its stream and reads
	// without dropping: all of it arrives by wake-ups alone, and every
	// client catches up.
	burst(o.appends / 2)
	end := h.streamStats(t, o.topic).Seq
	for i, c := range clients {
		read(i, c, end, "after the burst")
	}
	// Then the case a hub that dropped wake-ups would get wrong: one
	// append wakes every stream (none has more pages to read); once one
	// of their re-polls has read the log (and holds its instance for
	// holdMS), a last append. Its
	// wake-up reaches that stream while its poll runs, and nothing is
	// appended after it: the hub must poll that stream once more, or the
	// client never sees the last event (next() gives up after hangGuard).
	h.appendEvents(t, o.topic, 1)
	gets := h.streamStats(t, o.topic).Gets
	waitUntil(t, "a re-poll reading the log", func() bool { return h.streamStats(t, o.topic).Gets > gets })
	final := h.appendEvents(t, o.topic, 1)
	for i, c := range clients {
		read(i, c, final, "after the burst")
		c.close()
	}
	res.Events = final
	for i := range seen {
		for seq := int64(1); seq <= final; seq++ {
			if seen[i][seq] == 0 {
				res.Lost++
			}
		}
	}
	res.Received, res.Duplicated, res.OutOfOrder = received.Load(), dups.Load(), order.Load()
	res.Reconnects, res.ViaWakeup = reconnects.Load(), viaWakeup.Load()
	return res
}

// nextWithin is next, giving up (ok false, stream still open) after d.
func (c *sseClient) nextWithin(t testing.TB, d time.Duration) (sseFrame, bool) {
	t.Helper()
	select {
	case f, ok := <-c.frames:
		return f, ok
	case <-time.After(d):
		return sseFrame{}, false
	}
}
