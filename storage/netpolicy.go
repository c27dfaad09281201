package storage

import "net/netip"

// nonPublic are ranges that netip's predicates do not name but that are
// not reachable on the public internet.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// PublicAddr reports whether ip is a globally routable unicast address: not
// loopback, private (RFC 1918, IPv6 ULA), link-local, CGNAT, multicast,
// unspecified, documentation or reserved. The application checks IP
// literals with it; the host's egress adapter checks every resolved
// address at dial time.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		ip.IsUnspecified() || !ip.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// EgressPolicyHeader is an internal header of an outbound request: the
// application sets it to choose an egress policy other than the home's
// allow-list, and the home's HTTPDoer removes it before the request leaves.
//
// EgressPublicHTTPS ("public-https", webhooks): any host name, https only,
// every address the name resolves to must be public (PublicAddr), and
// redirects are not followed (a 3xx is returned as it is). The host's
// --egress-allow and --egress-private do not widen it.
const (
	EgressPolicyHeader = "Pommy-Egress-Policy"
	EgressPublicHTTPS  = "public-https"
)
