package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage/storagetest"
	"pommy.ai/edge/tests/mailpit"
	"pommy.ai/edge/wasm/host"
	"pommy.ai/edge/wasm/host/egress"
	"pommy.ai/edge/wasm/host/local"
	"pommy.ai/edge/wasm/host/smtpmail"
)

var (
	// guest is the module under test, built from ./wasm/guest as the
	// Makefile builds it plus the test-only routes (-tags testroutes);
	// TestShippedGuest checks the build without them.
	guest []byte
	// cacheDir is the compilation cache shared by every host in the run.
	cacheDir string
)

func TestMain(m *testing.M) {
	if os.Getenv(streamClientsEnv) != "" {
		// A child process of TestThousandStreams: stream clients only.
		os.Exit(streamClientsMain())
	}
	dir, err := os.MkdirTemp("", "pommy-e2e")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "guest.wasm")
		cmd := exec.Command("go", "build", "-tags=testroutes", "-buildmode=c-shared", "-ldflags=-X main.version=e2e", "-o", out, "pommy.ai/edge/wasm/guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building the guest:", err)
			return 1
		}
		if guest, err = os.ReadFile(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cacheDir = filepath.Join(dir, "cache")
		return m.Run()
	}()
	os.Exit(code)
}

// mode is one way of running the host; the suites run in each.
type mode struct {
	name       string
	perRequest bool
}

var modes = []mode{{"pool", false}, {"instance-per-request", true}}

// home is a running local home: the host with the real guest, real stores
// in a temp dir, behind an HTTP server.
type home struct {
	url  string
	host *host.Host
	log  *syncBuffer
}

type homeOptions struct {
	perRequest bool
	timeout    time.Duration
	pool       int
	// local adjusts the store configuration (S3 instead of files).
	local func(*local.Config)
	// platform swaps adapters after the stores open (fault injection).
	platform func(*local.Platform)
	// server and the body limits configure the HTTP server as the
	// command's flags do (zero: the command's defaults).
	server          host.ServerOptions
	bodyReadTimeout time.Duration
	bodyMinRate     int64
	// maxQueue and queueWait bound the wait for an instance (zero: the
	// host's defaults).
	maxQueue  int
	queueWait time.Duration
	// The stream hub's options (zero: the host's defaults).
	streamHeartbeat time.Duration
	maxStreams      int
	// webhookAllow lists the tests' own webhook receivers (ip:port): the
	// test-only allow-list of the application and of the host's egress.
	webhookAllow []string
	// runJobs starts the host's job workers, looking for due jobs every
	// jobEvery (default 100ms).
	runJobs  bool
	jobEvery time.Duration
	// mailpit, when set, is the home's mail service: the SMTP adapter
	// sends to it (STARTTLS with AUTH when it has them), and the mail
	// contract suite reads it through its API (which the egress allows).
	// Without it the home has no mail service (mail jobs retry).
	mailpit *mailpit.Server
}

// mailFrom is the sender of the homes' mail.
const mailFrom = "Pommy <noreply@pommy.example>"

// smtpMailer is the SMTP adapter configured for mp, as cmd/pommy makes it.
func smtpMailer(t testing.TB, mp *mailpit.Server) *smtpmail.Mailer {
	t.Helper()
	host, port, _ := net.SplitHostPort(mp.SMTPAddr)
	srv := smtpmail.Server{Host: host, Port: port, Security: smtpmail.NoTLS}
	switch mp.Opts.TLS {
	case mailpit.TLSStartTLS:
		srv.Security = smtpmail.StartTLS
	case mailpit.TLSImplicit:
		srv.Security = smtpmail.ImplicitTLS
	}
	m, err := smtpmail.New(smtpmail.Config{Server: srv, User: mp.Opts.User, Password: mp.Opts.Password, From: mailFrom, RootCAs: mp.CertPool})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func startHome(t testing.TB, o homeOptions) *home {
	t.Helper()
	ctx := context.Background()
	// The outbound-HTTP suite talks to a loopback echo server, the only
	// destination the egress policy allows.
	echo := httptest.NewServer(storagetest.EchoHandler())
	t.Cleanup(echo.Close)
	// The same assembly of stores the command uses, in a temp dir.
	cfg := local.Config{
		Dir:    t.TempDir(),
		Egress: egress.Options{Allow: []string{echo.Listener.Addr().String()}, AllowPrivateNetworks: true, TestPublicAllow: o.webhookAllow},
	}
	appCfg := handlers.Config{TestRoutes: true, ContractHTTPURL: echo.URL, WebhookTestAllow: o.webhookAllow}
	if o.mailpit != nil {
		cfg.Egress.Allow = append(cfg.Egress.Allow, strings.TrimPrefix(o.mailpit.API, "http://"))
		appCfg.ContractMailURL = o.mailpit.API
	}
	if o.local != nil {
		o.local(&cfg)
	}
	p, err := local.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.mailpit != nil {
		p.Mail = smtpMailer(t, o.mailpit)
	}
	if o.platform != nil {
		o.platform(p)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})

	logs := &syncBuffer{}
	if o.timeout == 0 {
		o.timeout = 2 * time.Minute // a whole contract suite runs in one request
	}
	h, err := host.New(ctx, host.Options{
		Module:             guest,
		CacheDir:           cacheDir,
		Pool:               o.pool,
		InstancePerRequest: o.perRequest,
		Timeout:            o.timeout,
		BodyReadTimeout:    o.bodyReadTimeout,
		BodyMinRate:        o.bodyMinRate,
		MaxQueue:           o.maxQueue,
		QueueWait:          o.queueWait,
		StreamHeartbeat:    o.streamHeartbeat,
		MaxStreams:         o.maxStreams,
		Platform:           p.Platform,
		JobEvery:           cmp.Or(o.jobEvery, 100*time.Millisecond),
		Config:             appCfg,
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The server the command runs, on a loopback port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(h, o.server)
	go srv.Serve(ln)
	if o.runJobs {
		go h.ScheduleJobs(ctx) // ends when the host closes
	}
	t.Cleanup(func() {
		srv.Close()
		if err := h.Close(ctx); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", logs)
		}
	})
	return &home{url: "http://" + ln.Addr().String(), host: h, log: logs}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// errorCode returns the code of the platform's JSON error shape, or "" if
// the body is not one.
func (r response) errorCode() string {
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func (h *home) do(t testing.TB, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	return h.send(t, http.DefaultClient, method, path, body, header...)
}

// send makes a request with client; header holds name, value pairs.
func (h *home) send(t testing.TB, client *http.Client, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (h *home) get(t testing.TB, path string) response { return h.do(t, "GET", path, nil) }
