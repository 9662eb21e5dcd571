package graph

import (
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2/formatter"

	"github.com/keyplane/keyplane/graph/generated"
)

// SDL returns the schema the endpoint serves, in GraphQL's schema
// definition language, for GET /schema.graphql: every type, directive and
// description of schema.graphqls, ordered by name, without the built-in
// scalars, directives and introspection types every server shares. It is
// formatted from the executable schema, so it is always the one served.
func SDL() string { return sdl() }

var sdl = sync.OnceValue(func() string {
	var b strings.Builder
	formatter.NewFormatter(&b).FormatSchema(generated.NewExecutableSchema(generated.Config{}).Schema())
	return b.String()
})
