package graph

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/scope"
)

// TestPanicAnswersInternal: resolvers that panic, two at once (gqlgen runs
// sibling resolvers in goroutines of their own), answer INTERNAL with the
// request's id, and the process goes on. The handler has no store, so every
// resolver that reaches it panics. This is why gqlgen's omit_panic_handler
// stays off: without the generated recover, a panic in one of those
// goroutines would end the process, not the request.
func TestPanicAnswersInternal(t *testing.T) {
	h := newTestHandler(t, true)
	ctx := requestid.With(context.Background(), "0123456789abcdef01234567")
	ctx = auth.WithPrincipal(ctx, &auth.Principal{Kind: auth.KindAPIKey, TeamID: uuid.New(), KeyID: uuid.New(), Scopes: scope.Of(scope.All...)})
	for range 2 { // and again: the process went on
		a := post(ctx, t, h, `{ a: team { id name createdAt } b: team { name } }`, nil)
		internal := 0
		for _, e := range a.Errors {
			if e.Extensions["code"] == "INTERNAL" {
				internal++
				if e.Extensions["requestId"] != "0123456789abcdef01234567" {
					t.Fatalf("INTERNAL without the request's id: %s", a.raw)
				}
			}
		}
		if internal == 0 {
			t.Fatalf("no INTERNAL for a panic: %s", a.raw)
		}
	}
}
