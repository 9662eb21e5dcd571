package graph

import (
	"context"
	"errors"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keyplane/keyplane/internal/apperr"
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
		err := gqlerror.Errorf("%s", introspectionOff)
		errcode.Set(err, errcode.ValidationFailed)
		return err
	}
	return nil
}

// introspectionOff is the refusal of __schema and __type.
const introspectionOff = "introspection is turned off on this server"

// Messages that stand for validation messages while the schema is hidden.
const (
	schemaMismatch    = "the query does not match the schema"
	variablesMismatch = "the variables do not match the schema"
	valueMismatch     = "the value does not match the schema"
)

// hideSchema wraps the error presenter of a server whose schema is hidden.
// gqlparser's validation messages name what the client did not write:
// the type a field is looked up on, the arguments and input fields a
// value lacks, the enum a value is not in. So every validation message,
// of the document or of the variables, becomes a generic one that keeps
// its code and its location; a variable's error keeps its path up to the
// variable's own name, which the client chose. Parse errors quote only the
// client's text and stay, as do the limits' refusals, which name no schema
// element, and the refusal of introspection itself.
//
// A custom scalar's or an enum's own check, which runs as arguments are
// read and knows no field, names its type ("DateTime must be …"); its
// message becomes generic too, and the field it is about stays named.
func hideSchema(next graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		isGQL := errors.As(err, &gqlErr)
		if e, ok := apperr.As(err); ok && e.Code == apperr.BadUserInput && e.Field == "" {
			hidden := apperr.Input("", valueMismatch)
			if isGQL {
				copied := *gqlErr
				copied.Message, copied.Err = valueMismatch, hidden
				return next(ctx, &copied)
			}
			return next(ctx, hidden)
		}
		if isGQL && gqlErr.Err == nil && revealsSchema(gqlErr) {
			hidden := &gqlerror.Error{
				Message:    schemaMismatch,
				Locations:  gqlErr.Locations,
				Extensions: map[string]any{"code": errcode.ValidationFailed},
			}
			if len(gqlErr.Path) > 0 && gqlErr.Path[0] == ast.PathName("variable") {
				hidden.Message = variablesMismatch
				hidden.Path = gqlErr.Path[:min(len(gqlErr.Path), 2)]
			}
			err = hidden
		}
		return next(ctx, err)
	}
}

// revealsSchema reports whether a gqlgen error may carry a name from the
// schema: any validation error, but for the few whose text is fixed or
// names only what the client sent.
func revealsSchema(err *gqlerror.Error) bool {
	if code, _ := err.Extensions["code"].(string); code != errcode.ValidationFailed {
		return false
	}
	switch m := err.Message; {
	case m == introspectionOff, m == "no operation provided":
		return false
	case strings.HasPrefix(m, "operation ") && strings.HasSuffix(m, " not found"):
		// gqlgen's answer to an operationName the document lacks.
		return false
	}
	return true
}

// selectsIntrospection reports whether a selection, through fragments too,
// asks for __schema or __type.
func selectsIntrospection(set ast.SelectionSet, fragments ast.FragmentDefinitionList, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if introspectionField(s.Name) || selectsIntrospection(s.SelectionSet, fragments, seen) {
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
