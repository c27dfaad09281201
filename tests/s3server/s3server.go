// Package s3server starts a real S3-compatible server on loopback for tests:
// versitygw (github.com/versity/versitygw) with its posix backend on a
// temporary directory.
//
// The binary is built from the Go module proxy on first use (about a minute)
// into a cache shared by all checkouts: $POMMY_TOOLS_DIR/bin if set, else
// $(go env GOCACHE)/../pommy-tools/bin. $POMMY_VERSITYGW names a prebuilt
// binary to use instead. Tests that need the server fail, with the reason,
// when it cannot be built or started; POMMY_SKIP_S3=1 skips them explicitly.
package s3server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the versitygw release the helper builds.
const Version = "v1.8.0"

const module = "github.com/versity/versitygw/cmd/versitygw"

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	Bucket    string // created and empty at start
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root

	bin  string
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *logBuffer
}

// Start builds (if needed) and starts a server for the test, creates a
// bucket and registers Stop with tb.Cleanup. It fails tb if the server
// cannot be had, unless POMMY_SKIP_S3=1, in which case it skips.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if os.Getenv("POMMY_SKIP_S3") == "1" {
		tb.Skip("POMMY_SKIP_S3=1: S3-compatible server tests skipped")
	}
	bin, err := Binary()
	if err != nil {
		tb.Fatalf("s3server: cannot build versitygw %s (set POMMY_SKIP_S3=1 to skip S3 tests explicitly): %v", Version, err)
	}
	s, err := StartBinary(bin, tb.TempDir())
	if err != nil {
		tb.Fatalf("s3server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartBinary starts the versitygw at bin with its data in dir.
func StartBinary(bin, dir string) (*Server, error) {
	s := &Server{
		Region:    "us-east-1",
		Bucket:    "pommy-test",
		AccessKey: "pommytestaccess",
		SecretKey: "pommytestsecret-0123456789",
		Dir:       filepath.Join(dir, "s3data"),
		bin:       bin,
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.addr, err = freeAddr()
		if err != nil {
			return nil, err
		}
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("create bucket: %w\n%s", err, s.logs)
	}
	return s, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = &logBuffer{}
	cmd := exec.Command(s.bin,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--port", s.addr,
		"--quiet",
		"posix", s.Dir)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited at start (%v):\n%s", err, s.logs)
		default:
		}
		if resp, err := http.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			break // any HTTP answer (403 included) means it serves
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw did not answer on %s within 30s:\n%s", s.addr, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd = cmd
	go func() {
		// Keep the exit status from going unreaped; Stop waits on done.
		err := <-exited
		s.mu.Lock()
		s.logs.WriteString(fmt.Sprintf("versitygw exited: %v\n", err))
		s.mu.Unlock()
	}()
	return nil
}

// Stop ends the server (it can be restarted with Restart). Its data stays.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Kill()
	// Wait until the port is free so Restart can bind it again.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts a stopped server again on the same address and data.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Client returns an S3 client for the server.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Logs is what the server printed.
func (s *Server) Logs() string { return s.logs.String() }

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) WriteString(s string) { l.Write([]byte(s)) }

func (l *logBuffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ToolsDir is where built test tools are kept.
func ToolsDir() (string, error) {
	if d := os.Getenv("POMMY_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "bin"), nil
	}
	out, err := exec.Command(goTool(), "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	cache := strings.TrimSpace(string(out))
	if cache == "" || cache == "off" {
		return "", errors.New("GOCACHE is off; set POMMY_TOOLS_DIR")
	}
	return filepath.Join(filepath.Dir(cache), "pommy-tools", "bin"), nil
}

func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if runtime.GOOS == "windows" {
		p += ".exe"
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// Binary returns the path of versitygw Version, building it when missing.
// Concurrent callers (parallel test binaries) build it once.
func Binary() (string, error) {
	if p := os.Getenv("POMMY_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("POMMY_VERSITYGW: %w", err)
		}
		return p, nil
	}
	dir, err := ToolsDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw-"+Version)
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, ".versitygw.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	fmt.Fprintln(os.Stderr, "building versitygw (S3-compatible test server)...")
	gobin, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(gobin)
	cmd := exec.Command(goTool(), "install", module+"@"+Version)
	cmd.Dir = os.TempDir() // outside any module
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", module, Version, err, out)
	}
	built := filepath.Join(gobin, "versitygw")
	if runtime.GOOS == "windows" {
		built += ".exe"
	}
	if err := os.Rename(built, bin); err != nil {
		return "", err
	}
	return bin, nil
}
