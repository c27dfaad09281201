package handlers

import (
	"context"
	"time"

	"pommy.ai/edge/handlers/identity"
	"pommy.ai/edge/handlers/jobs"
	"pommy.ai/edge/handlers/mail"
	"pommy.ai/edge/handlers/webhooks"
	"pommy.ai/edge/storage"
)

// jobRegistry lists the kinds of background job this application runs,
// bound to a home's platform.
func jobRegistry(p storage.Platform, cfg Config) *jobs.Registry {
	reg := jobs.NewRegistry()
	webhooks.Register(reg, &webhooks.Deliverer{P: p, Renderer: eventRenderer(p, cfg), URLs: webhookURLs(cfg)})
	registerConversationJobs(reg, p)
	identity.RegisterJobs(reg, p)
	mail.Register(reg, p)
	identity.RegisterNotices(reg, p)
	return reg
}

// webhookURLs is the endpoint policy: public HTTPS only, plus
// Config.WebhookTestAllow in a test build (a shipped build refuses
// TestRoutes in Check, so it can never honour the list).
func webhookURLs(cfg Config) webhooks.URLPolicy {
	if cfg.TestRoutes && mountTestRoutes != nil {
		return webhooks.URLPolicy{TestAllow: cfg.WebhookTestAllow}
	}
	return webhooks.URLPolicy{}
}

// wrapTestRenderer is set by RegisterTestRenderer, in test builds only.
var wrapTestRenderer func(storage.Platform, webhooks.Renderer) webhooks.Renderer

// RegisterTestRenderer lets the test routes render events of their own
// test conversations (handlers/testroutes), falling back to next for the
// rest. Only test builds call it.
func RegisterTestRenderer(wrap func(p storage.Platform, next webhooks.Renderer) webhooks.Renderer) {
	wrapTestRenderer = wrap
}

// eventRenderer renders conversation events for webhook deliveries.
func eventRenderer(p storage.Platform, cfg Config) webhooks.Renderer {
	r := conversationRenderer(p)
	if cfg.TestRoutes && wrapTestRenderer != nil {
		r = wrapTestRenderer(p, r)
	}
	return r
}

// JobOptions bound one RunJobs.
type JobOptions struct {
	// Budget is how long RunJobs keeps taking jobs (default 50 s); a job
	// is only taken while its whole timeout still fits in the budget and
	// in ctx's deadline.
	Budget time.Duration
}

// jobMargin is the longest a job may take (the delivery's timeout and the
// write of its outcome); no job is taken with less time left.
const jobMargin = 20 * time.Second

// RunJobs runs due background jobs until none is due or the budget is
// spent, and reports how many it took. The host's job workers call it
// (pommy_v1_scheduled with the "jobs" task), and Scheduled does.
func RunJobs(ctx context.Context, p storage.Platform, cfg Config, o JobOptions) (int, error) {
	if p.Clock == nil {
		p.Clock = storage.SystemClock{}
	}
	if o.Budget <= 0 {
		o.Budget = 50 * time.Second
	}
	stop := time.Now().Add(o.Budget)
	if d, ok := ctx.Deadline(); ok && d.Before(stop) {
		stop = d
	}
	// At the edge fetches wait concurrently inside one run; in the wasip1
	// guest every host call blocks the instance, so the host runs several
	// instances instead (wasm/host: Options.JobWorkers).
	opts := jobs.RunOptions{Limit: 1, Concurrency: 1}
	if p.Home == "edge" {
		opts = jobs.RunOptions{Limit: 8, Concurrency: 8}
	}
	reg := jobRegistry(p, cfg)
	taken := 0
	for time.Until(stop) > jobMargin && ctx.Err() == nil {
		res, err := reg.Run(ctx, p, opts)
		taken += res.Taken
		if err != nil || res.Taken == 0 {
			return taken, err
		}
	}
	return taken, nil
}

// hooks is the webhook API (nil-safe for the docs generator, which builds
// the table from a nil app).
func (a *app) hooks() *webhooks.Routes {
	if a == nil {
		return &webhooks.Routes{}
	}
	return &webhooks.Routes{URLs: webhookURLs(a.cfg)}
}

// jobsAPI is the jobs view: a tenant's background jobs and the retry of
// dead ones.
func (a *app) jobsAPI() *jobs.Routes { return &jobs.Routes{} }
