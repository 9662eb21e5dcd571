package generated

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSlice marshals the elements of a list one after another, in the
// calling goroutine: Keyplane's graph/generated/slice.go, but for the
// omitPanicHandler flag, which this copy honours as gqlgen's
// graphql.MarshalSliceConcurrently does (the floor's gqlgen.yml leaves it
// off, as Keyplane's does). After
// gqlgen, bench/floor/generate.go runs Keyplane's graph/internal/seqlists
// over generated.go, which rewrites gqlgen's calls to
// graphql.MarshalSliceConcurrently (a goroutine per element) into calls to
// this function.
func marshalSlice(ctx context.Context, length int, _ int64, omitPanicHandler bool, marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, length)
	for i := range length {
		index := i
		childCtx := graphql.WithFieldContext(ctx, &graphql.FieldContext{Index: &index})
		if omitPanicHandler {
			ret[i] = marshalElement(childCtx, i)
			continue
		}
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
