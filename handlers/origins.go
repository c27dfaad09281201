package handlers

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"pommy.ai/edge/handlers/web"
)

// ParseOrigin checks and normalizes one public origin (web.ParseOrigin,
// which the widget's allowed origins also go through, so that a home's
// public origins and a tenant's embedding origins follow one rule).
func ParseOrigin(s string) (string, error) { return web.ParseOrigin(s) }

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

// normalizedOrigins are the valid ones of origins, normalized.
func normalizedOrigins(origins []string) []string {
	var out []string
	for _, o := range origins {
		if n, err := ParseOrigin(o); err == nil {
			out = append(out, n)
		}
	}
	return out
}
