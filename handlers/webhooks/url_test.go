package webhooks

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"pommy.ai/edge/storage"
)

func TestCheckURL(t *testing.T) {
	ok := []string{
		"https://hooks.example.com/pommy",
		"https://hooks.example.com:8443/a?b=c",
		"https://8.8.8.8/hook",
		"https://[2606:4700::1111]/hook",
	}
	bad := []string{
		"", "http://hooks.example.com/", "ftp://x.example.com/", "https://user:pw@hooks.example.com/",
		"https://hooks.example.com/#frag", "https://localhost/", "https://api.localhost/", "https://printer.local/",
		"https://db.internal/", "https://intranet/", "https://127.0.0.1/", "https://10.0.0.1/", "https://192.168.1.1/",
		"https://172.16.0.1/", "https://169.254.169.254/", "https://100.64.0.1/", "https://224.0.0.1/", "https://0.0.0.0/",
		"https://[::1]/", "https://[fd00::1]/", "https://[fe80::1]/", "https://[::ffff:127.0.0.1]/", "https://2130706433/",
		"https://0x7f.1/", "https://127.1/", "https://hooks.example.com:0/", "https://hooks.example.com:99999/",
		"https://hooks .example.com/", "https://" + strings.Repeat("a", 2048) + ".com/", "https://-bad.example.com/",
		"https://hooks.example.com/\x00", "/relative", "https:opaque",
	}
	var p URLPolicy
	for _, u := range ok {
		if _, err := p.CheckURL(u); err != nil {
			t.Errorf("refused %q: %v", u, err)
		}
	}
	for _, u := range bad {
		if _, err := p.CheckURL(u); err == nil {
			t.Errorf("accepted %q", u)
		}
	}
	// The test allow-list admits exactly its ip:port, over http too.
	tp := URLPolicy{TestAllow: []string{"127.0.0.1:9999"}}
	if _, err := tp.CheckURL("http://127.0.0.1:9999/hook"); err != nil {
		t.Error(err)
	}
	if _, err := tp.CheckURL("http://127.0.0.1:9998/hook"); err == nil {
		t.Error("another port of the test address was accepted")
	}
}

// FuzzCheckURL: whatever CheckURL accepts is https to a host that is not
// a non-public IP literal, and parses again to the same host.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "https://10.0.0.1/", "https://[::1]:443/", "https://0x7f.1/", "http://a.b/"} {
		f.Add(s)
	}
	var p URLPolicy
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := p.CheckURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !storage.PublicAddr(ip) {
			t.Fatalf("accepted a non-public address %q", raw)
		}
		again, err := url.Parse(u.String())
		if err != nil || again.Hostname() != u.Hostname() {
			t.Fatalf("%q does not round-trip", raw)
		}
	})
}

// FuzzParseCursor: an accepted cursor is in SQL's exact integer range and
// re-encodes to itself.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "1700000000000.msg_a_c_1_2", "9007199254740992.x", "-1.x", "1.", "x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		at, id, err := parseCursor(c)
		if err != nil || c == "" {
			return
		}
		if at < 0 || at > 1<<53-1 || id == "" {
			t.Fatalf("%q gave %d %q", c, at, id)
		}
	})
}
