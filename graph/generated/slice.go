package generated

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSlice marshals the elements of a list one after another, in the
// calling goroutine. gqlgen's generated code starts a goroutine per element
// (graphql.MarshalSliceConcurrently); the go:generate step in graph/
// rewrites those calls to this one. Nothing an element resolves waits on
// I/O of its own: the fields that read the database are batch resolvers,
// which read for every element of the list at once. A panic in an element
// becomes an error on that element's path and nulls the list, as gqlgen's
// version does.
func marshalSlice(ctx context.Context, length int, _ int64, _ bool, marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, length)
	for i := range length {
		index := i
		childCtx := graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &index})
		failed := func() (failed bool) {
			defer func() {
				if r := recover(); r != nil {
					graphql.AddError(childCtx, graphql.Recover(childCtx, r))
					failed = true
				}
			}()
			ret[i] = marshalElement(childCtx, i)
			return false
		}()
		if failed {
			return nil
		}
	}
	return ret
}
