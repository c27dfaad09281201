package handlers

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

// originHosts maps each normalized public origin's Host value, and the
// origin itself, to true. Origins were checked by the home at start
// (ParseOrigin); one that fails here is dropped rather than trusted.
func originHosts(origins []string) map[string]bool {
	if len(origins) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, o := range origins {
		n, err := ParseOrigin(o)
		if err != nil {
			continue
		}
		u, _ := url.Parse(n)
		m[n] = true
		m["host "+u.Host] = true
		// A client may name the default port explicitly.
		if u.Port() == "" {
			def := "80"
			if u.Scheme == "https" {
				def = "443"
			}
			m["host "+net.JoinHostPort(u.Hostname(), def)] = true
		}
	}
	return m
}

// knownHost reports whether the request is for one of the public origins'
// hosts (always, when none are configured). Host names are
// case-insensitive.
func (a *app) knownHost(r *http.Request) bool {
	return a.hosts == nil || a.hosts["host "+strings.ToLower(r.Host)]
}

// sameOrigin reports whether origin is this site: one of the configured
// public origins, or else the request's own Host (plain http only where the
// request itself came over plain http: a local home without TLS in front).
func (a *app) sameOrigin(r *http.Request, origin string) bool {
	if a.hosts != nil {
		n, err := ParseOrigin(origin)
		return err == nil && n == origin && a.hosts[n]
	}
	if origin == "https://"+r.Host {
		return true
	}
	return r.TLS == nil && r.URL.Scheme != "https" && origin == "http://"+r.Host
}
