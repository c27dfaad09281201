//go:build js && wasm

// Command worker is the edge home of Pommy Edge: the application in
// handlers/ compiled with GOOS=js GOARCH=wasm and run by the Cloudflare
// Workers runtime through github.com/syumai/workers.
//
// syumai's worker.mjs starts a fresh Go runtime for every event (request or
// cron run), so main runs once per event: it builds the platform from the
// environment's bindings, serves the one request or runs the one scheduled
// task, and exits. Nothing here may assume state survives between events.
//
// Environment (wrangler.toml, secrets, or --var in tests):
//
//	DB                       D1 binding            -> storage.SQL
//	KV                       KV namespace binding  -> storage.KV
//	BLOBS                    R2 bucket binding     -> storage.Blobs
//	REALTIME                 Durable Object namespace (class RealtimeTopic,
//	                         worker/js/entry.mjs) -> storage.Realtime
//	                         (worker/realtime)
//	MASTER_KEY               secret: base64 of 32 bytes -> storage.Keys
//	                         (storage/keyring + worker/webcrypto)
//	RL_IP, RL_API, RL_TENANT, RL_WIDGET, RL_LOGIN  rate-limit bindings -> storage.Limiter
//	                         (one per name in storage.Limits; worker/ratelimit)
//	POMMY_TEST_ROUTES        "1" mounts the contract/test routes in a test build
//	                         (-tags testroutes); the shipped worker answers 503
//	                         not_configured while it is set
//	MAIL_FROM, MAIL_SES_REGION, MAIL_SES_ENDPOINT (optional)
//	MAIL_SES_ACCESS_KEY_ID, MAIL_SES_SECRET_ACCESS_KEY  secrets
//	                         -> storage.Mailer (Amazon SES v2 through fetch:
//	                         worker/sesmail); none set: no mail service (mail
//	                         jobs wait and retry); some set: not configured
//	POMMY_CONTRACT_HTTP_URL  URL the outbound-HTTP contract suite calls (tests only)
//	POMMY_CONTRACT_MAIL_URL  mail API whose copy of mailpit's API the mail
//	                         contract suite reads (tests only)
//	POMMY_TEST_WEBHOOK_ALLOW comma-separated ip:port destinations that webhook
//	                         subscriptions and deliveries may use although they
//	                         are not public HTTPS (the workerd suite's receiver
//	                         on loopback): honoured only by a test build with
//	                         POMMY_TEST_ROUTES=1; any other worker answers 503
//	                         not_configured while it is set
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"

	"github.com/syumai/workers"
	"github.com/syumai/workers/cloudflare/cron"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/storage/passwords"
	"pommy.ai/edge/worker/d1"
	"pommy.ai/edge/worker/egress"
	"pommy.ai/edge/worker/internal/jsbridge"
	"pommy.ai/edge/worker/kv"
	"pommy.ai/edge/worker/r2"
	"pommy.ai/edge/worker/ratelimit"
	"pommy.ai/edge/worker/realtime"
	"pommy.ai/edge/worker/webcrypto"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

// Binding and variable names, as in wrangler.toml.
const (
	bindingSQL      = "DB"
	bindingKV       = "KV"
	bindingBlobs    = "BLOBS"
	bindingRealtime = "REALTIME"
	secretMasterKey = "MASTER_KEY"
	varTestRoutes   = "POMMY_TEST_ROUTES"
	varContractURL  = "POMMY_CONTRACT_HTTP_URL"
	varWebhookAllow = "POMMY_TEST_WEBHOOK_ALLOW"
	varContractMail = "POMMY_CONTRACT_MAIL_URL"
	// Mail (worker/sesmail).
	varMailFrom         = "MAIL_FROM"
	varMailRegion       = "MAIL_SES_REGION"
	varMailEndpoint     = "MAIL_SES_ENDPOINT"
	secretMailKeyID     = "MAIL_SES_ACCESS_KEY_ID"
	secretMailKeySecret = "MAIL_SES_SECRET_ACCESS_KEY"
	// varOrigins optionally lists the worker's public origins, comma
	// separated (handlers.Config.PublicOrigins): requests for any other
	// Host, a workers.dev name left on, say, are then refused.
	varOrigins = "POMMY_PUBLIC_ORIGINS"
)

func main() {
	cfg := handlers.Config{
		Version:          version,
		TestRoutes:       jsbridge.Var(varTestRoutes) == "1",
		ContractHTTPURL:  jsbridge.Var(varContractURL),
		ContractMailURL:  jsbridge.Var(varContractMail),
		WebhookTestAllow: list(jsbridge.Var(varWebhookAllow)),
	}
	cerr := cfg.Check()
	// The egress honours the test allow-list only when the application
	// does: a test build with its test routes on. Otherwise the worker
	// refuses every request below, and the list reaches nothing.
	var allow []string
	if cerr == nil && cfg.TestRoutes {
		allow = cfg.WebhookTestAllow
	}
	p, err := platform(allow)
	switch {
	case errors.Is(cerr, handlers.ErrNoTestRoutes):
		// The shipped worker has no test routes (they are linked only with
		// -tags testroutes): a worker asked for them refuses every request.
		err = errors.Join(err, fmt.Errorf("%s is set, but this worker is built without test routes (unset it; test builds use -tags testroutes)", varTestRoutes))
	case errors.Is(cerr, handlers.ErrTestAllowWithoutTestRoutes):
		err = errors.Join(err, fmt.Errorf("%s is set, but it is honoured only by a test build (-tags testroutes) with %s=1: unset it", varWebhookAllow, varTestRoutes))
	case cerr != nil:
		err = errors.Join(err, cerr)
	}
	if origins, oerr := publicOrigins(jsbridge.Var(varOrigins)); oerr != nil {
		err = errors.Join(err, oerr)
	} else {
		cfg.PublicOrigins = origins
	}

	var h http.Handler
	if err != nil {
		log.Printf("pommy-edge: not configured: %v", err)
		h = unavailable(err)
	} else {
		h = joinHeaders(limitBody(skipEmptyWrites(handlers.New(p, cfg))))
	}
	workers.ServeNonBlock(h)
	cron.ScheduleTaskNonBlock(func(ctx context.Context) error {
		if err != nil {
			return fmt.Errorf("pommy-edge: scheduled run skipped: %w", err)
		}
		if err := handlers.Scheduled(ctx, p, cfg); err != nil {
			// syumai's cron runner panics on an error, which ends this
			// runtime and marks the invocation as failed; log it clearly first.
			log.Printf("pommy-edge: scheduled run failed: %v", err)
			return err
		}
		return nil
	})
	workers.Ready()
	// A fetch event ends when the response body is done; a scheduled event
	// ends when the runtime drops this instance.
	select {
	case <-workers.Done():
	case <-cron.Done():
	}
}

// platform builds the edge platform from the environment. It reports every
// missing piece at once so that one deploy fixes them all.
// testAllow is egress.Client.TestPublicAllow (tests only).
func platform(testAllow []string) (storage.Platform, error) {
	p := storage.Platform{Home: "edge", Clock: storage.SystemClock{}, HTTP: egress.Client{TestPublicAllow: testAllow}}
	var errs []error
	var err error
	if p.SQL, err = d1.New(bindingSQL); err != nil {
		errs = append(errs, err)
	}
	if p.KV, err = kv.New(bindingKV); err != nil {
		errs = append(errs, err)
	}
	if p.Blobs, err = r2.New(bindingBlobs); err != nil {
		errs = append(errs, err)
	}
	if p.Realtime, err = realtime.New(bindingRealtime); err != nil {
		errs = append(errs, err)
	}
	if p.Keys, err = keys(); err != nil {
		errs = append(errs, err)
	}
	// argon2id in Go inside this runtime: the Workers platform offers no
	// native argon2 (WebCrypto has none). About 110 ms of CPU per hash,
	// 3–4× native (docs/edge.md): password routes need the Paid plan.
	if p.Passwords, err = passwords.New(passwords.Options{Concurrency: 1}); err != nil {
		errs = append(errs, err)
	}
	if p.Limiter, err = ratelimit.New(storage.Limits); err != nil {
		errs = append(errs, err)
	}
	if p.Mail, err = mailer(p.HTTP); err != nil {
		errs = append(errs, err)
	}
	return p, errors.Join(errs...)
}

// list splits a comma-separated variable, dropping empty entries.
func list(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func publicOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		n, err := handlers.ParseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %v", varOrigins, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// keys makes the key custodian from the MASTER_KEY secret: the standard
// base64 encoding of 32 random bytes. The error never includes the value.
func keys() (storage.Keys, error) {
	s := strings.TrimSpace(jsbridge.Var(secretMasterKey))
	if s == "" {
		return nil, fmt.Errorf("secret %s is not set (wrangler secret put %s; value: base64 of %d random bytes)", secretMasterKey, secretMasterKey, keyring.MasterKeySize)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != keyring.MasterKeySize {
		clear(raw)
		return nil, fmt.Errorf("secret %s must be the standard base64 encoding of exactly %d bytes", secretMasterKey, keyring.MasterKeySize)
	}
	// Wrapping, unwrapping and MAC in Go; data keys seal and open messages
	// of webcrypto.Threshold bytes and more through WebCrypto (docs/edge.md).
	k, err := keyring.NewWith(raw, keyring.Options{NewDataKey: webcrypto.NewDataKey})
	clear(raw)
	return k, err
}

// unavailable answers every request of a misconfigured worker with a 503
// that says what to fix (names of bindings and secrets, never values).
func unavailable(cause error) http.Handler {
	msg := "this worker is not configured: " + strings.ReplaceAll(cause.Error(), "\n", "; ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.WriteHomeError(w, handlers.RequestID(r), http.StatusServiceUnavailable, "not_configured", msg)
	})
}

// limitBody refuses request bodies larger than any route accepts before the
// application reads them, and drains a body a route stopped reading.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > handlers.MaxRequestBody {
			handlers.WriteHomeError(w, handlers.RequestID(r), http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("request body exceeds %d bytes", handlers.MaxRequestBody))
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &drainingBody{r: r.Body}
		r.Body = http.MaxBytesReader(w, body, handlers.MaxRequestBody)
		next.ServeHTTP(&drainingWriter{ResponseWriter: w, body: body}, r)
	})
}

// maxDrain is the most of a partly read request body drained before the
// response starts; like net/http's server (256 KiB), a larger rest is left.
const maxDrain = 256 << 10

// drainingBody and drainingWriter read the rest of a request body that a
// route began to read but did not finish (the application's own size limit
// answering 413, a malformed JSON body answering 400) before the response
// starts.
//
// Under wrangler dev, a worker that answers while its request body is
// partly read breaks the next request: in workerd it failed with "Your
// worker restarted mid-request" or hung for about 25 s, and a plain
// JavaScript worker doing the same gets "Network connection lost" (workerd
// issue 1741; workers-sdk issues 5095 and 15203). Wrangler's own middleware
// drains a body nobody touched, but cannot drain one whose stream is already
// locked by a reader, as ours is once Go reads from it. Draining after the
// response has started is no cure: the Go runtime then exits while the
// runtime still calls into it. So the rest is read before the first byte of
// the response, and only for a body that was partly read; the cap bounds
// the CPU this spends. No route streams a response while still reading its
// body; one that did would have the rest of its body drained here.
type drainingBody struct {
	r         io.ReadCloser
	read, eof bool
}

func (b *drainingBody) Read(p []byte) (int, error) {
	b.read = true
	n, err := b.r.Read(p)
	if err != nil {
		b.eof = true // EOF or a broken stream: nothing more to drain
	}
	return n, err
}

func (b *drainingBody) Close() error { return b.r.Close() }

func (b *drainingBody) drain() {
	if b.read && !b.eof {
		io.Copy(io.Discard, io.LimitReader(b, maxDrain))
	}
}

type drainingWriter struct {
	http.ResponseWriter
	body *drainingBody
	once sync.Once
}

func (w *drainingWriter) WriteHeader(status int) {
	w.once.Do(w.body.drain)
	w.ResponseWriter.WriteHeader(status)
}

func (w *drainingWriter) Write(p []byte) (int, error) {
	w.once.Do(w.body.drain)
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the runtime's writer.
func (w *drainingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// joinHeaders undoes syumai's request conversion, which splits every header
// value at each comma (so "User-Agent: Mozilla/5.0 (KHTML, like Gecko)"
// arrived as two values, and Header.Get returned half of it). workerd hands
// over each header as one value with repeated fields already combined, and
// the split keeps every byte, so joining with "," restores it exactly.
func joinHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.Header {
			if len(vs) > 1 {
				r.Header[k] = []string{strings.Join(vs, ",")}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// skipEmptyWrites drops zero-length writes to the response. syumai's
// response stream hands a zero-length write to JavaScript as a pull that
// enqueues nothing, and a ReadableStream does not pull again for a read
// that was already waiting: a reader in JavaScript (the entry module
// reading a stream's first answer, the realtime object reading a poll's)
// then waits forever, and workerd cancels the request as hung. Seen with
// an SSE answer that had no events yet (w.Write of an empty body).
func skipEmptyWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(nonEmptyWriter{w}, r)
	})
}

type nonEmptyWriter struct{ http.ResponseWriter }

func (w nonEmptyWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the runtime's writer.
func (w nonEmptyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
