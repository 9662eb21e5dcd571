package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyplane/keyplane/internal/auth"
)

// withClient works out where a request comes from, once, for the allowlist,
// the rate limits, the audit log and the access log. The socket's address is
// the client, unless it is a trusted proxy: then X-Forwarded-For is read from
// the right, past every trusted proxy, and the first other address is the
// client. An address a client wrote itself never counts unless a trusted
// proxy vouches for it.
func withClient(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := auth.Client{IP: clientAddress(r, trusted), UserAgent: r.UserAgent()}
			next.ServeHTTP(w, r.WithContext(auth.WithClient(r.Context(), c)))
		})
	}
}

func clientAddress(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if !isTrusted(addr, trusted) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: stop at the last address we could read
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
