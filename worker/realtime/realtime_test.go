//go:build js && wasm

// These tests run the adapter against a stand-in Durable Object namespace
// in Node.js (the real object runs in workerd: tests/workerd). Run them with
// the Go distribution's wrapper:
//
//	GOOS=js GOARCH=wasm go test -exec="$(go env GOROOT)/lib/wasm/go_js_wasm_exec" ./worker/realtime/
package realtime

import (
	"context"
	"errors"
	"strings"
	"syscall/js"
	"testing"
	"time"

	"pommy.ai/edge/storage"
)

// fakeNamespace records every stub fetch in globalThis.__calls and answers
// as globalThis.__mode says: "ok" (204), "500", "throw" (rejects) or
// "hang" (never settles).
const fakeNamespace = `
globalThis.__calls = [];
globalThis.__mode = "ok";
return {
  idFromName(name) { return { name }; },
  get(id) {
    return {
      fetch(url, init) {
        globalThis.__calls.push({ name: id.name, url, method: init.method });
        switch (globalThis.__mode) {
        case "throw": return Promise.reject(new Error("object unreachable"));
        case "hang": return new Promise(() => {});
        case "500": return Promise.resolve({ status: 500, body: null });
        default: return Promise.resolve({ status: 204, body: null });
        }
      },
    };
  },
};`

func setup(t *testing.T) *Namespace {
	t.Helper()
	ns := js.Global().Get("Function").New(fakeNamespace).Invoke()
	env := js.Global().Get("Object").New()
	env.Set("REALTIME", ns)
	ctx := js.Global().Get("Object").New()
	ctx.Set("env", env)
	js.Global().Set("context", ctx)
	t.Cleanup(func() { js.Global().Delete("context") })
	n, err := New("REALTIME")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func calls() []js.Value {
	a := js.Global().Get("__calls")
	out := make([]js.Value, a.Length())
	for i := range out {
		out[i] = a.Index(i)
	}
	return out
}

func TestPublishPostsToTheTopicsObject(t *testing.T) {
	n := setup(t)
	topic := "t/tn_1/c/cv_2"
	if err := n.Publish(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	c := calls()
	if len(c) != 1 {
		t.Fatalf("%d stub fetches, want 1", len(c))
	}
	if got := c[0].Get("name").String(); got != topic {
		t.Errorf("object named %q, want %q", got, topic)
	}
	if u, m := c[0].Get("url").String(), c[0].Get("method").String(); u != PublishURL || m != "POST" {
		t.Errorf("fetch %s %s, want POST %s", m, u, PublishURL)
	}
}

func TestPublishRefusesInvalidTopics(t *testing.T) {
	n := setup(t)
	for _, topic := range []string{"", "t/x y", "t/é", strings.Repeat("a", storage.MaxTopic+1)} {
		if err := n.Publish(context.Background(), topic); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("Publish(%q) = %v, want ErrInvalid", topic, err)
		}
	}
	// The longest valid topic is carried.
	if err := n.Publish(context.Background(), strings.Repeat("a", storage.MaxTopic)); err != nil {
		t.Errorf("Publish of a %d-byte topic: %v", storage.MaxTopic, err)
	}
	if len(calls()) != 1 {
		t.Errorf("%d stub fetches, want only the valid topic's", len(calls()))
	}
}

func TestPublishReturnsTheObjectsFailures(t *testing.T) {
	n := setup(t)
	for _, mode := range []string{"500", "throw"} {
		js.Global().Set("__mode", mode)
		err := n.Publish(context.Background(), "t/tn_1/inbox")
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("mode %s: Publish = %v, want ErrUnavailable", mode, err)
		}
	}
}

func TestPublishHonoursTheContext(t *testing.T) {
	n := setup(t)
	js.Global().Set("__mode", "hang")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Publish(ctx, "t/tn_1/inbox"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish to a hanging object = %v, want context.DeadlineExceeded", err)
	}
}

func TestNewNeedsTheBinding(t *testing.T) {
	setup(t)
	if _, err := New("NOT_BOUND"); err == nil || !strings.Contains(err.Error(), "NOT_BOUND") {
		t.Errorf("New of a missing binding = %v, want an error naming it", err)
	}
}
