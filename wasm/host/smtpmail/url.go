package smtpmail

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Security is how a connection to the server is protected.
type Security int

const (
	// StartTLS: plain SMTP upgraded with STARTTLS before anything else is
	// sent. Required: a server that does not offer it is not used (no
	// silent fallback to clear text).
	StartTLS Security = iota
	// ImplicitTLS: TLS from the first byte (smtps, port 465).
	ImplicitTLS
	// NoTLS: clear text, accepted only for a loopback server (a relay or
	// mailpit on the same machine).
	NoTLS
)

func (s Security) String() string {
	switch s {
	case StartTLS:
		return "starttls"
	case ImplicitTLS:
		return "tls"
	case NoTLS:
		return "none"
	}
	return "security(" + strconv.Itoa(int(s)) + ")"
}

// Server is where mail is submitted, parsed from an SMTP URL.
type Server struct {
	Host     string // a name or an IP address (no brackets)
	Port     string
	Security Security
}

// Addr is host:port.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, s.Port) }

// String is the URL form (it never holds credentials).
func (s Server) String() string {
	switch s.Security {
	case ImplicitTLS:
		return "smtps://" + s.Addr()
	case NoTLS:
		return "smtp://" + s.Addr() + "?tls=none"
	}
	return "smtp://" + s.Addr()
}

// MaxURL bounds an SMTP URL.
const MaxURL = 2048

// ParseURL reads the server's URL:
//
//	smtps://host[:465]            implicit TLS
//	smtp://host[:587]             STARTTLS, required
//	smtp://host:port?tls=none     clear text: loopback hosts only
//
// The query may also say tls=starttls (the default for smtp://). A URL
// with a user or password is refused: the user is --smtp-user and the
// password comes only from the environment, so that neither shows in ps.
// No path, fragment or other query parameter is accepted.
func ParseURL(raw string) (Server, error) {
	bad := func(format string, args ...any) (Server, error) {
		return Server{}, fmt.Errorf("SMTP URL: "+format, args...)
	}
	if raw == "" || len(raw) > MaxURL {
		return bad("must be 1 to %d bytes", MaxURL)
	}
	for _, r := range raw {
		if r < 0x21 || r > 0x7e {
			return bad("must be printable ASCII without spaces")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("%v", err)
	}
	var s Server
	switch u.Scheme {
	case "smtp":
		s.Security, s.Port = StartTLS, "587"
	case "smtps":
		s.Security, s.Port = ImplicitTLS, "465"
	default:
		return bad("the scheme must be smtp:// (STARTTLS) or smtps:// (implicit TLS), not %q", u.Scheme)
	}
	if u.User != nil {
		return bad("must not hold credentials: use --smtp-user and the environment variable POMMY_SMTP_PASSWORD")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#") {
		return bad("must be scheme://host[:port] with no path or fragment")
	}
	s.Host = u.Hostname()
	if s.Host == "" {
		return bad("has no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return bad("port %q is not 1 to 65535", p)
		}
		s.Port = p
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	if strings.HasPrefix(u.Host, "[") {
		if _, err := netip.ParseAddr(s.Host); err != nil {
			return bad("bad IPv6 address %q", s.Host)
		}
	} else if !validHost(s.Host) {
		return bad("bad host %q", s.Host)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("bad query: %v", err)
	}
	for k, v := range q {
		if k != "tls" || len(v) != 1 {
			return bad("unknown or repeated parameter %q (only tls=starttls or tls=none)", k)
		}
		switch v[0] {
		case "starttls":
			if s.Security != StartTLS {
				return bad("tls=starttls needs smtp://, not smtps://")
			}
		case "none":
			if s.Security != StartTLS {
				return bad("tls=none needs smtp://, not smtps://")
			}
			s.Security = NoTLS
		default:
			return bad("tls=%q: must be starttls or none", v[0])
		}
	}
	if s.Security == NoTLS && !loopback(s.Host) {
		return bad("tls=none is allowed only for a loopback server (127.0.0.1, ::1, localhost), not %q: passwords and mail would cross the network in clear", s.Host)
	}
	return s, nil
}

// validHost: a DNS name of letters, digits, '-' and '.', or an IPv4
// address.
func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return !strings.Contains(h, ":")
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func loopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}
