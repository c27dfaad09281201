package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// pool bounds the instances alive at once and hands each to one caller at
// a time. A semaphore slot is held for as long as an instance is in use, so
// at most size requests run at once; idle instances are kept for reuse
// unless every use must start fresh. Then one spare instance, which has
// served nothing, may be kept ready besides (startSpare).
type pool struct {
	h          *Host
	sem        chan struct{}
	perRequest bool

	mu     sync.Mutex
	idle   []*instance
	closed bool

	// With an instance per request, spare hands over an instance made
	// ahead of time by warm, so that a request need not wait for one. It
	// has served nothing: it is as fresh as one made on demand. Nil
	// without a spare (a nil channel is never ready).
	spare    chan *instance
	stopWarm context.CancelFunc
	warmDone chan struct{}
}

func newPool(h *Host, size int, perRequest bool) *pool {
	return &pool{h: h, sem: make(chan struct{}, size), perRequest: perRequest}
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

var errBusy = errors.New("host: no instance became free before the deadline")

// acquire returns an instance for the caller's exclusive use, waiting for a
// slot until ctx ends.
func (p *pool) acquire(ctx context.Context) (*instance, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errBusy, ctx.Err())
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
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
		<-p.sem
		return nil, err
	}
	return inst, nil
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
	<-p.sem
}

// close waits until no instance is in use (or ctx ends), then closes the
// idle ones. Instances still in use when ctx ends are closed with the
// runtime by the caller.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if p.stopWarm != nil {
		p.stopWarm()
		<-p.warmDone
	}
	var err error
	for range cap(p.sem) {
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			err = fmt.Errorf("host: closing with requests still running: %w", ctx.Err())
		}
		if err != nil {
			break
		}
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
