//go:build js && wasm

// Package realtime is the edge adapter of storage.Realtime: a wake-up for a
// topic is a POST to the topic's Durable Object (class RealtimeTopic in
// worker/js/entry.mjs, one object per topic name), which re-polls the
// application for every stream it holds. The object and the stream
// hand-off are described in docs/realtime.md.
package realtime

import (
	"context"
	"fmt"
	"syscall/js"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// PublishURL is the object's wake-up operation. Its host name is reserved
// (RFC 2606): the request goes through the binding, never the network.
const PublishURL = "https://realtime.invalid/publish"

// Namespace publishes wake-ups through a Durable Object namespace binding.
type Namespace struct{ ns js.Value }

var _ storage.Realtime = (*Namespace)(nil)

// New binds the Durable Object namespace in the worker's environment under
// binding.
func New(binding string) (*Namespace, error) {
	v := jsbridge.Binding(binding)
	if v.Type() != js.TypeObject {
		return nil, fmt.Errorf("realtime: binding %q is not configured (add a [[durable_objects.bindings]] entry for class RealtimeTopic to wrangler.toml)", binding)
	}
	return &Namespace{ns: v}, nil
}

// Publish wakes the streams held for topic. It returns once the object has
// taken the wake-up (its polls run after), so a publisher waits for one
// round trip to the object, not for the streams.
func (n *Namespace) Publish(ctx context.Context, topic string) error {
	if !storage.ValidTopic(topic) {
		return fmt.Errorf("realtime: invalid topic %q: %w", topic, storage.ErrInvalid)
	}
	id, err := jsbridge.Call(n.ns, "idFromName", topic)
	if err != nil {
		return fmt.Errorf("realtime: publish %q: %w: %w", topic, storage.ErrUnavailable, err)
	}
	stub, err := jsbridge.Call(n.ns, "get", id)
	if err != nil {
		return fmt.Errorf("realtime: publish %q: %w: %w", topic, storage.ErrUnavailable, err)
	}
	init := jsbridge.NewObject()
	init.Set("method", "POST")
	res, err := jsbridge.CallAwait(ctx, stub, "fetch", PublishURL, init)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("realtime: publish %q: %w: %w", topic, storage.ErrUnavailable, err)
	}
	if res.Type() != js.TypeObject {
		return fmt.Errorf("realtime: publish %q: %w: the object answered %s", topic, storage.ErrUnavailable, res.Type())
	}
	if b := res.Get("body"); b.Type() == js.TypeObject {
		// Nothing to read; release the stream rather than leave it open.
		jsbridge.Call(b, "cancel")
	}
	if status := res.Get("status").Int(); status != 204 {
		return fmt.Errorf("realtime: publish %q: %w: the object answered %d", topic, storage.ErrUnavailable, status)
	}
	return nil
}
