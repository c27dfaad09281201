package handlers

import (
	"net"
	"net/http"
	"strings"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// shedIP counts the request against the home's approximate per-address
// limit (public state-changing routes; failed credentials). It fails open:
// the exact limits in SQL still hold.
func (a *app) shedIP(r *http.Request) error {
	return web.Shed(r, a.p.Limiter, storage.LimitIP, web.ClientIP(r), "too many requests from this address; slow down")
}

// client works out where the request came from, once, for web.ClientIP
// and its kin: at the edge the CF-Connecting-IP header that Cloudflare sets
// (and overwrites); in a home behind a trusted proxy, Config.ClientIPHeader;
// otherwise the peer. The country is the edge's CF-IPCountry, trusted only
// where such a proxy sets it.
func (a *app) client(r *http.Request, requestID string) web.Client {
	c := web.Client{RequestID: requestID}
	testHeader := a.cfg.TestRoutes && testClientIPHeader != ""
	if testHeader {
		c.IP = r.Header.Get(testClientIPHeader)
	}
	h := a.cfg.ClientIPHeader
	if h == "" && a.p.Home == "edge" {
		h = "CF-Connecting-IP"
	}
	if h != "" && c.IP == "" {
		if v := strings.TrimSpace(r.Header.Get(h)); v != "" && net.ParseIP(v) != nil {
			c.IP = v
		}
	}
	if c.IP == "" {
		c.IP = r.RemoteAddr
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			c.IP = host
		}
	}
	if a.p.Home == "edge" || a.cfg.ClientIPHeader != "" || testHeader {
		c.Country = web.Truncate(r.Header.Get("CF-IPCountry"), 8)
	}
	return c
}
