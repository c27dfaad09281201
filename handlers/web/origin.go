package web

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ParseOrigin checks and normalizes one public origin as a browser would
// send it in an Origin header: http or https, a host, an optional port
// (dropped when it is the scheme's default), and nothing else.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	switch {
	case err != nil:
		return "", fmt.Errorf("origin %q: %v", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("origin %q: the scheme must be http or https", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("origin %q: no host", s)
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("origin %q: only scheme://host[:port], without user, path, query or fragment", s)
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		if net.ParseIP(host) == nil { // also refuses zones (fe80::1%eth0)
			return "", fmt.Errorf("origin %q: bad IPv6 address", s)
		}
		host = "[" + host + "]"
	} else if strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return "", fmt.Errorf("origin %q: the host may hold only letters, digits, dots and hyphens (IDNA names in their xn-- form)", s)
	}
	port := u.Port()
	if p, err := strconv.Atoi(port); port != "" && (err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port) {
		return "", fmt.Errorf("origin %q: bad port", s)
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// SelfOrigin is the origin people reach this home at for the request r:
// of the configured public origins (normalized), the one whose host r is
// for (else the first); with none configured, r's own Host, over https
// unless r itself came over plain http (a local home without TLS in
// front). Mailed links and the WebAuthn relying party are built from it.
func SelfOrigin(r *http.Request, public []string) string {
	for _, o := range public {
		if u, err := url.Parse(o); err == nil && strings.EqualFold(u.Host, r.Host) {
			return o
		}
	}
	if len(public) > 0 {
		return public[0]
	}
	if r.TLS == nil && r.URL.Scheme != "https" {
		return "http://" + strings.ToLower(r.Host)
	}
	return "https://" + strings.ToLower(r.Host)
}
