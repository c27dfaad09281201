package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/tests/apitest"
)

// TestHostKilledWhileSending: messages are sent concurrently to one
// conversation through the real command (the host process with the guest);
// the process is killed (SIGKILL, no shutdown) in the middle of the sends
// and started again on the same data directory. Every send that was
// acknowledged (2xx) is there, the conversation's messages and events run
// in seq order with no gap, and a retry of an unacknowledged send with its
// key lands exactly once.
func TestHostKilledWhileSending(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pommy")
	build := exec.Command("go", "build", "-o", bin, "pommy.ai/edge/cmd/pommy")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, "guest.wasm")
	if err := os.WriteFile(module, guest, 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")

	p := startCommand(t, bin, module, data)
	c := &apitest.Client{Base: p.url}
	// The shipped guest has no test shortcut: the owner's address is
	// verified (an API key needs it) through the link its log prints.
	o, _ := c.SignupUnverified(t, "Crash Co", nil)
	c.Do(t, "POST", "/v1/email/verify", map[string]string{"token": apitest.MailedToken(t, p.log.String, o.Email)}).Expect(t, 200)
	key := o.NewKey(t, apitest.AllScopes...)
	auth := []string{"Authorization", "Bearer " + key}
	contact := c.Do(t, "POST", "/v1/contacts", map[string]any{"name": "Crash"}, auth...).Expect(t, 201).JSON(t)["id"].(string)
	conv := c.Do(t, "POST", "/v1/conversations", map[string]any{"contact_id": contact}, auth...).Expect(t, 201).JSON(t)["id"].(string)

	// Senders: each sends until the process dies, and remembers what was
	// acknowledged and what was in flight.
	type sent struct {
		key, text, id string
		seq           int64
	}
	var (
		mu      sync.Mutex
		acked   []sent
		pending []sent // no answer: may or may not have committed
		nacked  atomic.Int64
	)
	hc := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := sent{key: fmt.Sprintf("w%d-%d", w, i), text: fmt.Sprintf("message %d from sender %d", i, w)}
				id, seq, status, err := sendMessage(hc, p.url, conv, key, s.key, s.text)
				mu.Lock()
				switch {
				case err != nil:
					pending = append(pending, s)
					mu.Unlock()
					return // the process is gone
				case status == 201:
					s.id, s.seq = id, seq
					acked = append(acked, s)
				default:
					nacked.Add(1) // refused (e.g. 429): not acknowledged
				}
				mu.Unlock()
			}
		}()
	}
	// Kill once enough sends are acknowledged: sends are in flight then.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 60 {
			break
		}
		if !p.alive() {
			t.Fatal("the host died by itself")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill(t)
	close(stop)
	wg.Wait()
	t.Logf("%d acknowledged, %d in flight at the kill, %d refused", len(acked), len(pending), nacked.Load())

	p = startCommand(t, bin, module, data)
	c = &apitest.Client{Base: p.url}
	msgs := listMessages(t, c, conv, auth)
	byID := map[string]map[string]any{}
	for i, m := range msgs {
		// Seq 1 is conversation.created; messages follow with no gap.
		if m["seq"] != float64(i+2) {
			t.Fatalf("message %d has seq %v: a gap or disorder", i, m["seq"])
		}
		byID[m["id"].(string)] = m
	}
	for _, a := range acked {
		m, ok := byID[a.id]
		if !ok {
			t.Fatalf("acknowledged message %s (seq %d) is lost", a.id, a.seq)
		}
		if m["seq"] != float64(a.seq) || m["text"] != a.text {
			t.Fatalf("acknowledged message %s changed: %v", a.id, m)
		}
	}
	cv := c.Do(t, "GET", "/v1/conversations/"+conv, nil, auth...).Expect(t, 200).JSON(t)
	if cv["last_seq"] != float64(len(msgs)+1) {
		t.Fatalf("last_seq %v with %d messages", cv["last_seq"], len(msgs))
	}
	evs := c.Do(t, "GET", "/v1/conversations/"+conv+"/events", nil, auth...).Expect(t, 200).JSON(t)["events"].([]any)
	for i, e := range evs {
		if e.(map[string]any)["seq"] != float64(i+1) {
			t.Fatalf("event %d has seq %v", i, e.(map[string]any)["seq"])
		}
	}
	// The sends that got no answer are retried with their keys: each is
	// then there exactly once, whether or not it had committed.
	for _, p := range pending {
		if _, _, status, err := sendMessage(hc, c.Base, conv, key, p.key, p.text); err != nil || status != 201 {
			t.Fatalf("retry of %s: %d %v", p.key, status, err)
		}
	}
	count := map[string]int{}
	for i, m := range listMessages(t, c, conv, auth) {
		if m["seq"] != float64(i+2) {
			t.Fatalf("after the retries, message %d has seq %v", i, m["seq"])
		}
		count[m["text"].(string)]++
	}
	for _, s := range append(acked, pending...) {
		if count[s.text] != 1 {
			t.Fatalf("%q is there %d times", s.text, count[s.text])
		}
	}
}

// listMessages pages through a conversation's messages.
func listMessages(t *testing.T, c *apitest.Client, conv string, auth []string) []map[string]any {
	var msgs []map[string]any
	after := int64(0)
	for {
		r := c.Do(t, "GET", "/v1/conversations/"+conv+"/messages?after="+strconv.FormatInt(after, 10), nil, auth...).Expect(t, 200).JSON(t)
		for _, m := range r["messages"].([]any) {
			msgs = append(msgs, m.(map[string]any))
		}
		next, ok := r["next"].(float64)
		if !ok {
			return msgs
		}
		after = int64(next)
	}
}

func sendMessage(hc *http.Client, base, conv, key, idem, text string) (id string, seq int64, status int, err error) {
	body := fmt.Sprintf(`{"text":%q}`, text)
	req, _ := http.NewRequest("POST", base+"/v1/conversations/"+conv+"/messages", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idem)
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, 0, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return "", 0, 0, err
	}
	if resp.StatusCode != 201 {
		return "", 0, resp.StatusCode, nil
	}
	var m struct {
		ID  string
		Seq int64
	}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		return "", 0, 0, err
	}
	return m.ID, m.Seq, 201, nil
}

// process is the command running as a child process.
type process struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

func startCommand(t *testing.T, bin, module, data string) *process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &process{url: "http://" + addr, done: make(chan struct{}), log: &syncBuffer{}}
	p.cmd = exec.Command(bin, "--addr", addr, "--data", data, "--module", module, "--schedule-every", "0")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if p.alive() {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("host log:\n%s", p.log)
		}
	})
	for {
		if !p.alive() {
			t.Fatalf("the command exited:\n%s", p.log)
		}
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process at once (SIGKILL): no shutdown, no flush.
func (p *process) kill(t *testing.T) {
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}
