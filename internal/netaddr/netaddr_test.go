package netaddr

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"10.0.0.0/8", "10.0.0.0/8", nil},
		{"10.1.2.3/8", "10.0.0.0/8", nil},
		{"2001:db8::1/32", "2001:db8::/32", nil},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", nil},
		{"::ffff:10.1.2.3/104", "10.0.0.0/8", nil},
		{"0:0:0:0:0:ffff:a01:203/120", "10.1.2.0/24", nil},
		{"::ffff:203.0.113.9/128", "203.0.113.9/32", nil},
		{"::ffff:0.0.0.0/96", "0.0.0.0/0", nil},
		{"::ffff:0:0/96", "0.0.0.0/0", nil},
		{"0.0.0.0/0", "0.0.0.0/0", nil},
		{"::/0", "::/0", nil},
		{"::/80", "::/80", nil}, // written as IPv6: stays IPv6
		{"::ffff:10.0.0.0/95", "", ErrShortMapped},
		{"::ffff:10.0.0.0/80", "", ErrShortMapped},
		{"::ffff:10.0.0.0/0", "", ErrShortMapped},
		{"::ffff:10.0.0.0/129", "", ErrNotPrefix},
		{"10.0.0.1", "", ErrNotPrefix},
		{"fe80::1%eth0/64", "", ErrNotPrefix},
		{"nope", "", ErrNotPrefix},
	}
	for _, tc := range tests {
		got, err := ParsePrefix(tc.in)
		if !errors.Is(err, tc.err) {
			t.Errorf("ParsePrefix(%q) error %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got.String() != tc.want {
			t.Errorf("ParsePrefix(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAdmits(t *testing.T) {
	nets := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			p, err := ParsePrefix(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	addr := func(s string) netip.Addr {
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name     string
		networks []netip.Prefix
		client   netip.Addr
		want     bool
	}{
		{"empty list admits IPv4", nil, addr("203.0.113.9"), true},
		{"empty list admits IPv6", nil, addr("2001:db8::1"), true},
		{"empty list admits an unknown client", nil, netip.Addr{}, true},
		{"mapped entry, IPv4 client", nets("::ffff:10.0.0.0/104"), addr("10.9.8.7"), true},
		{"mapped entry, mapped client", nets("::ffff:10.0.0.0/104"), addr("::ffff:10.9.8.7"), true},
		{"IPv4 entry, mapped client", nets("10.0.0.0/8"), addr("::ffff:10.9.8.7"), true},
		{"mapped entry, outside", nets("::ffff:10.0.0.0/104"), addr("11.0.0.1"), false},
		{"0.0.0.0/0 admits IPv4", nets("0.0.0.0/0"), addr("198.51.100.1"), true},
		{"0.0.0.0/0 admits mapped IPv4", nets("0.0.0.0/0"), addr("::ffff:198.51.100.1"), true},
		{"0.0.0.0/0 refuses IPv6", nets("0.0.0.0/0"), addr("2001:db8::1"), false},
		{"::/0 admits IPv6", nets("::/0"), addr("2001:db8::1"), true},
		{"::/0 refuses IPv4", nets("::/0"), addr("198.51.100.1"), false},
		{"::/0 refuses mapped IPv4", nets("::/0"), addr("::ffff:198.51.100.1"), false},
		{"both admit IPv4", nets("::/0", "0.0.0.0/0"), addr("198.51.100.1"), true},
		{"both admit IPv6", nets("::/0", "0.0.0.0/0"), addr("2001:db8::1"), true},
		{"::ffff:0:0/96 is all of IPv4", nets("::ffff:0:0/96"), addr("198.51.100.1"), true},
		{"zoned client", nets("fe80::/10"), addr("fe80::1%eth0"), true},
		{"unknown client", nets("0.0.0.0/0", "::/0"), netip.Addr{}, false},
	}
	for _, tc := range tests {
		if got := Admits(tc.networks, tc.client); got != tc.want {
			t.Errorf("%s: Admits(%v, %v) = %v, want %v", tc.name, tc.networks, tc.client, got, tc.want)
		}
	}
}

func TestBudgetKeepsOneBudgetPerIPv6Network(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"unknown", "unknown"},
	} {
		if got := Budget(tc.ip); got != tc.want {
			t.Errorf("Budget(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
