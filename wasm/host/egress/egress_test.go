package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/storagetest"
)

func echoServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	h := storagetest.EchoHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func hostPort(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func client(t *testing.T, opts Options) *Client {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContract(t *testing.T) {
	srv, _ := echoServer(t)
	c := client(t, Options{Allow: []string{hostPort(t, srv.URL)}, AllowPrivateNetworks: true})
	storagetest.Run(t, storagetest.HTTPSuite(c, srv.URL))
}

func get(c *Client, raw string) (*http.Response, error) {
	req, err := http.NewRequest("GET", raw, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func TestRefusedDestinations(t *testing.T) {
	srv, hits := echoServer(t)
	hp := hostPort(t, srv.URL)
	_, port, _ := net.SplitHostPort(hp)
	c := client(t, Options{Allow: []string{hp, "api.example.com", "*.tools.example:8443"}, AllowPrivateNetworks: true})
	for _, raw := range []string{
		"http://localhost:" + port + "/",     // same server, name not on the list
		"http://127.0.0.2:" + port + "/",     // another address
		"http://127.0.0.1:1/",                // another port
		"https://" + hp + "/",                // listed host:port, yes, but see below
		"ftp://" + hp + "/",                  // scheme
		"file:///etc/passwd",                 // scheme
		"http://api.example.com:8080/",       // listed host on another port
		"http://tools.example:8443/",         // a wildcard does not match its base
		"http://evil.com/?x=api.example.com", // host only in the query
		"http://api.example.com.evil.com/",   // suffix trick
		"http://api.example.com@evil.com/",   // userinfo trick
	} {
		resp, err := get(c, raw)
		if raw == "https://"+hp+"/" {
			// Allowed by the list (host:port match); fails for lack of TLS.
			if err == nil {
				resp.Body.Close()
			}
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: allowed", raw)
			continue
		}
		if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", raw, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server was reached %d times by refused requests", n)
	}
}

func TestPatterns(t *testing.T) {
	c := client(t, Options{Allow: []string{"api.example.com", "*.example.org", "h.test:8080", "any.test:*", "[::1]:443", "10.0.0.1:80"}})
	for _, tc := range []struct {
		scheme, host, port string
		want               bool
	}{
		{"https", "api.example.com", "443", true},
		{"http", "api.example.com", "80", true},
		{"https", "API.Example.COM", "443", true},
		{"https", "api.example.com.", "443", true},
		{"https", "api.example.com", "444", false},
		{"https", "x.example.org", "443", true},
		{"https", "a.b.example.org", "443", true},
		{"https", "example.org", "443", false},
		{"https", "xexample.org", "443", false},
		{"http", "h.test", "8080", true},
		{"http", "h.test", "80", false},
		{"http", "any.test", "1", true},
		{"https", "::1", "443", true},
		{"http", "10.0.0.1", "80", true},
	} {
		if got := c.allowed(tc.scheme, tc.host, tc.port); got != tc.want {
			t.Errorf("allowed(%s://%s:%s) = %v", tc.scheme, tc.host, tc.port, got)
		}
	}
	for _, bad := range []string{"", "http://x.com", "x.com/path", "a*.com", "*.*.com", "x.com:0", "x.com:99999", "::1", "user@x.com", "x.com:abc"} {
		if _, err := New(Options{Allow: []string{bad}}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("pattern %q accepted (%v)", bad, err)
		}
	}
}

func TestPrivateAddressesRefusedAtDial(t *testing.T) {
	srv, hits := echoServer(t)
	_, port, _ := net.SplitHostPort(hostPort(t, srv.URL))
	// The name is allowed, but it resolves to loopback.
	c := client(t, Options{Allow: []string{"localhost:" + port, "127.0.0.1:" + port}})
	for _, raw := range []string{"http://localhost:" + port + "/", "http://127.0.0.1:" + port + "/"} {
		resp, err := get(c, raw)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s reached a loopback address", raw)
		} else if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", raw, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("server reached")
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"2606:4700::1111", true},
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"100.64.0.1", false}, {"0.0.0.0", false}, {"::1", false},
		{"fe80::1", false}, {"fc00::1", false}, {"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false},
		{"224.0.0.1", false}, {"255.255.255.255", false}, {"198.18.0.1", false},
	} {
		if got := Public(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("Public(%s) = %v", tc.ip, got)
		}
	}
}

func TestRedirectsAreChecked(t *testing.T) {
	other, otherHits := echoServer(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusFound)
		case "/meta":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	c := client(t, Options{Allow: []string{hostPort(t, srv.URL)}, AllowPrivateNetworks: true})
	for _, path := range []string{"/away", "/meta", "/loop"} {
		resp, err := get(c, srv.URL+path)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: followed", path)
		} else if !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", path, err)
		}
	}
	if otherHits.Load() != 0 {
		t.Errorf("a redirect reached a host off the list")
	}
}

func TestResponseCap(t *testing.T) {
	srv, _ := echoServer(t)
	c := client(t, Options{Allow: []string{hostPort(t, srv.URL)}, AllowPrivateNetworks: true, MaxResponseBytes: 1000})
	// Announced by Content-Length.
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		w.Write(make([]byte, 5000))
	}))
	defer big.Close()
	c2 := client(t, Options{Allow: []string{hostPort(t, big.URL)}, AllowPrivateNetworks: true, MaxResponseBytes: 1000})
	if _, err := get(c2, big.URL); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("announced 5000 bytes: %v", err)
	}
	// Streamed without a length.
	resp, err := get(c, srv.URL+"/?stream=5000")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrResponseTooLarge) || len(b) != 1000 {
		t.Errorf("streamed 5000 bytes: read %d, %v", len(b), err)
	}
	// Exactly the cap is fine.
	resp, err = get(c, srv.URL+"/?stream=1000")
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 1000 {
		t.Errorf("streamed 1000 bytes: read %d, %v", len(b), err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	c := client(t, Options{Allow: []string{addr}, AllowPrivateNetworks: true})
	_, err = get(c, "http://"+addr+"/")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("connection refused: %v, want ErrUnavailable", err)
	}
	c = client(t, Options{Allow: []string{"no-such-host.invalid"}})
	_, err = get(c, "http://no-such-host.invalid/")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("DNS failure: %v, want ErrUnavailable", err)
	}
}

func TestTimeouts(t *testing.T) {
	srv, _ := echoServer(t)
	hp := hostPort(t, srv.URL)
	c := client(t, Options{Allow: []string{hp}, AllowPrivateNetworks: true, Timeout: 300 * time.Millisecond})
	// The server sends headers and then stalls until the client goes away.
	resp, err := get(c, srv.URL+"/?hang=1")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("a stalled response did not time out")
	}
	c = client(t, Options{Allow: []string{hp}, AllowPrivateNetworks: true, ResponseHeaderTimeout: 200 * time.Millisecond})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer stall.Close()
	c = client(t, Options{Allow: []string{hostPort(t, stall.URL)}, AllowPrivateNetworks: true, ResponseHeaderTimeout: 200 * time.Millisecond})
	_, err = get(c, stall.URL)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("no response headers: %v, want ErrUnavailable", err)
	}
	// A caller's own deadline is reported as such.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", stall.URL, nil)
	c = client(t, Options{Allow: []string{hostPort(t, stall.URL)}, AllowPrivateNetworks: true})
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v", err)
	}
}

func TestEnvironmentProxyIgnored(t *testing.T) {
	srv, _ := echoServer(t)
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	c := client(t, Options{Allow: []string{hostPort(t, srv.URL)}, AllowPrivateNetworks: true})
	resp, err := get(c, srv.URL+"/")
	if err != nil {
		t.Fatalf("request went through a proxy from the environment: %v", err)
	}
	resp.Body.Close()
}

func ExampleNew() {
	c, err := New(Options{Allow: []string{"api.openai.com", "*.anthropic.com"}})
	if err != nil {
		panic(err)
	}
	req, _ := http.NewRequest("GET", "http://169.254.169.254/latest/meta-data/", nil)
	_, err = c.Do(req)
	fmt.Println(errors.Is(err, storage.ErrInvalid), strings.Contains(err.Error(), "allow-list"))
	// Output: true true
}
