package httpapi

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/netaddr"
	"github.com/keyplane/keyplane/internal/requestid"
)

// UnknownClient is the address of a client whose address cannot be read:
// allowlists admit it nowhere, and all such clients share its budgets.
const UnknownClient = "unknown"

// withClient works out where a request comes from, once, for the allowlist,
// the rate limits, the audit log and the access log. The socket's address is
// the client, unless it is a trusted proxy: then X-Forwarded-For is read from
// the right, past every trusted proxy, and the first other address is the
// client. An address a client wrote itself never counts unless a trusted
// proxy vouches for it. A hop that cannot be read stops the walk, and the
// client is unknown: never the proxy, whose address an allowlist may admit
// and whose budget all its clients would then share.
func withClient(trusted []netip.Prefix, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip, badHop := clientAddress(r, trusted)
			if badHop != "" {
				log.WarnContext(r.Context(), "unreadable X-Forwarded-For hop from a trusted proxy; the client's address is unknown",
					"request_id", requestid.From(r.Context()), "hop", truncateHop(badHop))
			}
			c := auth.Client{IP: ip, UserAgent: r.UserAgent()}
			next.ServeHTTP(w, r.WithContext(auth.WithClient(r.Context(), c)))
		})
	}
}

// clientAddress returns the client's address in canonical form (see
// netaddr), or UnknownClient together with the hop that stopped the walk.
func clientAddress(r *http.Request, trusted []netip.Prefix) (ip, badHop string) {
	addr, ok := parseHop(r.RemoteAddr)
	if !ok {
		return UnknownClient, ""
	}
	if !isTrusted(addr, trusted) {
		return addr.String(), ""
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		raw := strings.TrimSpace(hops[i])
		if raw == "" {
			continue // an empty list element, which HTTP says to ignore
		}
		hop, ok := parseHop(raw)
		if !ok {
			return UnknownClient, raw
		}
		addr = hop
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String(), ""
}

// parseHop reads an address as proxies write it: 203.0.113.9,
// 203.0.113.9:51234, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:443, an
// IPv4-mapped one as IPv4. "unknown", an obfuscated name and anything else
// do not parse.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netaddr.Canonical(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	addr, err := netaddr.ParseAddr(s)
	return addr, err == nil
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// canonicalProxies returns the trusted networks in netaddr's canonical form,
// so that a proxy written as ::ffff:10.0.0.0/104 matches 10.0.0.1.
func canonicalProxies(trusted []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		if c, err := netaddr.CanonicalPrefix(p); err == nil {
			p = c
		}
		out = append(out, p)
	}
	return out
}

// truncateHop keeps a logged hop short: it is text a proxy passed along.
func truncateHop(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "?") + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
