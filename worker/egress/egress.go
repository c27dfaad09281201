//go:build js && wasm

// Package egress is the edge adapter of storage.HTTPDoer on the Workers
// runtime's fetch.
//
// It talks to fetch itself rather than through syumai's fetch package or
// net/http's js transport: syumai's splits every response header value on
// commas (which breaks Date, Expires, WWW-Authenticate) and ignores the
// request's context; net/http's reads every request body into memory, and
// reaching it through http.Client links http.DefaultTransport (TLS, HTTP/2,
// a resolver: about 4.8 MB of dead code in a worker). This adapter passes
// headers through unchanged, aborts the fetch when the request's context
// ends (AbortController), streams request bodies (Content-Length when known,
// chunked otherwise) and response bodies, and follows redirects in Client,
// which checks the scheme on every hop.
//
// Egress policy at the edge: only absolute http and https URLs; anything
// else is storage.ErrInvalid. A worker's fetch leaves from Cloudflare's
// network, not from inside ours, so there is no private network behind it to
// protect; a per-destination allow-list like the host's is not implemented.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall/js"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/worker/internal/jsbridge"
)

// MaxRedirects is how many redirects a request follows.
const MaxRedirects = 10

// bufferBelow is the request body size up to which the body is sent as one buffer.
const bufferBelow = 64 << 10

// New returns the HTTP client of the edge home.
func New() storage.HTTPDoer { return Client{} }

// Client follows redirects itself instead of using http.Client: any use of
// http.Client links net/http's DefaultTransport (TLS, HTTP/2, the resolver),
// which adds about 5 MB to a worker that can never use it.
type Client struct {
	// TestPublicAllow lists exact host:port destinations (IP literals)
	// that requests under storage.EgressPublicHTTPS may reach although
	// they are not public, over http too: the workerd suite's webhook
	// receiver on loopback. The worker sets it only in a test build with
	// its test routes on (worker/main.go; handlers.Config.Check refuses
	// the list otherwise), like the host's egress.Options.TestPublicAllow.
	TestPublicAllow []string
}

// Do sends req and follows up to MaxRedirects redirects the way net/http's
// client does: 301, 302 and 303 turn into a GET without a body (a HEAD stays
// a HEAD); 307 and 308 repeat the method and body, which needs req.GetBody
// when there is a body. Authorization, Cookie and Proxy-Authorization are
// dropped when a redirect leaves the original host.
//
// Under storage.EgressPublicHTTPS (webhooks) it sends one request, https
// only, to no IP literal outside the public ranges, and returns a redirect
// as it is.
func (c Client) Do(req *http.Request) (*http.Response, error) {
	switch req.Header.Get(storage.EgressPolicyHeader) {
	case "":
	case storage.EgressPublicHTTPS:
		req.Header.Del(storage.EgressPolicyHeader)
		if c.testAllowed(req) {
			return Transport{}.RoundTrip(req)
		}
		if err := checkPublic(req); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		return Transport{}.RoundTrip(req)
	default:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("egress: unknown policy: %w", storage.ErrInvalid)
	}
	orig := req
	for hops := 0; ; hops++ {
		resp, err := Transport{}.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		loc := resp.Header.Get("Location")
		method, keepBody := "", false
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther:
			method = http.MethodGet
			if req.Method == http.MethodHead {
				method = http.MethodHead
			}
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			method, keepBody = req.Method, true
		}
		if method == "" || loc == "" {
			return resp, nil
		}
		if keepBody && orig.Body != nil && orig.Body != http.NoBody && orig.GetBody == nil {
			return resp, nil // cannot replay the body: hand the redirect to the caller
		}
		if hops >= MaxRedirects {
			resp.Body.Close()
			return nil, fmt.Errorf("egress: %s %s: stopped after %d redirects", orig.Method, redact(orig), MaxRedirects)
		}
		u, err := req.URL.Parse(loc)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("egress: bad redirect Location %q: %w", loc, err)
		}
		resp.Body.Close()
		next := &http.Request{
			Method: method,
			URL:    u,
			Header: orig.Header.Clone(),
			Host:   "",
		}
		next = next.WithContext(orig.Context())
		if keepBody && orig.GetBody != nil {
			if next.Body, err = orig.GetBody(); err != nil {
				return nil, err
			}
			next.GetBody = orig.GetBody
			next.ContentLength = orig.ContentLength
		}
		if !keepBody {
			next.Header.Del("Content-Type")
			next.Header.Del("Content-Length")
		}
		if u.Host != orig.URL.Host {
			for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization", "Www-Authenticate"} {
				next.Header.Del(h)
			}
		}
		req = next
	}
}

// checkPublic: https, and a host that is a name or a public address. A
// worker's fetch leaves from Cloudflare's network, so a name cannot reach
// a private network of ours; an IP literal is still refused when it is
// not public, as the host does.
func checkPublic(req *http.Request) error {
	if req.URL == nil || req.URL.Scheme != "https" || req.URL.Host == "" || req.URL.User != nil {
		return fmt.Errorf("egress: only https URLs may be fetched under the public policy: %w", storage.ErrInvalid)
	}
	if ip, err := netip.ParseAddr(strings.Trim(req.URL.Hostname(), "[]")); err == nil && !storage.PublicAddr(ip) {
		return fmt.Errorf("egress: address %s is not public: %w", ip, storage.ErrInvalid)
	}
	return nil
}

// testAllowed: the URL's host:port is in TestPublicAllow (http or https).
func (c Client) testAllowed(req *http.Request) bool {
	if len(c.TestPublicAllow) == 0 || req.URL == nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.User != nil {
		return false
	}
	for _, a := range c.TestPublicAllow {
		if a == req.URL.Host {
			return true
		}
	}
	return false
}

func checkURL(req *http.Request) error {
	if req.URL == nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return fmt.Errorf("egress: only absolute http and https URLs may be fetched: %w", storage.ErrInvalid)
	}
	return nil
}

// Transport sends requests with the runtime's fetch.
type Transport struct{}

var fetchFn = js.Global().Get("fetch")

func (Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if err := checkURL(req); err != nil {
		closeBody()
		return nil, err
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		closeBody()
		return nil, err
	}

	ac := js.Global().Get("AbortController").New()
	init := jsbridge.NewObject()
	init.Set("method", req.Method)
	init.Set("redirect", "manual")
	init.Set("signal", ac.Get("signal"))
	headers := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			if _, err := jsbridge.Call(headers, "append", k, v); err != nil {
				closeBody()
				return nil, fmt.Errorf("egress: header %q: %w: %w", k, storage.ErrInvalid, err)
			}
		}
	}
	if req.Host != "" && req.Host != req.URL.Host {
		// fetch derives Host from the URL and does not let it be overridden.
		closeBody()
		return nil, fmt.Errorf("egress: a Host different from the URL's is not supported: %w", storage.ErrInvalid)
	}
	init.Set("headers", headers)

	var pipe *jsbridge.Pipe
	if req.Body != nil && req.Body != http.NoBody {
		size := req.ContentLength
		if size == 0 {
			size = -1 // 0 with a body means unknown in net/http
		}
		if size >= 0 && size <= bufferBelow {
			b := make([]byte, size)
			_, err := io.ReadFull(req.Body, b)
			closeBody()
			if err != nil {
				return nil, fmt.Errorf("egress: reading request body: %w", err)
			}
			init.Set("body", jsbridge.Uint8Array(b))
		} else {
			var err error
			if pipe, err = jsbridge.NewPipe(req.Body, size); err != nil {
				closeBody()
				return nil, err
			}
			init.Set("body", pipe.Readable)
		}
	}

	p, err := jsbridge.Try(func() js.Value { return fetchFn.Invoke(req.URL.String(), init) })
	if err != nil {
		closeBody()
		return nil, fmt.Errorf("egress: %s %s: %w", req.Method, redact(req), err)
	}
	if pipe != nil {
		pipe.Start(ctx)
		go func() { pipe.Wait(); closeBody() }()
	}
	// Abort the fetch (and the response body) when the request's context
	// ends; stop watching once the body is done.
	stop := context.AfterFunc(ctx, func() { ac.Call("abort") })
	res, err := jsbridge.Await(ctx, p)
	if err != nil {
		stop()
		if pipe != nil {
			pipe.Abort(err) // free the body pump if fetch gave up on the body
		}
		if ctx.Err() != nil {
			ac.Call("abort")
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("egress: %s %s: %w: %w", req.Method, redact(req), storage.ErrUnavailable, err)
	}
	return response(req, res, stop)
}

func response(req *http.Request, res js.Value, stop func() bool) (*http.Response, error) {
	h := http.Header{}
	it := res.Get("headers").Call("entries")
	for {
		n := it.Call("next")
		if n.Get("done").Bool() {
			break
		}
		kv := n.Get("value")
		h.Add(kv.Index(0).String(), kv.Index(1).String())
	}
	status := res.Get("status").Int()
	out := &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: -1,
		Request:       req,
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			out.ContentLength = n
		}
	}
	// The runtime decodes compressed bodies itself but keeps the header.
	switch strings.ToLower(h.Get("Content-Encoding")) {
	case "gzip", "deflate", "br":
		h.Del("Content-Encoding")
		h.Del("Content-Length")
		out.ContentLength = -1
		out.Uncompressed = true
	}
	body := res.Get("body")
	if jsbridge.IsNullish(body) || req.Method == http.MethodHead {
		stop()
		out.Body = http.NoBody
		if req.Method != http.MethodHead {
			out.ContentLength = 0
		}
		return out, nil
	}
	r, err := jsbridge.NewStreamReader(body)
	if err != nil {
		stop()
		return nil, err
	}
	out.Body = &bodyReader{r: r, stop: stop}
	return out, nil
}

type bodyReader struct {
	r    *jsbridge.StreamReader
	stop func() bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("egress: reading response body: %w", err)
	}
	if err != nil {
		b.stop()
	}
	return n, err
}

func (b *bodyReader) Close() error {
	b.stop()
	return b.r.Close()
}

// redact drops the query and user info from a URL for error messages: they
// may carry credentials.
func redact(req *http.Request) string {
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
