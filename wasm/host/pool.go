package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// pool bounds the instances alive at once and hands each to one caller at
// a time. A semaphore slot is held for as long as an instance is in use, so
// at most size requests run at once; idle instances are kept for reuse
// unless every use must start fresh.
type pool struct {
	h          *Host
	sem        chan struct{}
	perRequest bool

	mu     sync.Mutex
	idle   []*instance
	closed bool
}

func newPool(h *Host, size int, perRequest bool) *pool {
	return &pool{h: h, sem: make(chan struct{}, size), perRequest: perRequest}
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
