package host

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"pommy.ai/edge/storage"
)

// The hub holds the streams (docs/realtime.md, "The local home"): the
// connections of SSE clients and of long-polls waiting for a wake-up. A
// guest instance serves a stream only for short, bounded steps — the first
// answer, and one re-poll per wake-up — so a thousand open streams pin no
// instance, and a held stream has no per-request deadline.
//
// Wake-ups come from Publish (the guest's realtime.publish op). They carry
// no data: a woken stream re-runs its request through the guest from its
// cursor, so a lost wake-up costs latency, never an event. Wake-ups that
// arrive while a stream's poll runs are coalesced into one more poll.
//
// Polls run on at most Options.StreamPollers goroutines at once (fewer
// than the pool's instances, so streams never take them all), in FIFO
// order, each an ordinary guest call through the pool and its admission
// control. A held SSE stream costs no goroutine while it waits: its
// connection is taken from net/http (hijacked), written by a short-lived
// goroutine when there is something to send, and pinged by a timer.

const (
	// DefaultStreamHeartbeat is how often a held SSE stream gets
	// `event: ping`, so that a client can tell a quiet stream from a dead
	// one (and the host finds a vanished client at its next write).
	DefaultStreamHeartbeat = 15 * time.Second
	// DefaultMaxStreams bounds the streams held at once.
	DefaultMaxStreams = 10000

	// streamWriteTimeout bounds one write to a held stream: a client that
	// takes nothing for this long is cut (it resumes from its cursor).
	streamWriteTimeout = 15 * time.Second
	// maxStreamBacklog bounds what waits to be written to one stream; a
	// client that falls this far behind is cut rather than buffered for.
	maxStreamBacklog = 8 << 20
	// streamPollBackpressure: with this much unsent, a stream's next page
	// (Pommy-Stream-More) is read only once the backlog has drained.
	streamPollBackpressure = 1 << 20
	// maxStreamAnswer bounds one answer of the guest to a stream request
	// (the first or a poll): it is held whole before it is sent.
	maxStreamAnswer = 16 << 20
	// pollRetryDelay is how long a stream waits to poll again when
	// admission control refused its poll (the pool was saturated).
	pollRetryDelay = 500 * time.Millisecond
	// publishHistory is how many recent wake-ups the hub remembers, so that
	// a stream can tell whether its topic was published to while its first
	// answer was being made, before it subscribed (hub.since).
	publishHistory = 4096
)

type hub struct {
	h          *Host
	heartbeat  time.Duration
	maxStreams int
	maxPollers int

	mu      sync.Mutex
	topics  map[string]map[subscriber]struct{}
	held    int // streams counted against maxStreams (admitted, not yet released)
	closed  bool
	queue   []*stream // streams waiting for a poll, FIFO
	pollers int       // goroutines running polls

	// seq numbers the wake-ups; recent[seq % publishHistory] is the
	// topic of wake-up seq. Read without mu by begin().
	seq    atomic.Uint64
	recent [publishHistory]struct {
		seq   uint64
		topic string
	}

	stats hubCounters
}

type hubCounters struct {
	published, wakeups, coalesced, polls atomic.Int64
	pollRetries, refused, cut            atomic.Int64
}

// subscriber is a held stream or a waiting long-poll; wake is called with
// hub.mu held and must not block.
type subscriber interface{ wake() }

func newHub(h *Host, heartbeat time.Duration, maxStreams, pollers int) *hub {
	return &hub{h: h, heartbeat: heartbeat, maxStreams: maxStreams, maxPollers: pollers,
		topics: map[string]map[subscriber]struct{}{}}
}

// Publish wakes every stream held on topic. It never blocks on a stream.
func (hb *hub) Publish(ctx context.Context, topic string) error {
	if !storage.ValidTopic(topic) {
		return fmt.Errorf("%w: realtime topic %q", storage.ErrInvalid, truncateTopic(topic))
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	seq := hb.seq.Load() + 1
	hb.recent[seq%publishHistory] = struct {
		seq   uint64
		topic string
	}{seq, topic}
	hb.seq.Store(seq)
	hb.stats.published.Add(1)
	for s := range hb.topics[topic] {
		hb.stats.wakeups.Add(1)
		s.wake()
	}
	return nil
}

func truncateTopic(t string) string {
	if len(t) > 64 {
		return t[:64] + "…"
	}
	return t
}

// begin is read before a stream request's first guest call: since(topic,
// begin) then tells whether a wake-up of the topic came while the guest
// worked, when the stream was not yet subscribed.
func (hb *hub) begin() uint64 { return hb.seq.Load() }

// since reports whether topic was published to after wake-up number from.
// Past the history it answers yes: a needless poll costs little, a missed
// one a stream's latency. Called with hb.mu held.
func (hb *hub) since(topic string, from uint64) bool {
	now := hb.seq.Load()
	if now-from >= publishHistory {
		return true
	}
	for seq := from + 1; seq <= now; seq++ {
		if e := hb.recent[seq%publishHistory]; e.seq == seq && e.topic == topic {
			return true
		}
	}
	return false
}

// admit counts a stream against the cap; false: refuse it.
func (hb *hub) admit() bool {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.closed || hb.held >= hb.maxStreams {
		hb.stats.refused.Add(1)
		return false
	}
	hb.held++
	return true
}

// subscribe adds s to topic's watchers. It reports false once the hub is
// closed (the caller ends the stream); woken reports that the topic was
// published to since from, so the caller should poll at once.
func (hb *hub) subscribe(topic string, s subscriber, from uint64) (ok, woken bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.closed {
		return false, false
	}
	subs := hb.topics[topic]
	if subs == nil {
		subs = map[subscriber]struct{}{}
		hb.topics[topic] = subs
	}
	subs[s] = struct{}{}
	return true, hb.since(topic, from)
}

// release unsubscribes s (if it was) and frees its place under the cap.
func (hb *hub) release(topic string, s subscriber) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if subs := hb.topics[topic]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(hb.topics, topic)
		}
	}
	hb.held--
}

// close ends every held stream and wakes every waiting long-poll; later
// streams are refused. Clients reconnect and resume from their cursor.
func (hb *hub) close() {
	hb.mu.Lock()
	if hb.closed {
		hb.mu.Unlock()
		return
	}
	hb.closed = true
	var all []subscriber
	for _, subs := range hb.topics {
		for s := range subs {
			all = append(all, s)
		}
	}
	hb.queue = nil
	hb.mu.Unlock()
	for _, s := range all {
		switch x := s.(type) {
		case *stream:
			x.end(nil)
		case *longPoll:
			x.shutdown()
		}
	}
}

// heldNow is the number of streams held.
func (hb *hub) heldNow() int {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return hb.held
}

// ---- polls ----

// schedule asks for a poll of s; called with hb.mu held. A stream is
// queued at most once, and one whose poll is running is marked to poll
// once more when it ends: that is the coalescing.
func (hb *hub) schedule(s *stream) {
	switch {
	case s.gone || hb.closed:
	case s.polling:
		if s.dirty {
			hb.stats.coalesced.Add(1)
		}
		s.dirty = true
	case s.queued:
		hb.stats.coalesced.Add(1)
	default:
		s.queued = true
		hb.queue = append(hb.queue, s)
		if hb.pollers < hb.maxPollers {
			hb.pollers++
			go hb.poller()
		}
	}
}

// poller runs queued polls until the queue is empty. Pollers are started
// on demand and end when idle, so a quiet hub runs no goroutine.
func (hb *hub) poller() {
	for {
		hb.mu.Lock()
		if len(hb.queue) == 0 || hb.closed {
			hb.pollers--
			hb.mu.Unlock()
			return
		}
		s := hb.queue[0]
		hb.queue[0] = nil
		hb.queue = hb.queue[1:]
		s.queued, s.polling = false, true
		hb.mu.Unlock()

		next := s.poll()

		hb.mu.Lock()
		s.polling = false
		again := s.dirty
		s.dirty = false
		switch next {
		case pollMore:
			again = true
		case pollAfterDrain:
			again = false
			s.pollOnDrain.Store(true)
		case pollLater:
			again = false
			time.AfterFunc(pollRetryDelay, func() {
				hb.mu.Lock()
				hb.schedule(s)
				hb.mu.Unlock()
			})
		}
		if again {
			hb.schedule(s)
		}
		hb.mu.Unlock()
	}
}

// ---- stats ----

// StreamStats are the hub's counters, part of Stats.
type StreamStats struct {
	Held        int64 // streams held now (SSE and waiting long-polls)
	Published   int64 // wake-ups published
	Wakeups     int64 // wake-ups delivered to held streams
	Coalesced   int64 // wake-ups that joined a poll already due
	Polls       int64 // re-polls run through the guest
	PollRetries int64 // re-polls refused by admission control and retried
	Refused     int64 // streams refused at the cap (too_many_streams)
	Cut         int64 // streams cut: a client too slow or gone
}

func (hb *hub) statsNow() StreamStats {
	c := &hb.stats
	return StreamStats{Held: int64(hb.heldNow()), Published: c.published.Load(), Wakeups: c.wakeups.Load(),
		Coalesced: c.coalesced.Load(), Polls: c.polls.Load(), PollRetries: c.pollRetries.Load(),
		Refused: c.refused.Load(), Cut: c.cut.Load()}
}

// pingFrame is the heartbeat's SSE frame.
func pingFrame(now time.Time) []byte {
	b := make([]byte, 0, 40)
	b = append(b, "event: ping\ndata: {\"t\":"...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	return append(b, "}\n\n"...)
}
