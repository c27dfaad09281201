package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// pool bounds the instances alive at once and hands each to one caller at
// a time. A slot is held for as long as an instance is in use, so at most
// size requests run at once; idle instances are kept for reuse unless
// every use must start fresh. Then one spare instance, which has served
// nothing, may be kept ready besides (startSpare).
//
// Requests that find every slot taken wait in a FIFO queue, which is
// bounded (admission control): a request that finds maxQueue others
// already waiting is refused at once, and one that has waited queueWait is
// refused then, both with errOverloaded. Past capacity the excess is thus
// turned away in microseconds instead of piling up, and an admitted
// request waits at most maxQueue/size service times. Scheduled work and
// the first instance of New wait without these bounds (acquireUnbounded).
type pool struct {
	h          *Host
	size       int
	perRequest bool
	maxQueue   int
	queueWait  time.Duration

	mu      sync.Mutex
	busy    int       // slots taken, including those handed to waiters
	waiting []*waiter // FIFO; waiters[0] gets the next free slot
	idle    []*instance
	closed  bool
	drained chan struct{} // made by close, closed when busy falls to 0

	// With an instance per request, spare hands over an instance made
	// ahead of time by warm, so that a request need not wait for one. It
	// has served nothing: it is as fresh as one made on demand. Nil
	// without a spare (a nil channel is never ready).
	spare    chan *instance
	stopWarm context.CancelFunc
	warmDone chan struct{}
}

// waiter is one caller queued for a slot. ready is closed when the slot is
// handed over (granted) or the pool closes (closed set under pool.mu).
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newPool(h *Host, size int, perRequest bool, maxQueue int, queueWait time.Duration) *pool {
	return &pool{h: h, size: size, perRequest: perRequest, maxQueue: maxQueue, queueWait: queueWait}
}

// startSpare starts keeping a spare instance, with an instance per request
// only; close stops it. It is called once, before any request.
func (p *pool) startSpare() {
	if !p.perRequest {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.spare, p.stopWarm, p.warmDone = make(chan *instance), cancel, make(chan struct{})
	go p.warm(ctx)
}

// warm keeps one spare instance ready until ctx ends: it makes one, waits
// until a request takes it, and makes the next.
func (p *pool) warm(ctx context.Context) {
	defer close(p.warmDone)
	for ctx.Err() == nil {
		inst, err := p.h.instantiate(ctx)
		if err != nil {
			if ctx.Err() == nil {
				// Requests will make their own (and report why
				// they cannot); try again later.
				p.h.log.Error("making a spare instance", "err", err)
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
			}
			continue
		}
		select {
		case p.spare <- inst:
		case <-ctx.Done():
			inst.close(p.h)
		}
	}
}

var (
	errBusy = errors.New("host: no instance became free before the deadline")
	// errOverloaded is admission control refusing a request: the queue
	// for an instance was full, or the request waited its longest.
	errOverloaded = errors.New("host: overloaded")
)

// acquire returns an instance for the caller's exclusive use. It waits for
// a slot in the bounded queue (see pool): errOverloaded when the queue is
// full or the wait reaches queueWait, errBusy when ctx ends first.
func (p *pool) acquire(ctx context.Context) (*instance, error) {
	if err := p.slot(ctx, true); err != nil {
		return nil, err
	}
	return p.take(ctx)
}

// acquireUnbounded is acquire for the host's own work (scheduled runs, the
// first instance): it waits in the same queue, in turn, for as long as ctx
// allows, is never refused by admission control and is not counted in it.
func (p *pool) acquireUnbounded(ctx context.Context) (*instance, error) {
	if err := p.slot(ctx, false); err != nil {
		return nil, err
	}
	return p.take(ctx)
}

// slot takes a slot, queueing for one when all are in use.
func (p *pool) slot(ctx context.Context, bounded bool) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if p.busy < p.size && len(p.waiting) == 0 {
		p.busy++
		p.h.stats.busy.Add(1)
		p.mu.Unlock()
		return nil
	}
	if bounded && len(p.waiting) >= p.maxQueue {
		p.mu.Unlock()
		p.h.stats.shed.Add(1)
		return fmt.Errorf("%w: %d requests already waiting for an instance", errOverloaded, p.maxQueue)
	}
	w := &waiter{ready: make(chan struct{})}
	p.waiting = append(p.waiting, w)
	p.h.stats.queued.Add(1)
	p.mu.Unlock()

	var expired <-chan time.Time
	if bounded {
		t := time.NewTimer(p.queueWait)
		defer t.Stop()
		expired = t.C
	}
	var err error
	select {
	case <-w.ready:
	case <-expired:
		err = fmt.Errorf("%w: waited %v for an instance", errOverloaded, p.queueWait)
	case <-ctx.Done():
		err = fmt.Errorf("%w: %w", errBusy, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case w.granted:
		// The slot came at the very moment the wait ended: use it.
		return nil
	case p.closed:
		return ErrClosed
	case err == nil:
		panic("host: a pool waiter woken without a slot")
	}
	p.waiting = slices.DeleteFunc(p.waiting, func(x *waiter) bool { return x == w })
	p.h.stats.queued.Add(-1)
	if errors.Is(err, errOverloaded) {
		p.h.stats.shed.Add(1)
		p.h.stats.shedWaited.Add(1)
	}
	return err
}

// take returns an instance for a slot the caller holds: an idle one, the
// spare, or a new one. On error the slot is given back.
func (p *pool) take(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.free()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()
	select {
	case inst := <-p.spare:
		return inst, nil
	default:
	}
	inst, err := p.h.instantiate(ctx)
	if err != nil {
		p.free()
		return nil, err
	}
	return inst, nil
}

// free gives a slot back: to the first waiter if there is one, else to the
// pool.
func (p *pool) free() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiting) > 0 && !p.closed {
		w := p.waiting[0]
		p.waiting = p.waiting[1:]
		p.h.stats.queued.Add(-1)
		w.granted = true
		close(w.ready)
		return
	}
	p.busy--
	p.h.stats.busy.Add(-1)
	if p.busy == 0 && p.drained != nil {
		close(p.drained)
	}
}

// release gives an instance back. A healthy one is kept for the next
// caller unless the pool runs an instance per request; anything else is
// closed.
func (p *pool) release(inst *instance, healthy bool) {
	p.mu.Lock()
	keep := healthy && !inst.broken && !p.perRequest && !p.closed
	if keep {
		p.idle = append(p.idle, inst)
	}
	p.mu.Unlock()
	if !keep {
		inst.close(p.h)
		if !healthy || inst.broken {
			p.h.stats.discarded.Add(1)
		}
	}
	p.free()
}

// close waits until no instance is in use (or ctx ends), then closes the
// idle ones. Callers still queued get ErrClosed. Instances still in use
// when ctx ends are closed with the runtime by the caller.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for _, w := range p.waiting {
		close(w.ready)
	}
	p.h.stats.queued.Add(-int64(len(p.waiting)))
	p.waiting = nil
	p.drained = make(chan struct{})
	if p.busy == 0 {
		close(p.drained)
	}
	p.mu.Unlock()
	if p.stopWarm != nil {
		p.stopWarm()
		<-p.warmDone
	}
	var err error
	select {
	case <-p.drained:
	case <-ctx.Done():
		err = fmt.Errorf("host: closing with requests still running: %w", ctx.Err())
	}
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close(p.h)
	}
	return err
}
