package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// refuseIntrospection turns KEYPLANE_INTROSPECTION=false into a refusal
// before execution, with a message that says why, rather than a null
// __schema that would read as a server fault. __typename stays allowed:
// clients need it to tell types apart.
type refuseIntrospection struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = refuseIntrospection{}

func (refuseIntrospection) ExtensionName() string                   { return "RefuseIntrospection" }
func (refuseIntrospection) Validate(graphql.ExecutableSchema) error { return nil }

func (refuseIntrospection) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	oc.DisableIntrospection = true
	if selectsIntrospection(oc.Operation.SelectionSet, oc.Doc.Fragments, map[string]bool{}) {
		err := gqlerror.Errorf("introspection is turned off on this server")
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	return nil
}

// selectsIntrospection reports whether a selection, through fragments too,
// asks for __schema or __type.
func selectsIntrospection(set ast.SelectionSet, fragments ast.FragmentDefinitionList, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" || selectsIntrospection(s.SelectionSet, fragments, seen) {
				return true
			}
		case *ast.InlineFragment:
			if selectsIntrospection(s.SelectionSet, fragments, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			if def := fragments.ForName(s.Name); def != nil && selectsIntrospection(def.SelectionSet, fragments, seen) {
				return true
			}
		}
	}
	return false
}
