// Package egress is the host's storage.HTTPDoer: net/http behind an
// allow-list of destinations.
//
// Every request, and every redirect it follows, is checked before a
// connection is made: the scheme must be http or https and host:port must
// match an allow-list pattern. Then, at dial time, the resolved address is
// checked: loopback, private, link-local, CGNAT, multicast and unspecified
// addresses are refused unless AllowPrivateNetworks is set, so an allowed
// name that resolves (or is re-pointed by DNS) inward cannot reach the
// host's own network. Refusals wrap storage.ErrInvalid; a destination that
// cannot be reached (refused connection, DNS failure, timeout) wraps
// storage.ErrUnavailable.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pommy.ai/edge/storage"
)

// Options configure a Client.
type Options struct {
	// Allow lists the destinations requests may go to, as host[:port]
	// patterns:
	//
	//	api.openai.com         that host on the scheme's default port
	//	api.openai.com:8443    that host on port 8443
	//	*.example.com          any subdomain (not example.com itself), default port
	//	127.0.0.1:*            that host on any port
	//	[::1]:8080             an IPv6 literal
	//
	// Host names match case-insensitively. An empty list allows nothing.
	Allow []string
	// AllowPrivateNetworks permits connections to loopback, private and
	// link-local addresses (tests, a self-hosted model on the LAN).
	AllowPrivateNetworks bool
	// Timeout bounds a whole exchange, reading the body included
	// (default 2 minutes). Streaming responses that may run longer should
	// set a longer one; a request's own context deadline also applies.
	Timeout time.Duration
	// DialTimeout bounds connecting (default 10 s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is sent (default 60 s).
	ResponseHeaderTimeout time.Duration
	// MaxResponseBytes caps a response body (default 64 MiB; negative: no cap).
	// A larger body fails with ErrResponseTooLarge: before Do returns when
	// Content-Length announces it, else from Read when the cap is passed.
	MaxResponseBytes int64
	// MaxRedirects caps redirects followed (default 5; negative: none).
	MaxRedirects int

	// TestPublicAllow lists exact ip:port destinations that requests under
	// the public-HTTPS policy (storage.EgressPublicHTTPS: webhooks) may
	// reach although they are not public, over http too: the tests' own
	// receivers on loopback. Only tests set it; the command has no flag
	// for it, and Allow and AllowPrivateNetworks never widen that policy.
	TestPublicAllow []string
}

// ErrResponseTooLarge is returned when a response passes MaxResponseBytes.
var ErrResponseTooLarge = errors.New("egress: response body too large")

// Client is a storage.HTTPDoer with an egress policy.
type Client struct {
	allow []pattern
	opts  Options
	http  *http.Client
	// public sends requests under storage.EgressPublicHTTPS.
	public *http.Client
}

var _ storage.HTTPDoer = (*Client)(nil)

type pattern struct {
	host     string // lower case; "*.x" for subdomains of x
	port     string // "" default port of the scheme; "*" any
	wildcard bool
}

// New returns a client enforcing opts. It fails on a malformed pattern.
func New(opts Options) (*Client, error) {
	c := &Client{opts: opts}
	for _, a := range opts.Allow {
		p, err := parsePattern(a)
		if err != nil {
			return nil, err
		}
		c.allow = append(c.allow, p)
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = 2 * time.Minute
	}
	if c.opts.DialTimeout <= 0 {
		c.opts.DialTimeout = 10 * time.Second
	}
	if c.opts.ResponseHeaderTimeout <= 0 {
		c.opts.ResponseHeaderTimeout = 60 * time.Second
	}
	if c.opts.MaxResponseBytes == 0 {
		c.opts.MaxResponseBytes = 64 << 20
	}
	if c.opts.MaxRedirects == 0 {
		c.opts.MaxRedirects = 5
	}
	dialer := &net.Dialer{
		Timeout:   c.opts.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   c.checkAddress,
	}
	tr := &http.Transport{
		Proxy:                 nil, // never route around the policy through an environment proxy
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: c.opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	c.http = &http.Client{
		Transport: &checked{c: c, next: tr},
		Timeout:   c.opts.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if c.opts.MaxRedirects < 0 || len(via) > c.opts.MaxRedirects {
				return fmt.Errorf("egress: more than %d redirects: %w", max(c.opts.MaxRedirects, 0), storage.ErrInvalid)
			}
			return nil
		},
	}
	pubDialer := &net.Dialer{
		Timeout:   c.opts.DialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   c.checkPublicAddress,
	}
	c.public = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           pubDialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: c.opts.ResponseHeaderTimeout,
		},
		Timeout: c.opts.Timeout,
		// A redirect is the receiver's answer, not a new destination to
		// trust: it goes back to the caller as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func parsePattern(s string) (pattern, error) {
	bad := func(why string) (pattern, error) {
		return pattern{}, fmt.Errorf("egress: allow pattern %q: %s: %w", s, why, storage.ErrInvalid)
	}
	if s == "" || strings.ContainsAny(s, "/@ ") {
		return bad("want host[:port]")
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if port != "*" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad("bad port")
			}
		}
	} else if strings.Count(s, ":") > 1 || strings.HasPrefix(s, "[") {
		return bad("IPv6 literals need brackets and a port, as [::1]:443")
	} else if strings.Contains(s, ":") {
		return bad("bad port")
	}
	host = strings.ToLower(host)
	p := pattern{host: host, port: port}
	if strings.HasPrefix(host, "*.") {
		p.wildcard = true
		p.host = host[1:] // ".example.com"
		if strings.Contains(p.host[1:], "*") || len(p.host) < 2 {
			return bad("only a leading *. wildcard is allowed")
		}
	} else if strings.Contains(host, "*") {
		return bad("only a leading *. wildcard is allowed")
	}
	return p, nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// allowed reports whether the URL's destination matches the allow-list.
func (c *Client) allowed(scheme, host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range c.allow {
		switch p.port {
		case "*":
		case "":
			if port != defaultPort(scheme) {
				continue
			}
		default:
			if port != p.port {
				continue
			}
		}
		if p.wildcard {
			if strings.HasSuffix(host, p.host) && len(host) > len(p.host) {
				return true
			}
		} else if host == p.host {
			return true
		}
	}
	return false
}

// check refuses a request whose destination the policy does not allow.
func (c *Client) check(req *http.Request) error {
	u := req.URL
	if u == nil {
		return fmt.Errorf("egress: request without URL: %w", storage.ErrInvalid)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return fmt.Errorf("egress: scheme %q refused: %w", u.Scheme, storage.ErrInvalid)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("egress: request without host: %w", storage.ErrInvalid)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	if !c.allowed(scheme, host, port) {
		return fmt.Errorf("egress: destination %s refused by the allow-list: %w", net.JoinHostPort(host, port), storage.ErrInvalid)
	}
	return nil
}

// checkAddress runs at dial time on the resolved address.
func (c *Client) checkAddress(network, address string, _ syscall.RawConn) error {
	if c.opts.AllowPrivateNetworks {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("egress: dial %s: %w", address, storage.ErrInvalid)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("egress: dial %s: %w", address, storage.ErrInvalid)
	}
	if !Public(ip) {
		return fmt.Errorf("egress: address %s is not public: %w: %w", ip, storage.ErrInvalid, errPrivate)
	}
	return nil
}

var errPrivate = errors.New("egress: private address")

// testAllowed reports whether address (ip:port) is in Options.TestPublicAllow.
func (c *Client) testAllowed(address string) bool {
	for _, a := range c.opts.TestPublicAllow {
		if a == address {
			return true
		}
	}
	return false
}

// checkPublicAddress is checkAddress for the public-HTTPS policy: only
// public addresses, whatever AllowPrivateNetworks says.
func (c *Client) checkPublicAddress(network, address string, _ syscall.RawConn) error {
	if c.testAllowed(address) {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("egress: dial %s: %w", address, storage.ErrInvalid)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !Public(ip) {
		return fmt.Errorf("egress: address %s is not public: %w: %w", host, storage.ErrInvalid, errPrivate)
	}
	return nil
}

// doPublic sends req under storage.EgressPublicHTTPS.
func (c *Client) doPublic(req *http.Request) (*http.Response, error) {
	req.Header.Del(storage.EgressPolicyHeader)
	u := req.URL
	refuse := func(why string) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("egress: %s: %w", why, storage.ErrInvalid)
	}
	if u == nil || u.Hostname() == "" || u.User != nil {
		return refuse("a public-HTTPS request needs an absolute URL without user info")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(strings.ToLower(u.Scheme))
	}
	test := c.testAllowed(net.JoinHostPort(u.Hostname(), port))
	if !strings.EqualFold(u.Scheme, "https") && !(test && strings.EqualFold(u.Scheme, "http")) {
		return refuse("only https destinations are allowed")
	}
	resp, err := c.public.Do(req)
	if err != nil {
		return nil, classify(req.Context(), err)
	}
	if max := c.opts.MaxResponseBytes; max >= 0 {
		resp.Body = &capped{rc: resp.Body, left: max}
	}
	return resp, nil
}

// Public reports whether ip is a globally routable unicast address
// (storage.PublicAddr, which the application also uses for IP literals).
func Public(ip netip.Addr) bool { return storage.PublicAddr(ip) }

// checked checks every request, redirects included, before it goes out.
type checked struct {
	c    *Client
	next http.RoundTripper
}

func (t *checked) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.c.check(req); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// Do sends req under the policy. Refused destinations wrap
// storage.ErrInvalid; unreachable ones wrap storage.ErrUnavailable. Non-2xx
// statuses are not errors.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	switch req.Header.Get(storage.EgressPolicyHeader) {
	case "":
	case storage.EgressPublicHTTPS:
		return c.doPublic(req)
	default:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("egress: unknown policy %q: %w", req.Header.Get(storage.EgressPolicyHeader), storage.ErrInvalid)
	}
	if err := c.check(req); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, classify(req.Context(), err)
	}
	if max := c.opts.MaxResponseBytes; max >= 0 {
		if resp.ContentLength > max {
			resp.Body.Close()
			return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrResponseTooLarge, resp.ContentLength, max)
		}
		resp.Body = &capped{rc: resp.Body, left: max}
	}
	return resp, nil
}

func classify(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, storage.ErrInvalid):
		return err
	case ctx.Err() != nil:
		return err // the caller cancelled or its deadline passed
	}
	var ne net.Error
	var op *net.OpError
	var dns *net.DNSError
	if errors.As(err, &op) || errors.As(err, &dns) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

type capped struct {
	rc   io.ReadCloser
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrResponseTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n + int(c.left), ErrResponseTooLarge
	}
	return n, err
}

func (c *capped) Close() error { return c.rc.Close() }
