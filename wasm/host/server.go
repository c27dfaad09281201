package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pommy.ai/edge/handlers"
)

// The local home's HTTP server: the one the command runs and the end-to-end
// tests start, so that what is tested is what ships. Besides the Host's own
// rules (body.go, serve.go) it bounds every connection's header phase and
// idle time and the size of the header block, closes HTTP/1.0 connections
// after each response, and gives the responses net/http writes by itself,
// before any handler runs (431, 400, 505, 501, 417), the platform's JSON
// error shape and full header set.

const (
	// DefaultReadHeaderTimeout is how long a client has to send the
	// request line and headers once it starts a request.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a kept-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds the request line and headers (net/http
	// allows 4 KiB more than it says).
	DefaultMaxHeaderBytes = 64 << 10
)

// ServerOptions configure NewServer; zero values take the defaults.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration // DefaultReadHeaderTimeout
	IdleTimeout       time.Duration // DefaultIdleTimeout
	MaxHeaderBytes    int           // DefaultMaxHeaderBytes
	// Logger receives net/http's own errors (default: the host's).
	Logger *slog.Logger
}

// Server serves a Host over HTTP/1.1 (and 1.0), in plain text: TLS is the
// reverse proxy's. Create it with NewServer and run it with Serve.
type Server struct {
	h         *Host
	srv       *http.Server
	log       *slog.Logger
	maxHeader int
}

// NewServer returns the server for h.
func NewServer(h *Host, o ServerOptions) *Server {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.Logger == nil {
		o.Logger = h.log
	}
	s := &Server{h: h, log: o.Logger, maxHeader: o.MaxHeaderBytes}
	var protos http.Protocols
	protos.SetHTTP1(true)
	s.srv = &http.Server{
		Handler:           s.guard(h),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Protocols:         &protos,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*serverConn); ok {
				ctx = context.WithValue(ctx, serverConnKey{}, sc)
			}
			return ctx
		},
	}
	return s
}

// Serve accepts connections on ln until Shutdown or Close, like
// http.Server.Serve (it returns http.ErrServerClosed after them).
func (s *Server) Serve(ln net.Listener) error {
	return s.srv.Serve(&serverListener{Listener: ln, s: s})
}

// Shutdown stops accepting, ends the streams the host holds (net/http
// no longer tracks their connections) and waits for the requests in
// progress until ctx ends, like http.Server.Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.h.hub.close()
	return s.srv.Shutdown(ctx)
}

// Close closes the listener, every connection and every held stream at
// once.
func (s *Server) Close() error {
	s.h.hub.close()
	return s.srv.Close()
}

type serverConnKey struct{}

// guard runs the handler for a request, marking its connection as
// answering, so that the connection can tell net/http's own responses
// (written while no handler runs) from the handler's.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(serverConnKey{}).(*serverConn)
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		if !r.ProtoAtLeast(1, 1) {
			// net/http ignores (and deletes) Transfer-Encoding on an
			// HTTP/1.0 request and frames it by Content-Length; RFC 9112
			// §6.1 then asks to close the connection after the
			// response, since a sender may have meant otherwise.
			w.Header().Set("Connection", "close")
		}
		c.answering.Add(1)
		defer c.answering.Add(-1)
		next.ServeHTTP(w, r)
		if c.hijacked.Load() {
			return
		}
		// Everything of the response but a chunked body's last line
		// goes out now, while the connection knows it is the
		// handler's.
		http.NewResponseController(w).Flush()
		if strings.EqualFold(w.Header().Get("Connection"), "close") {
			c.linger.Store(true)
		}
	})
}

type serverListener struct {
	net.Listener
	s *Server
}

func (l *serverListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: c, s: l.s}, nil
}

// serverConn is a connection of the Server.
type serverConn struct {
	net.Conn
	s *Server
	// answering counts the handlers running on the connection (at most
	// one in HTTP/1).
	answering atomic.Int32
	// linger: the connection closes after an error whose request may not
	// have been read whole; close it gently (lingerClose).
	linger atomic.Bool
	// hijacked: the hub took the connection for a held stream
	// (stream.go); net/http no longer writes to it.
	hijacked  atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Write passes the handler's bytes through and rewrites a response that
// net/http writes by itself (no handler running) into the platform's.
func (c *serverConn) Write(p []byte) (int, error) {
	if c.answering.Load() == 0 {
		if out, ok := c.s.rewrite(p, c.RemoteAddr()); ok {
			c.linger.Store(true)
			if _, err := c.Conn.Write(out); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// CloseWrite lets net/http half-close the connection as it would a
// *net.TCPConn.
func (c *serverConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// Close closes the connection. After an error answer it first half-closes
// it and reads what the client still sends, briefly, in the background:
// closing a socket with unread bytes resets it, and a client may then lose
// the answer before it has read it.
func (c *serverConn) Close() error {
	c.closeOnce.Do(func() {
		if !c.linger.Load() {
			c.closeErr = c.Conn.Close()
			return
		}
		go func() {
			c.CloseWrite()
			c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.Conn, lingerBytes)
			c.Conn.Close()
		}()
	})
	return c.closeErr
}

// rewrite returns the platform's error response for p when p is the start
// of a response (status 400 or more) whose head ends in p: net/http writes
// its own errors in one piece, and only those are written while no handler
// runs.
func (s *Server) rewrite(p []byte, remote net.Addr) ([]byte, bool) {
	status, reason, ok := parseCannedHead(p)
	if !ok {
		return nil, false
	}
	status, code, msg := s.cannedError(status, reason)
	id := handlers.NewRequestID()
	s.log.Debug("refused a request net/http could not take", "status", status, "code", code, "remote", remote, "request", id)
	return errorResponse(status, code, msg, id), true
}

// parseCannedHead reads the status line of a response head that ends
// within p, refusing anything but an error status.
func parseCannedHead(p []byte) (status int, reason string, ok bool) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(p, []byte("HTTP/1.0 ")) {
		return 0, "", false
	}
	if !bytes.Contains(p, []byte("\r\n\r\n")) {
		return 0, "", false
	}
	line := p[:bytes.Index(p, []byte("\r\n"))]
	if len(line) < 12 || len(line) > 12 && line[12] != ' ' {
		return 0, "", false
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 400 || status > 599 {
		return 0, "", false
	}
	if len(line) > 13 {
		reason = string(line[13:])
	}
	return status, reason, true
}

// cannedError maps net/http's own refusals onto the API's statuses and
// codes.
func (s *Server) cannedError(status int, reason string) (int, string, string) {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return status, "headers_too_large", fmt.Sprintf("the request line and headers exceed %d bytes", s.maxHeader)
	case http.StatusNotImplemented:
		// net/http's only 501: a Transfer-Encoding other than one
		// "chunked". Any Transfer-Encoding is refused alike (serve.go).
		return http.StatusLengthRequired, "length_required", lengthRequiredMessage
	case http.StatusHTTPVersionNotSupported:
		return status, "http_version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served"
	case http.StatusExpectationFailed:
		return status, "expectation_failed", "only Expect: 100-continue is supported"
	case http.StatusBadRequest:
		msg := "the request is not valid HTTP/1.1"
		// net/http's detail ("malformed Host header") is a constant of
		// its own; checked anyway before it is repeated.
		if d, ok := strings.CutPrefix(reason, "Bad Request: "); ok && plainText(d) {
			msg += ": " + d
		}
		return status, "bad_request", msg
	}
	text := http.StatusText(status)
	if text == "" {
		text = "error"
	}
	return status, strings.ReplaceAll(strings.ToLower(text), " ", "_"), text
}

func plainText(s string) bool {
	if s == "" || len(s) > 80 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '-') {
			return false
		}
	}
	return true
}

// errorResponse is a whole HTTP/1.1 error response, as writeError makes
// one, that closes the connection.
func errorResponse(status int, code, msg, id string) []byte {
	body := handlers.ErrorBody(code, msg)
	h := http.Header{}
	handlers.SecurityHeaders(h)
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("X-Request-Id", id)
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %03d %s\r\n", status, http.StatusText(status))
	h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}
