package web

import (
	"context"
	"net"
	"net/http"

	"pommy.ai/edge/storage"
)

// Client is what the application knows about where a request came from.
// The root middleware works it out once per request, from the home's
// configuration (which header a trusted proxy sets, whether this is the
// edge) and attaches it with WithClient, so capability packages need no
// configuration to ask.
type Client struct {
	// IP is the client's address.
	IP string
	// Country is the edge's CF-IPCountry, or "" where no trusted proxy
	// says.
	Country string
	// RequestID is the id the request is logged and answered under.
	RequestID string
}

type clientKey struct{}

// WithClient returns r carrying c.
func WithClient(r *http.Request, c Client) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
}

func client(r *http.Request) (Client, bool) {
	c, ok := r.Context().Value(clientKey{}).(Client)
	return c, ok
}

// ClientIP is the address the request came from, as the middleware found
// it (the trusted proxy's header or the peer). A request that did not pass
// the middleware (a unit test) gets the peer address.
func ClientIP(r *http.Request) string {
	if c, ok := client(r); ok && c.IP != "" {
		return c.IP
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// ClientCountry is the client's country code from the edge, or "".
func ClientCountry(r *http.Request) string {
	c, _ := client(r)
	return c.Country
}

// RequestID is the id the middleware gave the request ("" outside it).
func RequestID(r *http.Request) string {
	c, _ := client(r)
	return c.RequestID
}

// UserAgent is the request's User-Agent, cut to what is stored.
func UserAgent(r *http.Request) string { return Truncate(r.UserAgent(), 256) }

// Truncate cuts s to at most n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// HomePoll reports a home's re-poll of a stream it holds (docs/realtime.md):
// a GET carrying storage.StreamPollHeader, which both homes remove from
// what clients send, so only a home can set it.
func HomePoll(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get(storage.StreamPollHeader) != ""
}
