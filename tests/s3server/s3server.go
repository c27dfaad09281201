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
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"pommy.ai/edge/tests/gotool"
)

// Version is the versitygw release this package builds.
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
	logs *gotool.LogBuffer
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
	s.logs = &gotool.LogBuffer{}
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

// tool is the server's build from the Go module proxy.
var tool = gotool.Tool{Name: "versitygw", Module: module, Version: Version, What: "the S3-compatible test server", Override: "POMMY_VERSITYGW", Env: nil}

// Binary returns the path of the server's binary (POMMY_VERSITYGW, or one built
// once per machine; package gotool).
func Binary() (string, error) { return tool.Binary() }
