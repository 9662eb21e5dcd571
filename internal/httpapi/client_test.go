package httpapi

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddress(t *testing.T) {
	proxies := canonicalProxies([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"), // 192.168.0.0/16, written mapped
		netip.MustParsePrefix("fd00::/8"),
	})
	tests := []struct {
		name   string
		remote string
		xff    []string // X-Forwarded-For header lines; nil sends none
		want   string
		badHop string
	}{
		// The socket.
		{"untrusted socket", "203.0.113.9:1234", []string{"198.51.100.1"}, "203.0.113.9", ""},
		{"mapped socket", "[::ffff:203.0.113.9]:1234", nil, "203.0.113.9", ""},
		{"IPv6 socket", "[2001:db8::1]:1234", nil, "2001:db8::1", ""},
		{"zoned socket", "[fe80::1%eth0]:1234", nil, "fe80::1", ""},
		{"unreadable socket", "@", nil, UnknownClient, ""},
		{"trusted socket, no header", "10.0.0.1:1234", nil, "10.0.0.1", ""},
		{"trusted socket, empty header", "10.0.0.1:1234", []string{""}, "10.0.0.1", ""},
		{"trusted mapped socket", "[::ffff:10.0.0.1]:1234", []string{"203.0.113.9"}, "203.0.113.9", ""},
		{"proxy written mapped", "192.168.1.1:1234", []string{"203.0.113.9"}, "203.0.113.9", ""},

		// Hops as proxies write them.
		{"plain IPv4", "10.0.0.1:1", []string{"203.0.113.9"}, "203.0.113.9", ""},
		{"IPv4 with port", "10.0.0.1:1", []string{"203.0.113.9:51234"}, "203.0.113.9", ""},
		{"plain IPv6", "10.0.0.1:1", []string{"2001:db8::1"}, "2001:db8::1", ""},
		{"bracketed IPv6", "10.0.0.1:1", []string{"[2001:db8::1]"}, "2001:db8::1", ""},
		{"bracketed IPv6 with port", "10.0.0.1:1", []string{"[2001:db8::1]:443"}, "2001:db8::1", ""},
		{"mapped IPv6", "10.0.0.1:1", []string{"::ffff:203.0.113.9"}, "203.0.113.9", ""},
		{"mapped with port", "10.0.0.1:1", []string{"[::ffff:203.0.113.9]:8080"}, "203.0.113.9", ""},
		{"spaces", "10.0.0.1:1", []string{"  203.0.113.9  "}, "203.0.113.9", ""},
		{"empty list elements", "10.0.0.1:1", []string{"203.0.113.9, ,"}, "203.0.113.9", ""},

		// The walk from the right.
		{"rightmost untrusted wins", "10.0.0.1:1", []string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9", ""},
		{"trusted hops skipped", "10.0.0.1:1", []string{"203.0.113.9, 10.0.0.2:80, [fd00::1]:443"}, "203.0.113.9", ""},
		{"several header lines", "10.0.0.1:1", []string{"198.51.100.1", "203.0.113.9:1, 10.0.0.2"}, "203.0.113.9", ""},
		{"all trusted: the leftmost", "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3", ""},

		// An unreadable hop stops the walk: the client is unknown, never
		// the proxy.
		{"unknown", "10.0.0.1:1", []string{"unknown"}, UnknownClient, "unknown"},
		{"unknown behind a trusted hop", "10.0.0.1:1", []string{"unknown, 10.0.0.2"}, UnknownClient, "unknown"},
		{"garbage", "10.0.0.1:1", []string{"nonsense"}, UnknownClient, "nonsense"},
		{"obfuscated", "10.0.0.1:1", []string{"_hidden"}, UnknownClient, "_hidden"},
		{"port without address", "10.0.0.1:1", []string{":443"}, UnknownClient, ":443"},
		{"bad port", "10.0.0.1:1", []string{"203.0.113.9:99999"}, UnknownClient, "203.0.113.9:99999"},
		{"unbracketed IPv6 with port", "10.0.0.1:1", []string{"2001:db8::1]:443"}, UnknownClient, "2001:db8::1]:443"},
		{"CIDR", "10.0.0.1:1", []string{"203.0.113.0/24"}, UnknownClient, "203.0.113.0/24"},
		// A client that writes "unknown" itself is to the left of the
		// address the proxy wrote: the walk stops before it.
		{"unknown written by the client", "10.0.0.1:1", []string{"unknown, 203.0.113.9"}, "203.0.113.9", ""},
		{"forged trusted hop written by the client", "10.0.0.1:1", []string{"10.0.0.9, 203.0.113.9"}, "203.0.113.9", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/graphql", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, bad := clientAddress(r, proxies)
			if got != tc.want || bad != tc.badHop {
				t.Fatalf("clientAddress = %q (bad hop %q), want %q (bad hop %q)", got, bad, tc.want, tc.badHop)
			}
		})
	}
}
