// Package webhookrecv runs the tests' webhook receiver: a tenant's endpoint
// written with the reference Standard Webhooks library (npm standardwebhooks,
// receiver.mjs) rather than our own code, so that every signature the
// suites see delivered is verified by a client we did not write. The local
// home's suite (tests/e2e) and the edge's (tests/workerd) share it.
package webhookrecv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Receiver is one running receiver on loopback.
type Receiver struct {
	// Addr is its ip:port (for a test allow-list); URLs are http://Addr/....
	Addr string
}

// Hook is one request the receiver got, verified or not.
type Hook struct {
	ID         string          `json:"id"`
	Verified   bool            `json:"verified"`
	Error      string          `json:"error"`
	Type       string          `json:"type"`
	Signatures int             `json:"signatures"`
	Status     int             `json:"status"`
	Data       json.RawMessage `json:"data"`
}

// Start starts the receiver with node from the repository root (which has
// node_modules/standardwebhooks: `npm ci`) and stops it at cleanup.
func Start(t testing.TB, root string) *Receiver {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "node_modules", "standardwebhooks")); err != nil {
		t.Fatalf("the webhook receiver needs the standardwebhooks npm package: run `npm ci` (make test does): %v", err)
	}
	cmd := exec.Command("node", filepath.Join(root, "tests", "webhookrecv", "receiver.mjs"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	// Closing stdin ends the receiver; the kill is for one that hangs.
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("receiver did not start: %v", err)
	}
	var hello struct{ Port int }
	if err := json.Unmarshal([]byte(line), &hello); err != nil || hello.Port == 0 {
		t.Fatalf("receiver said %q", line)
	}
	return &Receiver{Addr: "127.0.0.1:" + strconv.Itoa(hello.Port)}
}

func (rc *Receiver) control(path string, v any) error {
	b, _ := json.Marshal(v)
	resp, err := http.Post("http://"+rc.Addr+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("receiver %s: %s", path, resp.Status)
	}
	return nil
}

// SetSecrets sets the whsec_ secrets every delivery must verify with.
func (rc *Receiver) SetSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	if err := rc.control("/__secrets", map[string]any{"secrets": secrets}); err != nil {
		t.Fatalf("configuring the receiver: %v", err)
	}
}

// SetStatus sets the status a verified delivery is answered with (204
// until set); a delivery that fails verification always gets 400.
func (rc *Receiver) SetStatus(t testing.TB, status int) {
	t.Helper()
	if err := rc.control("/__status", map[string]any{"status": status}); err != nil {
		t.Fatalf("configuring the receiver: %v", err)
	}
}

// Received lists what arrived, in order.
func (rc *Receiver) Received(t testing.TB) []Hook {
	t.Helper()
	resp, err := http.Get("http://" + rc.Addr + "/__received")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Hook
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(errors.Join(errors.New("reading the receiver's log"), err))
	}
	return out
}
