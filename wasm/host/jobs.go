package host

import (
	"context"
	"errors"
	"sync"
	"time"

	"pommy.ai/edge/wasm/abi"
)

// RunJobs runs due background jobs once: one guest invocation of the
// "jobs" task on a job worker's instance, for at most Options.JobTimeout.
func (h *Host) RunJobs(ctx context.Context) error {
	return h.runTask(ctx, abi.TaskJobs, h.opts.JobTimeout)
}

// ScheduleJobs runs Options.JobWorkers workers until ctx ends or the host
// closes. Each worker runs the jobs task, which returns once nothing is
// due, then waits Options.JobEvery. Jobs therefore start within about a
// second of becoming due, at most JobWorkers run at once, and a job that
// hangs on its endpoint delays only its own worker.
func (h *Host) ScheduleJobs(ctx context.Context) {
	if h.jobs == nil {
		return
	}
	var wg sync.WaitGroup
	for range h.opts.JobWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(h.opts.JobEvery)
			defer t.Stop()
			for {
				if err := h.RunJobs(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
					h.log.Error("job run failed", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-h.closed:
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}
