package graph

import (
	"context"
	"slices"

	"github.com/99designs/gqlgen/graphql"

	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/scope"
)

// Directives returns the schema's directive implementations.
func Directives() generated.DirectiveRoot {
	return generated.DirectiveRoot{Auth: authDirective}
}

// authDirective implements @auth(requires:, principals:): the field runs only
// for a credential of a kind it names, and, for a team API key, one holding
// every scope listed.
func authDirective(ctx context.Context, _ any, next graphql.Resolver, requires []scope.Scope, principals []model.PrincipalKind) (any, error) {
	var err error
	if slices.Contains(principals, model.PrincipalKindDevice) {
		_, err = auth.RequireDevice(ctx)
	} else {
		_, err = auth.Require(ctx, requires...)
	}
	if err != nil {
		return nil, err
	}
	return next(ctx)
}

// caller returns the request's principal. Every resolver that calls it sits
// under @auth, which has already refused a request without one.
func caller(ctx context.Context) *auth.Principal { return auth.FromContext(ctx) }
