// Command pommy runs the local (self-hosted) home of Pommy Edge: the
// application's wasip1 guest in a wazero host, with embedded SQLite, a
// local KV store, blobs in files (or any S3-compatible store) and a master
// key file. No account and no network are needed:
//
//	go run ./cmd/pommy            # or: make run
//	Pommy Edge listening on http://127.0.0.1:8787
//
// Everything lives under --data (default ./data): master.key (made on first
// run, mode 0600), pommy.db, kv.db, blobs/ and the compilation cache.
// Ctrl-C or SIGTERM drains running requests, then closes the stores.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/wasm/host"
	"pommy.ai/edge/wasm/host/blobs3"
	"pommy.ai/edge/wasm/host/egress"
	"pommy.ai/edge/wasm/host/local"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "audit" {
		os.Exit(auditMain(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pommy:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, func(addr string) {
		fmt.Printf("Pommy Edge listening on http://%s\n", addr)
		// A second Ctrl-C kills at once; the first drains.
		go func() { <-ctx.Done(); stop() }()
	}); err != nil {
		fmt.Fprintln(os.Stderr, "pommy:", err)
		os.Exit(1)
	}
}

// config is the command's settings, from flags, then environment, then
// defaults.
type config struct {
	addr, data string
	module     string
	s3         blobs3.Config
	pool       int
	perRequest bool
	maxQueue   int
	queueWait  time.Duration
	// streamHeartbeat and maxStreams configure the hub that holds the
	// streams (docs/realtime.md).
	streamHeartbeat time.Duration
	maxStreams      int
	timeout         time.Duration
	scheduleEvry    time.Duration
	jobWorkers      int
	jobsEvery       time.Duration
	egressAllow     []string
	egressPriv      bool
	clientIPHdr     string
	origins         []string
	logLevel        slog.Level
	// widgetDemo is the loopback address of the widget's demo host page
	// (demo.go); empty: none.
	widgetDemo string

	// The HTTP server's limits (host.ServerOptions, host.Options).
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	bodyReadTimeout   time.Duration
	bodyMinRate       int

	// mail is the mail service (mail.go).
	mail mailConfig
	// mailLog is where the log mail service prints (default os.Stderr).
	mailLog io.Writer
}

func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	var envErrs []error
	str := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	// Typed defaults from the environment; a malformed variable is an
	// error, not silently the default.
	parsed := func(name string, def any, parse func(string) (any, error)) any {
		v := getenv(name)
		if v == "" {
			return def
		}
		x, err := parse(v)
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s=%q: %v", name, v, err))
			return def
		}
		return x
	}
	parseInt := func(s string) (any, error) { return strconv.Atoi(s) }
	parseBool := func(s string) (any, error) { return strconv.ParseBool(s) }
	parseDur := func(s string) (any, error) { return time.ParseDuration(s) }

	fs := flag.NewFlagSet("pommy", flag.ContinueOnError)
	fs.SetOutput(out)
	var allow, level, origins string
	fs.StringVar(&c.addr, "addr", str("POMMY_ADDR", "127.0.0.1:8787"), "listen `address` (POMMY_ADDR)")
	fs.StringVar(&c.data, "data", str("POMMY_DATA", "./data"), "data `directory`: master key, databases, blobs, compilation cache (POMMY_DATA)")
	fs.StringVar(&c.module, "module", str("POMMY_MODULE", ""), "guest Wasm `file` (POMMY_MODULE; default: the embedded guest, else build/guest.wasm, rebuilt when stale in a checkout)")
	fs.StringVar(&c.s3.Endpoint, "s3-endpoint", str("POMMY_S3_ENDPOINT", ""), "S3-compatible store `URL` for blobs; empty with a bucket means AWS (POMMY_S3_ENDPOINT)")
	fs.StringVar(&c.s3.Bucket, "s3-bucket", str("POMMY_S3_BUCKET", ""), "keep blobs in this S3 `bucket` instead of files under --data (POMMY_S3_BUCKET)")
	fs.StringVar(&c.s3.Region, "s3-region", str("POMMY_S3_REGION", "us-east-1"), "S3 `region` (POMMY_S3_REGION)")
	fs.StringVar(&c.s3.AccessKey, "s3-access-key", str("POMMY_S3_ACCESS_KEY", ""), "S3 access `key` (POMMY_S3_ACCESS_KEY; default: the AWS credential chain)")
	// The secret's environment value is applied after parsing so that
	// --help never prints it as a default.
	fs.StringVar(&c.s3.SecretKey, "s3-secret-key", "", "S3 `secret` key; prefer POMMY_S3_SECRET_KEY, since flags show in ps")
	fs.IntVar(&c.pool, "pool", parsed("POMMY_POOL", 0, parseInt).(int), "most guest instances alive at once, and so requests served at once; 0: one per CPU (POMMY_POOL)")
	fs.BoolVar(&c.perRequest, "instance-per-request", parsed("POMMY_INSTANCE_PER_REQUEST", false, parseBool).(bool), "give every request a fresh guest instance, as the edge does (POMMY_INSTANCE_PER_REQUEST)")
	fs.IntVar(&c.maxQueue, "max-queue", parsed("POMMY_MAX_QUEUE", 0, parseInt).(int), "most requests waiting for a guest instance; more get 503 overloaded at once; 0: 4 per instance (POMMY_MAX_QUEUE)")
	fs.DurationVar(&c.queueWait, "queue-wait", parsed("POMMY_QUEUE_WAIT", time.Second, parseDur).(time.Duration), "longest a request waits for a guest instance before 503 overloaded (POMMY_QUEUE_WAIT)")
	fs.DurationVar(&c.streamHeartbeat, "stream-heartbeat", parsed("POMMY_STREAM_HEARTBEAT", host.DefaultStreamHeartbeat, parseDur).(time.Duration), "how `often` a held event stream gets a ping event, so clients can tell a quiet stream from a dead one (POMMY_STREAM_HEARTBEAT)")
	fs.IntVar(&c.maxStreams, "max-streams", parsed("POMMY_MAX_STREAMS", host.DefaultMaxStreams, parseInt).(int), "most event streams and waiting long-polls held at once; more are refused with too_many_streams (POMMY_MAX_STREAMS)")
	fs.DurationVar(&c.timeout, "timeout", parsed("POMMY_TIMEOUT", 30*time.Second, parseDur).(time.Duration), "each request's `deadline` (POMMY_TIMEOUT)")
	fs.DurationVar(&c.readHeaderTimeout, "read-header-timeout", parsed("POMMY_READ_HEADER_TIMEOUT", host.DefaultReadHeaderTimeout, parseDur).(time.Duration), "how long a client has to send a request's line and headers (POMMY_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", parsed("POMMY_IDLE_TIMEOUT", host.DefaultIdleTimeout, parseDur).(time.Duration), "how long a kept-alive connection may wait for its next request (POMMY_IDLE_TIMEOUT)")
	fs.IntVar(&c.maxHeaderBytes, "max-header-bytes", parsed("POMMY_MAX_HEADER_BYTES", host.DefaultMaxHeaderBytes, parseInt).(int), "largest request line and headers, in `bytes`; more gets 431 (POMMY_MAX_HEADER_BYTES)")
	fs.DurationVar(&c.bodyReadTimeout, "body-read-timeout", parsed("POMMY_BODY_READ_TIMEOUT", host.DefaultBodyReadTimeout, parseDur).(time.Duration), "a body of up to 1 MiB must arrive whole within this `time`, and every read of a larger one make progress within it; else 408 (POMMY_BODY_READ_TIMEOUT)")
	fs.IntVar(&c.bodyMinRate, "body-min-rate", parsed("POMMY_BODY_MIN_RATE", host.DefaultBodyMinRate, parseInt).(int), "slowest average, in `bytes/s`, at which the part of a body beyond 1 MiB may arrive; 0: no minimum (POMMY_BODY_MIN_RATE)")
	fs.DurationVar(&c.scheduleEvry, "schedule-every", parsed("POMMY_SCHEDULE_EVERY", time.Minute, parseDur).(time.Duration), "run the scheduled work this `often`; 0 disables it (POMMY_SCHEDULE_EVERY)")
	fs.IntVar(&c.jobWorkers, "job-workers", parsed("POMMY_JOB_WORKERS", 2, parseInt).(int), "guest `instances` that run background jobs (webhook deliveries, snooze wake-ups) and the scheduled work, besides --pool: requests never wait for them, and each holds at most one job at a time; 0 runs no jobs (POMMY_JOB_WORKERS)")
	fs.DurationVar(&c.jobsEvery, "jobs-every", parsed("POMMY_JOBS_EVERY", time.Second, parseDur).(time.Duration), "how `often` an idle job worker looks for due jobs (POMMY_JOBS_EVERY)")
	fs.StringVar(&allow, "egress-allow", str("POMMY_EGRESS_ALLOW", ""), "comma-separated host[:port] `patterns` outbound HTTP may reach, e.g. api.openai.com,*.example.com; empty: none (POMMY_EGRESS_ALLOW)")
	fs.BoolVar(&c.egressPriv, "egress-private", parsed("POMMY_EGRESS_PRIVATE", false, parseBool).(bool), "let outbound HTTP reach loopback and private addresses (an AI model or a tool on the operator's own network) when --egress-allow names them; off: refused, so a tenant's tool URL cannot probe the network around the server (POMMY_EGRESS_PRIVATE)")
	fs.StringVar(&origins, "public-origin", str("POMMY_PUBLIC_ORIGIN", ""), "comma-separated `origins` (scheme://host[:port]) people reach this server at, e.g. https://support.example.com; requests for any other Host get 421. Default on a loopback --addr: its http://127.0.0.1, localhost and [::1] origins; required on any other address (POMMY_PUBLIC_ORIGIN)")
	fs.StringVar(&c.clientIPHdr, "client-ip-header", str("POMMY_CLIENT_IP_HEADER", ""), "`header` a trusted reverse proxy sets to the client's address (e.g. X-Real-IP); empty: the peer address. Set it behind a proxy, or every client shares the proxy's login and abuse limits (POMMY_CLIENT_IP_HEADER)")
	fs.StringVar(&c.widgetDemo, "widget-demo", str("POMMY_WIDGET_DEMO", ""), "also serve, on this loopback `address` (e.g. 127.0.0.1:8790), a demo host page that embeds the widget of the tenant named by its ?tenant= query; add its origin to the tenant's allowed origins (POMMY_WIDGET_DEMO)")
	c.mail.flags(fs, str)
	fs.StringVar(&level, "log-level", str("POMMY_LOG_LEVEL", "info"), "debug, info, warn or error (POMMY_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: pommy [flags]\n\nRuns the Pommy Edge local home: the application's guest in a wazero host,\non embedded stores under --data. Every flag can also be set through the\nenvironment variable named with it; a flag wins over its variable.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if len(envErrs) > 0 {
		return c, errors.Join(envErrs...)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if c.s3.SecretKey == "" {
		c.s3.SecretKey = getenv("POMMY_S3_SECRET_KEY")
	}
	if err := c.mail.check(getenv); err != nil {
		return c, err
	}
	switch {
	case c.pool < 0:
		return c, fmt.Errorf("--pool must be 0 or more, not %d", c.pool)
	case c.maxQueue < 0:
		return c, fmt.Errorf("--max-queue must be 0 or more, not %d", c.maxQueue)
	case c.queueWait <= 0:
		return c, fmt.Errorf("--queue-wait must be positive, not %v", c.queueWait)
	case c.timeout <= 0:
		return c, fmt.Errorf("--timeout must be positive, not %v", c.timeout)
	case c.streamHeartbeat <= 0:
		return c, fmt.Errorf("--stream-heartbeat must be positive, not %v", c.streamHeartbeat)
	case c.maxStreams < 1:
		return c, fmt.Errorf("--max-streams must be at least 1, not %d", c.maxStreams)
	case c.readHeaderTimeout <= 0 || c.idleTimeout <= 0 || c.bodyReadTimeout <= 0:
		return c, errors.New("--read-header-timeout, --idle-timeout and --body-read-timeout must be positive")
	case c.maxHeaderBytes < 4<<10:
		return c, fmt.Errorf("--max-header-bytes must be at least 4096, not %d", c.maxHeaderBytes)
	case c.bodyMinRate < 0:
		return c, fmt.Errorf("--body-min-rate must be 0 or more, not %d", c.bodyMinRate)
	case c.jobWorkers < 0 || c.jobWorkers > 64:
		return c, fmt.Errorf("--job-workers must be 0 to 64, not %d", c.jobWorkers)
	case c.jobsEvery <= 0:
		return c, fmt.Errorf("--jobs-every must be more than 0, not %v", c.jobsEvery)
	case c.scheduleEvry < 0:
		return c, fmt.Errorf("--schedule-every must be 0 or more, not %v", c.scheduleEvry)
	case c.s3.Bucket == "" && (c.s3.Endpoint != "" || c.s3.AccessKey != "" || c.s3.SecretKey != ""):
		return c, errors.New("S3 settings without --s3-bucket: set the bucket, or drop the other S3 settings to keep blobs in files")
	}
	for _, a := range strings.Split(allow, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.egressAllow = append(c.egressAllow, a)
		}
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			n, err := handlers.ParseOrigin(o)
			if err != nil {
				return c, fmt.Errorf("--public-origin: %v", err)
			}
			c.origins = append(c.origins, n)
		}
	}
	if c.widgetDemo != "" {
		if err := checkDemoAddr(c.widgetDemo); err != nil {
			return c, err
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	c.s3.UsePathStyle = c.s3.Endpoint != "" // self-hosted stores rarely serve virtual hosts
	return c, nil
}

// run starts the home and serves until ctx ends, then shuts down cleanly:
// the server stops accepting and drains, the host closes its instances, and
// the stores close last. ready is called with the listening address.
func run(ctx context.Context, c config, log *slog.Logger, ready func(addr string)) (err error) {
	// The same assembly of stores the tests and benchmarks use.
	// Listen first: the default public origins name the port actually
	// bound (--addr may say :0).
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	origins, err := publicOrigins(c.origins, ln.Addr())
	if err != nil {
		return err
	}
	var demoLn net.Listener
	if c.widgetDemo != "" {
		if demoLn, err = net.Listen("tcp", c.widgetDemo); err != nil {
			return fmt.Errorf("--widget-demo: %w", err)
		}
		defer demoLn.Close()
	}
	p, err := local.Open(ctx, local.Config{Dir: c.data, S3: c.s3, Egress: egress.Options{Allow: c.egressAllow, AllowPrivateNetworks: c.egressPriv}})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if p.MasterKeyCreated {
		log.Warn("created a new master key; back it up: without it the data cannot be read",
			"path", filepath.Join(c.data, "master.key"))
	}
	if c.s3.Bucket != "" {
		log.Info("blobs in S3", "bucket", c.s3.Bucket, "endpoint", c.s3.Endpoint)
	}
	mailer, mailDesc, err := c.mail.mailer(cmp.Or[io.Writer](c.mailLog, os.Stderr))
	if err != nil {
		return err
	}
	p.Mail = mailer
	if c.mail.url == "" {
		log.Warn("mail is not configured: outgoing mail (verification and reset links) is printed to this log; configure --smtp-url to send it")
	} else {
		log.Info("mail", "service", mailDesc)
	}

	module, source, err := loadModule(c.module, log)
	if err != nil {
		return err
	}
	h, err := host.New(ctx, host.Options{
		Module:             module,
		CacheDir:           filepath.Join(c.data, "cache"),
		Pool:               c.pool,
		InstancePerRequest: c.perRequest,
		MaxQueue:           c.maxQueue,
		QueueWait:          c.queueWait,
		StreamHeartbeat:    c.streamHeartbeat,
		MaxStreams:         c.maxStreams,
		Timeout:            c.timeout,
		BodyReadTimeout:    c.bodyReadTimeout,
		BodyMinRate:        bodyMinRate(c.bodyMinRate),
		JobWorkers:         jobWorkers(c.jobWorkers),
		JobEvery:           c.jobsEvery,
		Platform:           p.Platform,
		Config:             handlers.Config{ClientIPHeader: c.clientIPHdr, PublicOrigins: origins},
		Logger:             log,
	})
	if err != nil {
		return err
	}
	st := h.Stats()
	log.Info("guest ready", "module", source, "bytes", len(module), "compile", st.Compile.Round(time.Millisecond),
		"instantiate", st.LastInstantiate.Round(time.Microsecond), "host_version", version)

	log.Info("public origins", "origins", strings.Join(origins, " "))
	srv := host.NewServer(h, host.ServerOptions{
		ReadHeaderTimeout: c.readHeaderTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    c.maxHeaderBytes,
		Logger:            log,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if c.jobWorkers > 0 {
		go h.ScheduleJobs(ctx)
	}
	if c.scheduleEvry > 0 {
		go h.Schedule(ctx, c.scheduleEvry)
		go sweepKV(ctx, p, c.scheduleEvry, log)
	}
	if demoLn != nil {
		demo := serveDemo(demoLn, origins[0], log)
		defer demo.Close()
		log.Info("widget demo page", "url", "http://"+demoLn.Addr().String()+"/?tenant=", "allowed_origin", "http://"+demoLn.Addr().String())
	}
	ready(ln.Addr().String())

	select {
	case err = <-served:
		// The listener failed on its own.
	case <-ctx.Done():
		log.Info("shutting down: draining requests")
	}
	// Requests get their own deadline plus a margin to finish.
	drain, cancel := context.WithTimeout(context.Background(), c.timeout+5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(drain); serr != nil && err == nil {
		err = fmt.Errorf("draining requests: %w", serr)
	}
	if herr := h.Close(drain); herr != nil && err == nil {
		err = herr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// publicOrigins are the configured origins, or on a loopback address the
// origins a browser on this machine uses for it. Anywhere else the operator
// must say: guessing from the listening address would either trust any
// Host or refuse the name people actually use.
func publicOrigins(configured []string, addr net.Addr) ([]string, error) {
	if len(configured) > 0 {
		return configured, nil
	}
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil, fmt.Errorf("--public-origin is required when listening on %s: give the origin people reach this server at (e.g. https://support.example.com), so that requests for other host names, such as a DNS-rebinding page's, are refused", addr)
	}
	port := strconv.Itoa(ta.Port)
	return []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://[::1]:" + port}, nil
}

// bodyMinRate maps the flag's "0: none" onto host.Options' "negative:
// none".
func bodyMinRate(flag int) int64 {
	if flag == 0 {
		return -1
	}
	return int64(flag)
}

// sweepKV deletes expired KV entries, host-side upkeep that Workers KV does
// by itself at the edge. Reads never see expired entries either way; this
// only reclaims their space.
// jobWorkers maps the flag (0: none) onto host.Options (negative: none).
func jobWorkers(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func sweepKV(ctx context.Context, p *local.Platform, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := p.KV.Sweep(ctx); err != nil && ctx.Err() == nil {
				log.Error("KV sweep failed", "err", err)
			} else if n > 0 {
				log.Debug("KV sweep", "expired", n)
			}
		}
	}
}
