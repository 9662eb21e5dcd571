package graph

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/scope"
)

// TestPanicAnswersInternal: sibling resolvers, which gqlgen runs in
// goroutines of their own, reach a store that is not there and panic; the
// request answers INTERNAL with its id for the panic (its sibling may wait
// on the same failed read and answer otherwise), and the process goes on
// to answer the next request the same way. This is why gqlgen's omit_panic_handler
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
