//go:build !windows

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pommy.ai/edge/handlers/audit"
	"pommy.ai/edge/handlers/conversations"
	"pommy.ai/edge/storage/envelope"
	"pommy.ai/edge/tests/streamclient"
	"pommy.ai/edge/wasm/host"
)

// The chat core's realtime figures (issue 7, "Measure"): delivery latency
// from a visitor's message to the inbox stream with a thousand
// conversations streaming at once, the memory a held stream costs the
// host, messages per second through the host against the native handlers,
// the loss test, and the audit record's cost per message.

var (
	chatStreams = flag.Int("chat-streams", 1000, "conversation streams the chat section holds open on the local host")
	chatOrgs    = flag.Int("chat-orgs", 8, "organizations the chat section's conversations belong to (each also holds its inbox stream)")
	chatMsgs    = flag.Int("chat-msgs", 1000, "messages of the delivery-latency run")
	chatRate    = flag.Float64("chat-rate", 100, "messages per second of the delivery-latency run (sent on a schedule, not back to back)")
	lossConvs   = flag.Int("loss-convs", 5, "conversations of the loss test")
	lossClients = flag.Int("loss-clients", 40, "clients of the loss test (spread over its conversations)")
	lossMsgs    = flag.Int("loss-msgs", 1000, "messages of the loss test's burst")
	edgeStreams = flag.Int("workerd-streams", 50, "conversation streams of the delivery-latency run in workerd")
	edgeMsgs    = flag.Int("workerd-msgs", 100, "messages of the delivery-latency run in workerd (10 a second)")
)

// visitorBody is a visitor's message as an integration posts it: an API
// key writing as the conversation's contact.
var visitorBody = []byte(`{"text":"` + messageText + `","author_type":"visitor"}`)

func visitorMessage(base, key, conv string) request {
	return request{method: "POST", url: base + "/v1/conversations/" + conv + "/messages", body: visitorBody,
		header: append(bearer(key), "Content-Type", "application/json", "Idempotency-Key", randText()), want: 201}
}

func randText() string {
	var b [12]byte
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz234567"[rand.IntN(32)]
	}
	return string(b[:])
}

// chatSpec is what the stream clients need: where, whose keys, which
// conversations, and the latency run's size.
type chatSpec struct {
	Base string
	Orgs []chatOrg
	Msgs int
	Rate float64
}

type chatOrg struct {
	Key   string
	Convs []string
}

func specOf(f *fixture, msgs int, rate float64) chatSpec {
	s := chatSpec{Base: f.base, Msgs: msgs, Rate: rate}
	for _, o := range f.orgs {
		s.Orgs = append(s.Orgs, chatOrg{Key: o.key, Convs: o.convs})
	}
	return s
}

// watcher holds a conversation stream on every conversation of a spec and
// each organization's inbox stream, and notes when each message arrives
// on each.
type watcher struct {
	c       *http.Client
	mu      sync.Mutex
	inbox   map[string]time.Time // message id: first arrival on its inbox stream
	conv    map[string]time.Time // message id: first arrival on its conversation's stream
	frames  atomic.Int64         // event frames received, all streams
	streams []*streamclient.Stream
	closing atomic.Bool
	failed  atomic.Int64 // streams that ended or errored while held
	errMu   sync.Mutex
	firstEr string
}

func newWatcher() *watcher {
	return &watcher{
		c:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}},
		inbox: map[string]time.Time{}, conv: map[string]time.Time{},
	}
}

func (w *watcher) fail(err error) {
	w.failed.Add(1)
	w.errMu.Lock()
	if w.firstEr == "" {
		w.firstEr = err.Error()
	}
	w.errMu.Unlock()
}

// open holds every stream of the spec, a few opened at a time (each first
// answer is an ordinary request to the home); a 503 (admission control)
// is retried.
func (w *watcher) open(ctx context.Context, s chatSpec) error {
	type job struct{ url, key string }
	var jobs []job
	for _, o := range s.Orgs {
		jobs = append(jobs, job{s.Base + "/v1/inbox/events/stream", o.Key})
		for _, cv := range o.Convs {
			jobs = append(jobs, job{s.Base + "/v1/conversations/" + cv + "/events/stream", o.Key})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				j := jobs[i]
				for attempt := 0; ; attempt++ {
					st, err := streamclient.Open(ctx, w.c, j.url, "", bearer(j.key)...)
					if err != nil && strings.Contains(err.Error(), ": 503 ") && attempt < 100 {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					w.mu.Lock()
					w.streams = append(w.streams, st)
					w.mu.Unlock()
					go w.read(st, strings.HasSuffix(j.url, "/v1/inbox/events/stream"))
					break
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (w *watcher) held() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.streams)
}

// read notes the arrival of each message on a stream.
func (w *watcher) read(st *streamclient.Stream, inbox bool) {
	for {
		e, err := st.NextData()
		if err != nil {
			if !w.closing.Load() {
				w.fail(fmt.Errorf("a held stream ended: %w", err))
			}
			return
		}
		at := time.Now()
		w.frames.Add(1)
		switch e.Type {
		case "error":
			w.fail(fmt.Errorf("a held stream's poll failed: %s", e.Data))
			return
		case conversations.EvMessageCreated:
		default:
			continue
		}
		var ev struct {
			Data struct {
				ID        string `json:"id"`
				MessageID string `json:"message_id"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(e.Data), &ev) != nil {
			w.fail(fmt.Errorf("an unreadable event: %.200s", e.Data))
			continue
		}
		w.mu.Lock()
		if inbox {
			if _, ok := w.inbox[ev.Data.MessageID]; !ok {
				w.inbox[ev.Data.MessageID] = at
			}
		} else if _, ok := w.conv[ev.Data.ID]; !ok {
			w.conv[ev.Data.ID] = at
		}
		w.mu.Unlock()
	}
}

func (w *watcher) close() {
	w.closing.Store(true)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.streams {
		s.Close()
	}
}

// latencyResult is a delivery-latency run.
type latencyResult struct {
	Sent        int
	Latencies   []time.Duration // send start to the inbox stream's frame, of each message
	ConvLat     []time.Duration // send start to its conversation stream's frame
	SendLat     []time.Duration // the send request itself
	MissedInbox int             // messages whose inbox frame never came
	MissedConv  int             // messages whose conversation frame never came
	Errors      int             // sends that failed
	FirstErr    string
	StreamFails int64 // held streams that ended or failed meanwhile
	StreamErr   string
	Elapsed     time.Duration
}

// latency sends s.Msgs visitor messages into random conversations, on a
// schedule of s.Rate a second (each send in its own goroutine, so that a
// slow answer does not delay the next), and measures each message's way
// from the start of its send to its frame on the organization's inbox
// stream (and on its conversation's stream).
func (w *watcher) latency(ctx context.Context, s chatSpec) latencyResult {
	var res latencyResult
	var mu sync.Mutex
	started := map[string]time.Time{}
	interval := time.Duration(float64(time.Second) / s.Rate)
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range s.Msgs {
		time.Sleep(time.Until(begin.Add(time.Duration(i) * interval)))
		o := s.Orgs[rand.IntN(len(s.Orgs))]
		cv := o.Convs[rand.IntN(len(o.Convs))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			req := visitorMessage(s.Base, o.Key, cv)
			t0 := time.Now()
			status, body, err := req.do(w.c)
			d := time.Since(t0)
			var m struct{ ID string }
			if err == nil && (status != 201 || json.Unmarshal(body, &m) != nil || m.ID == "") {
				err = fmt.Errorf("status %d: %.200s", status, body)
			}
			mu.Lock()
			defer mu.Unlock()
			res.Sent++
			if err != nil {
				res.Errors++
				if res.FirstErr == "" {
					res.FirstErr = err.Error()
				}
				return
			}
			started[m.ID] = t0
			res.SendLat = append(res.SendLat, d)
		}()
	}
	wg.Wait()
	// Wait for the frames (a lost one shows as missing after the wait).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		done := true
		for id := range started {
			_, a := w.inbox[id]
			_, b := w.conv[id]
			if !a || !b {
				done = false
				break
			}
		}
		w.mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.Elapsed = time.Since(begin)
	w.mu.Lock()
	for id, t0 := range started {
		if at, ok := w.inbox[id]; ok {
			res.Latencies = append(res.Latencies, at.Sub(t0))
		} else {
			res.MissedInbox++
		}
		if at, ok := w.conv[id]; ok {
			res.ConvLat = append(res.ConvLat, at.Sub(t0))
		} else {
			res.MissedConv++
		}
	}
	w.mu.Unlock()
	for _, l := range [][]time.Duration{res.Latencies, res.ConvLat, res.SendLat} {
		slices.Sort(l)
	}
	res.StreamFails = w.failed.Load()
	w.errMu.Lock()
	res.StreamErr = w.firstEr
	w.errMu.Unlock()
	return res
}

// quantile is the q-quantile (0..1, nearest rank) of sorted durations.
func quantile(l []time.Duration, q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(max(int(q*float64(len(l))+0.5)-1, 0), len(l)-1)]
}

// ---- the stream clients' process

// chatClientsEnv makes the bench binary a stream-client process
// (chatClientsMain) instead of a bench: the host's memory per stream is
// measured in the bench process, so the clients' side of a thousand
// connections must live elsewhere.
const chatClientsEnv = "POMMY_BENCH_CHAT_CLIENTS"

// chatClientsMain holds the streams of the spec in the file named by
// $POMMY_BENCH_CHAT_CLIENTS, prints "ready N", then answers commands read
// from stdin, one a line: "latency" runs the latency run and prints
// "latency <JSON>"; "frames" prints "frames F failed E". It exits when
// stdin closes.
func chatClientsMain(path string) int {
	b, err := os.ReadFile(path)
	var s chatSpec
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx := context.Background()
	w := newWatcher()
	if err := w.open(ctx, s); err != nil {
		fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Println("ready", w.held())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "latency":
			out, _ := json.Marshal(w.latency(ctx, s))
			fmt.Println("latency", string(out))
		case "frames":
			fmt.Println("frames", w.frames.Load(), "failed", w.failed.Load())
		}
	}
	w.close()
	return 0
}

// chatClients is the stream-client process, seen from the bench.
type chatClients struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func (x *b) startChatClients(s chatSpec) (*chatClients, int, error) {
	path := filepath.Join(x.tmp, "chat-spec.json")
	b, _ := json.Marshal(s)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), chatClientsEnv+"="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	c := &chatClients{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	c.out.Buffer(make([]byte, 1<<20), 64<<20)
	line, err := c.line("ready")
	if err != nil {
		c.close()
		return nil, 0, err
	}
	n, _ := strconv.Atoi(line)
	return c, n, nil
}

// line reads the next line, which must start with prefix, and returns the
// rest.
func (c *chatClients) line(prefix string) (string, error) {
	if !c.out.Scan() {
		return "", fmt.Errorf("stream clients: no %q line: %v", prefix, c.out.Err())
	}
	rest, ok := strings.CutPrefix(c.out.Text(), prefix+" ")
	if !ok {
		return "", fmt.Errorf("stream clients: %q, want %q", c.out.Text(), prefix)
	}
	return rest, nil
}

func (c *chatClients) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		return "", err
	}
	return c.line(cmd)
}

func (c *chatClients) close() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// ---- the section

// chat measures the chat core on the local host (and, natively, the
// audit record's cost per message).
func (x *b) chat() error {
	ctx := context.Background()
	perOrg := max(*chatStreams/max(*chatOrgs, 1), 1)
	streams := perOrg * *chatOrgs

	progress("chat: native baseline: %d organizations of %d conversations, messages sent back to back (%d clients, %s)...", *chatOrgs, perOrg, *conc, *duration)
	native, err := x.startNative()
	if err != nil {
		return err
	}
	nf, err := newFixtureN(ctx, x.client, native.url, *chatOrgs, perOrg)
	if err != nil {
		native.close()
		return fmt.Errorf("native: %w", err)
	}
	natSend := loadEach(x.client, nf.visitorMessages(), *conc, *warmup, *duration)
	native.close()
	x.rep.measured("chat: native handlers, POST messages", natSend)

	progress("chat: a pooled host with %d organizations of %d conversations...", *chatOrgs, perOrg)
	h, err := x.startHost("chat", host.Options{})
	if err != nil {
		return err
	}
	defer h.close()
	f, err := newFixtureN(ctx, x.client, h.url, *chatOrgs, perOrg)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	progress("chat: messages sent back to back through the host, no streams held (%d clients, %s)...", *conc, *duration)
	// This also starts the pool's instances, so that the memory measured
	// next compares like with like.
	hostBare := loadEach(x.client, f.visitorMessages(), *conc, *warmup, *duration)
	x.rep.measured("chat: host, pooled, POST messages without streams", hostBare)
	// Memory before and after the streams, as the hub's e2e test measures
	// it: heap and stacks in use after a GC, less what the instances' own
	// linear memory (part of the Go heap) grew meanwhile, which the
	// streams' first steps cause but do not keep.
	settle := func() (heap, live, rss int64, gor int, st host.Stats) {
		runtime.GC()
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		rss, _ = memory()
		return int64(m.HeapInuse + m.StackInuse), int64(m.HeapAlloc), rss, runtime.NumGoroutine(), h.host.Stats()
	}
	heap0, live0, rss0, gor0, st0 := settle()
	progress("chat: opening %d conversation streams and %d inbox streams from a client process...", streams, *chatOrgs)
	cl, held, err := x.startChatClients(specOf(f, *chatMsgs, *chatRate))
	if err != nil {
		return err
	}
	defer cl.close()
	want := streams + *chatOrgs
	if held != want {
		return fmt.Errorf("the stream clients hold %d streams, want %d", held, want)
	}
	for end := time.Now().Add(time.Minute); h.host.Stats().Streams.Held < int64(want); {
		if time.Now().After(end) {
			return fmt.Errorf("the host holds %d streams, want %d", h.host.Stats().Streams.Held, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	heap1, live1, rss1, gor1, st1 := settle()
	guestGrowth := st1.GuestMemory - st0.GuestMemory
	perStream := (heap1 - heap0 - guestGrowth) / int64(want)
	perLive := (live1 - live0 - guestGrowth) / int64(want)
	perRSS := (rss1 - rss0) * 1024 / int64(want)
	progress("  %d streams held: %s live heap, %s of heap and stacks in use per stream (RSS %s), goroutines %d -> %d, instances %d -> %d (busy %d)",
		want, kib(perLive), kib(perStream), kib(perRSS), gor0, gor1, st0.InstancesRunning, st1.InstancesRunning, st1.Busy)

	progress("chat: delivery latency, %d visitor messages at %.0f/s into random conversations...", *chatMsgs, *chatRate)
	line, err := cl.ask("latency")
	if err != nil {
		return err
	}
	var lat latencyResult
	if err := json.Unmarshal([]byte(line), &lat); err != nil {
		return fmt.Errorf("stream clients' latency: %w", err)
	}
	progress("  inbox p50 %s p99 %s; conversation stream p50 %s p99 %s; send p50 %s; missed %d inbox, %d conversation frames; %d sends failed",
		ms(quantile(lat.Latencies, .5)), ms(quantile(lat.Latencies, .99)), ms(quantile(lat.ConvLat, .5)), ms(quantile(lat.ConvLat, .99)),
		ms(quantile(lat.SendLat, .5)), lat.MissedInbox, lat.MissedConv, lat.Errors)

	progress("chat: messages sent back to back through the host while the streams are held (%d clients, %s)...", *conc, *duration)
	polls0 := h.host.Stats().Streams.Polls
	hostSend := loadEach(x.client, f.visitorMessages(), *conc, *warmup, *duration)
	st2 := h.host.Stats()
	x.rep.measured(fmt.Sprintf("chat: host, pooled, POST messages with %d streams held", want), hostSend)
	frames, err := cl.ask("frames")
	if err != nil {
		return err
	}
	cl.close()
	progress("  host %s msgs/s with the streams held (%d polls), native %s msgs/s; the clients: %s",
		rate(hostSend.rps()), st2.Streams.Polls-polls0, rate(natSend.rps()), frames)

	progress("chat: the loss test: %d clients on %d conversations drop and resume at random during a burst of %d messages...", *lossClients, *lossConvs, *lossMsgs)
	lf, err := newFixtureN(ctx, x.client, h.url, 1, *lossConvs)
	if err != nil {
		return fmt.Errorf("loss test: %w", err)
	}
	loss := lossTest(ctx, x.client, h.url, lf.orgs[0].key, lf.orgs[0].convs, *lossClients, *lossMsgs)
	progress("  %+v", loss)

	progress("chat: the audit record's cost per message, natively (%d clients, 2 rounds of %s each way)...", *conc, *duration)
	without, with, err := x.auditOverhead(ctx)
	if err != nil {
		return err
	}
	progress("  %s msgs/s without an audit record per message, %s with", rate(without), rate(with))

	x.chatReport(streams, perLive, perStream, perRSS, gor0, gor1, st0, st1, lat, natSend, hostBare, hostSend, st2.Streams.Polls-polls0, loss, without, with)
	return nil
}

func kib(b int64) string { return strconv.FormatFloat(float64(b)/1024, 'f', 1, 64) + " KiB" }

// visitorMessages sends visitors' messages, taking the organizations and
// their conversations in turn.
func (f *fixture) visitorMessages() func() request {
	return func() request { o, cv := f.turn(); return visitorMessage(f.base, o.key, cv) }
}

// ---- the loss test

// lossResult counts what the loss test's clients received.
type lossResult struct {
	Clients, Messages        int
	Received                 int64 // message frames received, all clients
	Lost, Duplicated, Order  int64 // messages a client never got, got twice, got after a later one
	Reconnects               int64
	Retries                  int64 // sends shed (503) and retried with their key
	SendErrors, StreamErrors int
	FirstErr                 string
}

// lossTest: clients on a few conversations drop their streams and resume
// with Last-Event-ID at random during a burst of messages; each must
// receive every message of its conversation exactly once, in order. After
// the burst the clients stop dropping and read until they have the last
// message (or 30 s pass: what is missing then is lost).
func lossTest(ctx context.Context, c *http.Client, base, key string, convs []string, clients, msgs int) lossResult {
	res := lossResult{Clients: clients, Messages: msgs}
	var mu sync.Mutex
	expected := map[string]map[int64]bool{} // conversation: message seqs sent
	final := map[string]int64{}
	for _, cv := range convs {
		expected[cv] = map[int64]bool{}
	}
	note := func(err error, stream bool) {
		mu.Lock()
		defer mu.Unlock()
		if stream {
			res.StreamErrors++
		} else {
			res.SendErrors++
		}
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
	}
	var burstDone atomic.Bool
	finalReady := make(chan struct{})
	sc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}}
	var reconnects, received, dups, order, lost atomic.Int64
	var cw sync.WaitGroup
	for i := range clients {
		cv := convs[i%len(convs)]
		cw.Add(1)
		go func() {
			defer cw.Done()
			seen := map[int64]int{}
			var last string
			var maxSeq int64
			var deadline time.Time
			caughtUp := func() bool {
				select {
				case <-finalReady:
				default:
					return false
				}
				mu.Lock()
				defer mu.Unlock()
				return maxSeq >= final[cv]
			}
			for !caughtUp() {
				if burstDone.Load() && deadline.IsZero() {
					deadline = time.Now().Add(30 * time.Second)
				}
				if !deadline.IsZero() && time.Now().After(deadline) {
					break // what is missing now is lost
				}
				st, err := streamclient.Open(ctx, sc, base+"/v1/conversations/"+cv+"/events/stream", last, bearer(key)...)
				if err != nil {
					if strings.Contains(err.Error(), ": 503 ") {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					note(err, true)
					break
				}
				// During the burst the client drops at a random moment;
				// after it, it reads on until it has caught up or its
				// time is up.
				var drop *time.Timer
				if deadline.IsZero() {
					drop = time.AfterFunc(time.Duration(50+rand.IntN(450))*time.Millisecond, st.Close)
				} else {
					drop = time.AfterFunc(time.Until(deadline), st.Close)
				}
				for {
					e, err := st.NextData()
					if err != nil {
						break
					}
					if e.Type == "error" {
						note(fmt.Errorf("event: error: %s", e.Data), true)
						break
					}
					last = e.ID
					if e.Type != conversations.EvMessageCreated {
						continue
					}
					seq, _ := strconv.ParseInt(e.ID, 10, 64)
					received.Add(1)
					seen[seq]++
					if seen[seq] > 1 {
						dups.Add(1)
					} else if seq < maxSeq {
						order.Add(1)
					}
					maxSeq = max(maxSeq, seq)
					if caughtUp() {
						break
					}
				}
				drop.Stop()
				st.Close()
				reconnects.Add(1)
			}
			<-finalReady
			mu.Lock()
			for seq := range expected[cv] {
				if seen[seq] == 0 {
					lost.Add(1)
				}
			}
			mu.Unlock()
		}()
	}
	// The burst: four writers, each message into a random conversation.
	var ww sync.WaitGroup
	var sent, retries atomic.Int64
	for range 4 {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for sent.Add(1) <= int64(msgs) {
				cv := convs[rand.IntN(len(convs))]
				// A send shed by admission control (503 before the guest
				// ran) is retried with the same Idempotency-Key, as a
				// client does: it wrote nothing, and a retry of one that
				// did would return the first message.
				req := visitorMessage(base, key, cv)
				status, body, err := req.do(c)
				for tries := 0; err == nil && status == 503 && tries < 200; tries++ {
					retries.Add(1)
					time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
					status, body, err = req.do(c)
				}
				var m struct{ Seq int64 }
				if err == nil && (status != 201 || json.Unmarshal(body, &m) != nil || m.Seq == 0) {
					err = fmt.Errorf("status %d: %.200s", status, body)
				}
				if err != nil {
					note(err, false)
					continue
				}
				mu.Lock()
				expected[cv][m.Seq] = true
				final[cv] = max(final[cv], m.Seq)
				mu.Unlock()
			}
		}()
	}
	ww.Wait()
	burstDone.Store(true)
	close(finalReady)
	// A client reading when the burst ended holds its stream: wake it
	// with nothing (it stops once it has the last message); the others
	// reconnect without dropping again.
	cw.Wait()
	res.Received, res.Duplicated, res.Order, res.Lost, res.Reconnects = received.Load(), dups.Load(), order.Load(), lost.Load(), reconnects.Load()
	res.Retries = retries.Load()
	return res
}

// ---- the audit record's cost

// auditOverhead sends messages natively (conversations.Store on the local
// SQLite, several conversations at once) without and with one audit record
// per message, in rounds ABBA, and returns the messages per second of each
// (BenchmarkSend's measurement, in the same run as the rest).
func (x *b) auditOverhead(ctx context.Context) (without, with float64, err error) {
	p, err := x.openPlatform("audit-overhead")
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	const tenant = "t_bench"
	if _, err := p.SQL.Exec(ctx, `INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)`, tenant, "Bench", 0); err != nil {
		return 0, 0, err
	}
	if err := envelope.New(p.Platform).Ensure(ctx, tenant); err != nil {
		return 0, 0, err
	}
	st := conversations.NewStore(p.Platform, nil, tenant)
	ct, err := st.CreateContact(ctx, conversations.ContactInput{})
	if err != nil {
		return 0, 0, err
	}
	actor := conversations.Actor{Type: "api_key", ID: "key_bench"}
	convs := make([]string, 8)
	for i := range convs {
		c, _, _, err := st.CreateConversation(ctx, actor, conversations.CreateInput{ContactID: ct.ID}, "")
		if err != nil {
			return 0, 0, err
		}
		convs[i] = c.ID
	}
	log := audit.New(p.SQL, p.Clock).Sealed(p.Keys)
	var n atomic.Int64
	round := func(withAudit bool) (int64, time.Duration, error) {
		var sent atomic.Int64
		var firstErr atomic.Value
		end := time.Now().Add(*duration)
		start := time.Now()
		var wg sync.WaitGroup
		for range *conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					i := n.Add(1)
					conv := convs[int(i)%len(convs)]
					s := conversations.NewStore(p.Platform, nil, tenant)
					if _, _, err := s.Send(ctx, actor, conv, conversations.SendInput{Text: messageText}, "k"+strconv.FormatInt(i, 10)); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					if withAudit {
						if err := log.Record(ctx, audit.Event{TenantID: tenant, ActorType: audit.ActorAPIKey, ActorID: actor.ID,
							Action: "message.created", Target: "conversation:" + conv}); err != nil {
							firstErr.CompareAndSwap(nil, err)
							return
						}
					}
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
		if e, _ := firstErr.Load().(error); e != nil {
			return 0, 0, e
		}
		return sent.Load(), time.Since(start), nil
	}
	var nW, nA int64
	var dW, dA time.Duration
	for _, a := range []bool{false, true, true, false} {
		k, d, err := round(a)
		if err != nil {
			return 0, 0, fmt.Errorf("sending natively (audit %v): %w", a, err)
		}
		if a {
			nA, dA = nA+k, dA+d
		} else {
			nW, dW = nW+k, dW+d
		}
	}
	return float64(nW) / dW.Seconds(), float64(nA) / dA.Seconds(), nil
}

// ---- the report

func (x *b) chatReport(streams int, perLive, perStream, perRSS int64, gor0, gor1 int, st0, st1 host.Stats, lat latencyResult,
	natSend, hostBare, hostSend result, polls int64, loss lossResult, without, with float64) {
	x.rep.section("Chat core: delivery, held streams, messages per second, loss, audit",
		fmt.Sprintf("A pooled host (default pool) on a fresh data directory with %d organizations of %d conversations each. "+
			"A separate client process (the bench binary again, so that the host's memory is measured alone) holds an SSE stream on every "+
			"conversation (`GET /v1/conversations/{id}/events/stream`) and each organization's inbox stream (`GET /v1/inbox/events/stream`), "+
			"all with the organizations' API keys: %d streams held by the host's hub.",
			*chatOrgs, streams / *chatOrgs, streams+*chatOrgs))
	ok := lat.Errors == 0 && lat.MissedInbox == 0 && lat.MissedConv == 0 && lat.StreamFails == 0
	if !ok {
		x.rep.fail(fmt.Sprintf("the delivery-latency run: %d of %d sends failed (first: `%s`), %d inbox and %d conversation frames never came, "+
			"%d held streams ended (first: `%s`)", lat.Errors, lat.Sent, lat.FirstErr, lat.MissedInbox, lat.MissedConv, lat.StreamFails, lat.StreamErr))
	}
	p99 := quantile(lat.Latencies, .99)
	x.rep.para("**Delivery latency, visitor → inbox stream.** The client process sends %d visitors' messages (`POST .../messages`, an API key "+
		"writing as the contact, `author_type: visitor`, a fresh `Idempotency-Key` each) into random conversations on a schedule of %.0f a second, "+
		"each in its own goroutine; a message's latency runs from the start of its send to its `message.created` frame on its organization's "+
		"inbox stream. The conversation's own stream must get it too. The run took %s.", lat.Sent, *chatRate, lat.Elapsed.Round(time.Millisecond))
	x.rep.table([]string{"way", "messages", "p50", "p99", "max", "never arrived"}, [][]string{
		{"send → inbox stream frame", strconv.Itoa(len(lat.Latencies)), ms(quantile(lat.Latencies, .5)), ms(p99), ms(quantile(lat.Latencies, 1)), strconv.Itoa(lat.MissedInbox)},
		{"send → conversation stream frame", strconv.Itoa(len(lat.ConvLat)), ms(quantile(lat.ConvLat, .5)), ms(quantile(lat.ConvLat, .99)), ms(quantile(lat.ConvLat, 1)), strconv.Itoa(lat.MissedConv)},
		{"the send request alone (201)", strconv.Itoa(len(lat.SendLat)), ms(quantile(lat.SendLat, .5)), ms(quantile(lat.SendLat, .99)), ms(quantile(lat.SendLat, 1)), "–"},
	})
	x.rep.check(fmt.Sprintf("delivery latency visitor → inbox stream, %d streams held, local host: p50 (p99)", streams+*chatOrgs),
		ms(quantile(lat.Latencies, .5))+" ("+ms(p99)+")", "p99 ≤ 100 ms", metIfOK(ok, p99 <= 100*time.Millisecond))

	pool := int64(max(runtime.GOMAXPROCS(0), 2)) // the host's default pool
	fewKiB := perLive <= 4<<10 && st1.InstancesRunning <= pool && st1.Busy == 0
	x.rep.para("**Memory per held stream.** The bench process runs the host (the clients are elsewhere); after a GC, before and after the %d "+
		"streams were opened, less what the instances' linear memory grew meanwhile (%s), divided by the streams: **%s of live heap per stream** "+
		"(`HeapAlloc`: what a stream keeps), %s of heap and stacks in use (spans, with the fragmentation the streams' first steps leave), "+
		"VmRSS %s. Goroutines went from %d to %d. No guest instance is held per stream: instances alive "+
		"%d before, %d with every stream held (the pool's size: %d), busy %d — the pool stays as configured; the hub holds the connections "+
		"and calls the guest only to poll.", streams+*chatOrgs, kib(st1.GuestMemory-st0.GuestMemory), kib(perLive), kib(perStream), kib(perRSS), gor0, gor1,
		st0.InstancesRunning, st1.InstancesRunning, pool, st1.Busy)
	x.rep.check("memory per held stream (host): live heap (in use, RSS)", kib(perLive)+" ("+kib(perStream)+", "+kib(perRSS)+")", "a few KiB; no instance per stream", met(fewKiB))

	ratio := hostSend.rps() / natSend.rps()
	x.rep.para("**Messages per second.** %d clients send visitors' messages back to back for %s (after %s of warm-up) into the organizations' "+
		"conversations in turn: through the native handlers (no realtime, so no polls) on a fixture of the same shape, through the pooled "+
		"host before the streams were opened, and through it while all the streams above are held (every message wakes its conversation's "+
		"stream and its inbox stream: %d re-polls through the guest in all, wake-ups that arrive during a poll coalesced into one more).",
		*conc, *duration, *warmup, polls)
	x.rep.table([]string{"home", "messages/s", "p50", "p99", "vs native", "errors"}, [][]string{
		{"native handlers (baseline, no streams)", rate(natSend.rps()), ms(natSend.pct(50)), ms(natSend.pct(99)), "1 (baseline)", strconv.Itoa(natSend.errors)},
		{"host, pooled, no streams held", rate(hostBare.rps()), ms(hostBare.pct(50)), ms(hostBare.pct(99)), pct(hostBare.rps() / natSend.rps()), strconv.Itoa(hostBare.errors)},
		{fmt.Sprintf("host, pooled, %d streams held", streams+*chatOrgs), rate(hostSend.rps()), ms(hostSend.pct(50)), ms(hostSend.pct(99)), pct(ratio), strconv.Itoa(hostSend.errors)},
	})
	x.rep.check(fmt.Sprintf("messages/s through the host (%d streams held) vs native", streams+*chatOrgs), rate(hostSend.rps())+" ("+pct(ratio)+")", "–",
		strings.Replace(metIf(true, natSend, hostBare, hostSend), "yes", "–", 1))

	lossOK := loss.Lost == 0 && loss.Duplicated == 0 && loss.Order == 0 && loss.SendErrors == 0 && loss.StreamErrors == 0
	if !lossOK {
		x.rep.fail(fmt.Sprintf("the loss test: %d lost, %d duplicated, %d out of order, %d sends and %d streams failed (first: `%s`)",
			loss.Lost, loss.Duplicated, loss.Order, loss.SendErrors, loss.StreamErrors, loss.FirstErr))
	}
	x.rep.para("**Loss test.** %d clients hold streams on %d conversations (the same host); four writers send a burst of %d visitors' messages "+
		"into them at random, as fast as the host takes them (a send shed with 503 is retried with its `Idempotency-Key`: %d retries). Meanwhile each client drops its connection after a random 50–500 ms and resumes at "+
		"once with `Last-Event-ID` (%d reconnections in all). After the burst the clients read on until they have their conversation's last "+
		"message. Every client must have received every message of its conversation exactly once, in order.",
		loss.Clients, *lossConvs, loss.Messages, loss.Retries, loss.Reconnects)
	x.rep.table([]string{"message frames received", "lost", "duplicated", "out of order", "failed sends", "failed streams"}, [][]string{{
		thousands(loss.Received), strconv.FormatInt(loss.Lost, 10), strconv.FormatInt(loss.Duplicated, 10), strconv.FormatInt(loss.Order, 10),
		strconv.Itoa(loss.SendErrors), strconv.Itoa(loss.StreamErrors)}})
	x.rep.check("loss test: lost, duplicated (out of order)", fmt.Sprintf("%d, %d (%d)", loss.Lost, loss.Duplicated, loss.Order), "0, 0 (0)", met(lossOK))

	per := (1/with - 1/without) * 1e6
	x.rep.para("**The audit record's cost per message.** Sends are recorded in the conversation's event log with their actor, not in the audit "+
		"log (docs/decisions.md, \"Chat traffic and the audit log\"). What an audit record per message would cost, natively "+
		"(`conversations.Store.Send` on the local SQLite, %d goroutines over 8 conversations, rounds without/with/with/without of %s): "+
		"%s messages/s without, %s with one audit record each: **%.0f µs more per message** (%s of the rate), because every record takes the "+
		"tenant's audit chain head.", *conc, *duration, rate(without), rate(with), per, pct(1-with/without))
	x.rep.check("audit record per message, natively: messages/s without → with", rate(without)+" → "+rate(with), "–", "–")
}

// metIfOK is met(target) when the run measured what it meant to.
func metIfOK(ok, target bool) string {
	if !ok {
		return "**not measured: requests or frames failed**"
	}
	return met(target)
}

// ---- workerd

// workerdChat measures the delivery latency through the edge worker in
// wrangler dev (the Durable Objects hold the streams): a smaller run, one
// organization with *edgeStreams conversation streams and its inbox
// stream, *edgeMsgs messages at 10 a second.
func (x *b) workerdChat(ctx context.Context, base string) {
	x.rep.section("Chat core in workerd (wrangler dev)",
		fmt.Sprintf("The worker as shipped (`build/app.wasm`) in `wrangler dev`; the RealtimeTopic Durable Objects hold the streams. One organization "+
			"with %d conversations: this process holds an SSE stream on each and on the inbox, and sends %d visitors' messages into random "+
			"conversations at 10 a second; latency as for the local host (send start to the inbox stream's frame). `wrangler dev` adds a local "+
			"proxy, so these are local-development figures.", *edgeStreams, *edgeMsgs))
	c := newClient(4)
	f, err := newFixtureN(ctx, c, base, 1, *edgeStreams)
	if err != nil {
		x.rep.para("Not measured: %v", err)
		x.rep.check("delivery latency in workerd, p50 (p99)", "–", "–", "not measured")
		return
	}
	w := newWatcher()
	defer w.close()
	s := specOf(f, *edgeMsgs, 10)
	if err := w.open(ctx, s); err != nil {
		x.rep.para("Not measured: opening the streams: %v", err)
		x.rep.check("delivery latency in workerd, p50 (p99)", "–", "–", "not measured")
		return
	}
	progress("  workerd: %d streams held; %d messages at 10/s...", w.held(), *edgeMsgs)
	lat := w.latency(ctx, s)
	ok := lat.Errors == 0 && lat.MissedInbox == 0 && lat.MissedConv == 0 && lat.StreamFails == 0
	if !ok {
		x.rep.fail(fmt.Sprintf("the delivery-latency run in workerd: %d of %d sends failed (first: `%s`), %d inbox and %d conversation frames never came, "+
			"%d held streams ended (first: `%s`)", lat.Errors, lat.Sent, lat.FirstErr, lat.MissedInbox, lat.MissedConv, lat.StreamFails, lat.StreamErr))
	}
	x.rep.table([]string{"way", "messages", "p50", "p99", "max", "never arrived"}, [][]string{
		{"send → inbox stream frame", strconv.Itoa(len(lat.Latencies)), ms(quantile(lat.Latencies, .5)), ms(quantile(lat.Latencies, .99)), ms(quantile(lat.Latencies, 1)), strconv.Itoa(lat.MissedInbox)},
		{"send → conversation stream frame", strconv.Itoa(len(lat.ConvLat)), ms(quantile(lat.ConvLat, .5)), ms(quantile(lat.ConvLat, .99)), ms(quantile(lat.ConvLat, 1)), strconv.Itoa(lat.MissedConv)},
		{"the send request alone (201)", strconv.Itoa(len(lat.SendLat)), ms(quantile(lat.SendLat, .5)), ms(quantile(lat.SendLat, .99)), ms(quantile(lat.SendLat, 1)), "–"},
	})
	x.rep.check(fmt.Sprintf("delivery latency visitor → inbox stream in workerd (%d streams): p50 (p99)", w.held()),
		ms(quantile(lat.Latencies, .5))+" ("+ms(quantile(lat.Latencies, .99))+")", "–", metIfOK(ok, true))
	progress("  workerd inbox p50 %s p99 %s", ms(quantile(lat.Latencies, .5)), ms(quantile(lat.Latencies, .99)))
}
