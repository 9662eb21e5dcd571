// Package netaddr reads IP addresses and networks the way people write
// them, and holds the one rule of what an address allowlist admits. The
// client address, the allowlist entries a key is created with, the entries
// it is checked against and the trusted proxies all go through it, so that
// one address has one spelling everywhere.
//
// The rule: an IPv4-mapped IPv6 address is the IPv4 address it maps
// (::ffff:192.0.2.1 is 192.0.2.1, ::ffff:10.0.0.0/104 is 10.0.0.0/8), and a
// network admits the addresses of its own family only: 0.0.0.0/0 admits
// every IPv4 client, ::/0 every IPv6 client, and the two together any
// client. That is how cloud firewalls read them too.
package netaddr

import (
	"errors"
	"net/netip"
)

// Errors of ParsePrefix.
var (
	// ErrNotPrefix is text that is not a network in CIDR notation.
	ErrNotPrefix = errors.New("not a CIDR")
	// ErrShortMapped is a network written in IPv4-mapped form with fewer
	// than 96 bits: it reaches past the mapped IPv4 space into IPv6, which
	// is almost certainly not what its writer meant.
	ErrShortMapped = errors.New("an IPv4-mapped network needs at least /96")
)

// Canonical returns the address in the one form it is compared in: an
// IPv4-mapped IPv6 address becomes IPv4, and an IPv6 zone is dropped (a
// zoned address would match no network).
func Canonical(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// ParseAddr reads an IP address into its canonical form.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return Canonical(a), nil
}

// ParsePrefix reads a network in CIDR notation and returns it masked
// (203.0.113.7/24 is 203.0.113.0/24), an IPv4-mapped one as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, ErrNotPrefix
	}
	return CanonicalPrefix(p)
}

// CanonicalPrefix returns the network masked, and an IPv4-mapped one
// (::ffff:10.0.0.0/104) as the IPv4 network it covers (10.0.0.0/8). A
// network written in mapped form with fewer than 96 bits is refused with
// ErrShortMapped; one that was already masked (::/80) is plain IPv6.
func CanonicalPrefix(p netip.Prefix) (netip.Prefix, error) {
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, ErrShortMapped
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
	}
	return p.Masked(), nil
}

// Admits reports whether an allowlist admits a client: an empty list admits
// anyone, otherwise the client's canonical address must fall in one of the
// networks, each of which admits its own family only. An invalid address
// (a client whose address is unknown) is admitted by no network.
func Admits(networks []netip.Prefix, client netip.Addr) bool {
	if len(networks) == 0 {
		return true
	}
	client = Canonical(client)
	for _, n := range networks {
		if n.Contains(client) {
			return true
		}
	}
	return false
}

// Budget names the client that a per-address budget (failed credentials,
// requests without one) is kept for: an IPv4 address, or the /64 network of
// an IPv6 one. One IPv6 host usually holds a whole /64, so budgets kept per
// address would give it billions of them.
func Budget(ip string) string {
	a, err := ParseAddr(ip)
	switch {
	case err != nil:
		return ip
	case a.Is4():
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
