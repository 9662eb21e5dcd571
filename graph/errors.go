package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/store"
)

// ErrorPresenter turns resolver errors into what the client sees: a
// client-safe error keeps its message and gets its code, and so does a
// store outcome the contract names (fromStore); anything else is logged
// with the request id and shown as INTERNAL with that id only, so no SQL,
// driver text or stack ever leaves the server.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// Raised by gqlgen itself: parse and validation errors, limits.
			code := apperr.BadUserInput
			c, _ := gqlErr.Extensions["code"].(string)
			if c == "COMPLEXITY_LIMIT_EXCEEDED" || c == string(apperr.QueryTooComplex) || strings.Contains(gqlErr.Message, "token limit") {
				code = apperr.QueryTooComplex
			}
			gqlErr.Extensions = map[string]any{"code": string(code)}
			if len(gqlErr.Path) > 1 && gqlErr.Path[0] == ast.PathName("variable") {
				// A variable that does not fit its type: name the input field.
				gqlErr.Extensions["field"] = lastField(gqlErr.Path)
			}
			return gqlErr
		}
		presented := graphql.DefaultErrorPresenter(ctx, err)
		e, ok := apperr.As(err)
		if !ok {
			e, ok = fromStore(err)
		}
		if ok {
			presented.Message = e.Message
			presented.Extensions = map[string]any{"code": string(e.Code)}
			if field := e.Field; field != "" || e.Code == apperr.BadUserInput {
				if field == "" {
					field = lastField(presented.Path)
				}
				presented.Extensions["field"] = field
			}
			if e.Scope != "" {
				presented.Extensions["scope"] = e.Scope
			}
			if e.Reason != "" {
				presented.Extensions["reason"] = e.Reason
			}
			return presented
		}
		id := requestid.From(ctx)
		log.ErrorContext(ctx, "resolver failed", "request_id", id, "path", presented.Path.String(), "err", err)
		presented.Message = "internal error; quote request id " + id + " to the operator"
		presented.Extensions = map[string]any{"code": string(apperr.Internal), "requestId": id}
		return presented
	}
}

// storeCodes are the contract's codes of the store's sentinels. A conflict
// and a lost race are both CONFLICT: the caller reads again and retries.
var storeCodes = []struct {
	err  error
	code apperr.Code
}{
	{store.ErrNotFound, apperr.NotFound},
	{store.ErrConflict, apperr.Conflict},
	{store.ErrStale, apperr.Conflict},
}

// fromStore returns the client-safe form of a store sentinel in err's chain,
// which the domain passed on as it was. The message is the store's own text
// ("api key not found"), taken from the *store.Error alone, so that neither
// driver text nor what wraps it reaches the client.
func fromStore(err error) (*apperr.Error, bool) {
	var se *store.Error
	if !errors.As(err, &se) {
		return nil, false
	}
	for _, m := range storeCodes {
		if errors.Is(se, m.err) {
			return &apperr.Error{Code: m.code, Message: se.Error()}, true
		}
	}
	return nil, false
}

// lastField names the innermost field of a path, for input errors raised by
// scalars, which do not know which field they are parsing.
func lastField(path ast.Path) string {
	for i := len(path) - 1; i >= 0; i-- {
		if name, ok := path[i].(ast.PathName); ok {
			return string(name)
		}
	}
	return ""
}

// Recover logs a panic in a resolver with its stack and answers INTERNAL.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "resolver panicked", "request_id", requestid.From(ctx), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic")
	}
}
