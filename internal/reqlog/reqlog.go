// Package reqlog carries what one request's log line says beyond the HTTP
// layer's own view: the HTTP layer puts an Entry in the request's context,
// and the layers that learn something fill it in (the credential check its
// caller or why it failed, the GraphQL layer the operation and its error
// codes), so that one line per request tells it all.
package reqlog

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/ids"
)

// Entry is what one request's log line says beyond method, path, status and
// duration. It is filled in by one goroutine at a time: the middleware, the
// credential check and the transport run one after another.
type Entry struct {
	// Log is the server's logger, for lines a request writes besides its
	// own (its audit events).
	Log *slog.Logger
	// OpType is the GraphQL operation's type (query, mutation,
	// subscription), "" when the request ran none.
	OpType string
	// OpField is the operation's first root field, bounded as the metrics
	// bound it: a field of the schema, or "other".
	OpField string
	// OpName is the operationName the client sent, clipped (SetOpName).
	OpName string
	// Codes are the distinct error codes of the response, in order.
	Codes []string
	// Reason is why the credential did not authenticate (a 401).
	Reason string
	// Principal is the authenticated caller.
	Principal *auth.Principal
	// DB counts the request's statements, at debug level only; nil otherwise.
	DB *db.RequestStats
}

type key struct{}

// With returns ctx carrying e.
func With(ctx context.Context, e *Entry) context.Context {
	return context.WithValue(ctx, key{}, e)
}

// From returns the request's entry, or nil outside a request.
func From(ctx context.Context) *Entry {
	e, _ := ctx.Value(key{}).(*Entry)
	return e
}

// AddCode notes an error code of the response, once.
func (e *Entry) AddCode(code string) {
	if code != "" && !slices.Contains(e.Codes, code) {
		e.Codes = append(e.Codes, code)
	}
}

// MaxOpName bounds the operationName logged, in bytes.
const MaxOpName = 100

// SetOpName notes the client's operationName: control characters (a line
// break would forge a line of a text log) are dropped, and it is clipped to
// MaxOpName bytes of valid UTF-8.
func (e *Entry) SetOpName(name string) {
	e.OpName = clean(name)
}

func clean(s string) string {
	safe := len(s) <= MaxOpName && utf8.ValidString(s)
	for i := 0; safe && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			safe = false
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Cf, r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > MaxOpName {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Actor returns the caller's global id (key_… or dev_…), never a secret;
// "" when the request presented no credential that authenticated.
func (e *Entry) Actor() string {
	return ActorID(e.Principal)
}

// ActorID returns a principal's global id, "" for nil.
func ActorID(p *auth.Principal) string {
	switch {
	case p == nil:
		return ""
	case p.Kind == auth.KindDevice:
		return ids.Encode(ids.Device, p.DeviceID)
	default:
		return ids.Encode(ids.APIKey, p.KeyID)
	}
}
