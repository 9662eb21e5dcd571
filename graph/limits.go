package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keyplane/keyplane/internal/apperr"
)

func init() {
	// A refused query is the client's fault: 400 under the GraphQL response
	// media type, like a validation error.
	errcode.RegisterErrorType(string(apperr.QueryTooComplex), errcode.KindProtocol)
	errcode.RegisterErrorType("COMPLEXITY_LIMIT_EXCEEDED", errcode.KindProtocol)
}

// queryLimits refuses, before anything runs, a query nested deeper than
// maxDepth or with more than maxAliases aliases: the shapes a crafted query
// uses to make a small request cost a lot. Fragments count where they are
// spread, so they hide nothing.
type queryLimits struct {
	maxDepth   int
	maxAliases int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = queryLimits{}

func (queryLimits) ExtensionName() string                   { return "QueryLimits" }
func (queryLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (l queryLimits) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	w := walk{fragments: oc.Doc.Fragments, maxDepth: l.maxDepth}
	w.selections(oc.Operation.SelectionSet, 1, map[string]bool{})
	switch {
	case w.depth > l.maxDepth:
		return tooComplex(fmt.Sprintf("the query is nested %d levels deep or more; the limit is %d", w.depth, l.maxDepth))
	case w.aliases > l.maxAliases:
		return tooComplex(fmt.Sprintf("the query uses %d aliases; the limit is %d", w.aliases, l.maxAliases))
	}
	return nil
}

// tooComplex is a refusal with the QUERY_TOO_COMPLEX code.
func tooComplex(message string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", message)
	errcode.Set(err, string(apperr.QueryTooComplex))
	return err
}

// walk measures a selection: its deepest field and its aliases.
type walk struct {
	fragments ast.FragmentDefinitionList
	maxDepth  int
	depth     int
	aliases   int
}

// selections walks one selection set at a depth. It stops descending past
// the limit, so a pathological query costs the walk little too; spreading a
// fragment inside itself is refused by validation before this runs, and
// inFragment guards against it anyway.
func (w *walk) selections(set ast.SelectionSet, depth int, inFragment map[string]bool) {
	if depth > w.maxDepth+1 {
		return
	}
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			w.depth = max(w.depth, depth)
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			w.selections(s.SelectionSet, depth+1, inFragment)
		case *ast.InlineFragment:
			w.selections(s.SelectionSet, depth, inFragment)
		case *ast.FragmentSpread:
			if def := w.fragments.ForName(s.Name); def != nil && !inFragment[s.Name] {
				inFragment[s.Name] = true
				w.selections(def.SelectionSet, depth, inFragment)
				delete(inFragment, s.Name)
			}
		}
	}
}
