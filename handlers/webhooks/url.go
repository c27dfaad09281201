package webhooks

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"pommy.ai/edge/storage"
)

// MaxURL bounds an endpoint URL's length.
const MaxURL = 2048

// URLPolicy decides which endpoint URLs a subscription may name. The zero
// value is the shipped rule: public HTTPS only. TestAllow (host:port, IP
// literals) is set only in test builds (the root handlers package honours
// its configuration only when the test routes are linked), so the tests'
// receiver on loopback can be subscribed over http.
type URLPolicy struct {
	TestAllow []string
}

// CheckURL refuses an endpoint URL that is not public HTTPS: no other
// scheme, no user info, no fragment, no IP literal outside the public
// ranges (loopback, private, link-local, CGNAT, multicast, IPv6 ULA and
// link-local), no single-label or local-only host names (localhost,
// *.localhost, *.local, *.internal, *.home.arpa). Names that resolve to a
// private address are refused by the home at delivery time, when the
// address is known.
func (p URLPolicy) CheckURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("url is required")
	}
	if len(raw) > MaxURL || !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("url must be at most 2048 characters with no spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return nil, errors.New("url must be an absolute https:// URL")
	}
	host, port := u.Hostname(), u.Port()
	if p.testAllowed(host, port) && (u.Scheme == "http" || u.Scheme == "https") {
		return u, nil
	}
	switch {
	case u.Scheme != "https":
		return nil, errors.New("url must use https")
	case u.User != nil:
		return nil, errors.New("url must not carry user info; authenticate with the webhook signature")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("url must not have a fragment")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("url has a bad port")
		}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !storage.PublicAddr(ip) {
			return nil, errors.New("url must not point to a loopback, private, link-local or other non-public address")
		}
		return u, nil
	}
	if strings.HasPrefix(u.Host, "[") {
		return nil, errors.New("url has a malformed IPv6 address")
	}
	// Forms that net/url passes and resolvers read as numbers (0x7f.1,
	// 2130706433, 127.1) are IP literals in disguise.
	if looksNumeric(host) {
		return nil, errors.New("url must name a host, or a public IP address in dotted form")
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if !strings.Contains(h, ".") {
		return nil, errors.New("url must name a fully qualified public host")
	}
	for _, local := range []string{"localhost", "local", "internal", "home.arpa", "localdomain", "lan"} {
		if h == local || strings.HasSuffix(h, "."+local) {
			return nil, errors.New("url must name a public host, not a local one")
		}
	}
	for _, label := range strings.Split(h, ".") {
		if !validLabel(label) {
			return nil, errors.New("url has a malformed host name")
		}
	}
	return u, nil
}

func (p URLPolicy) testAllowed(host, port string) bool {
	if len(p.TestAllow) == 0 {
		return false
	}
	hp := net.JoinHostPort(host, port)
	for _, a := range p.TestAllow {
		if a == hp {
			return true
		}
	}
	return false
}

// looksNumeric: every label is digits or 0x-hex, the shapes inet_aton reads.
func looksNumeric(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		l := strings.ToLower(label)
		if strings.HasPrefix(l, "0x") {
			l = l[2:]
			if l == "" {
				continue
			}
			for i := 0; i < len(l); i++ {
				if !(l[i] >= '0' && l[i] <= '9' || l[i] >= 'a' && l[i] <= 'f') {
					return false
				}
			}
			continue
		}
		if l == "" {
			return false
		}
		for i := 0; i < len(l); i++ {
			if l[i] < '0' || l[i] > '9' {
				return false
			}
		}
	}
	return true
}

// validLabel: letters, digits and hyphens (punycode for others), 1-63
// characters, no leading or trailing hyphen.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
