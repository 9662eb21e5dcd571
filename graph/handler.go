package graph

import (
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/internal/store"
)

// Options tune the GraphQL endpoint. The limits and OnlineWindow are taken
// as given and must be positive; internal/config holds their defaults.
type Options struct {
	// Introspection allows __schema and __type, and field suggestions in
	// validation errors.
	Introspection bool
	// MaxCost refuses, before execution, a query whose cost exceeds it.
	MaxCost int
	// MaxDepth and MaxAliases refuse deep and wide queries.
	MaxDepth   int
	MaxAliases int
	// MaxTokens refuses a document of more lexical tokens before parsing it all.
	MaxTokens int
	// OnlineWindow is how recently a device must have been seen to be ONLINE.
	OnlineWindow time.Duration
	Logger       *slog.Logger
}

// NewHandler builds the GraphQL endpoint: explicit transports, a parsed
// query cache, automatic persisted queries, the cost limit, and error
// handling that never leaks internals.
func NewHandler(s *store.Store, o Options) *handler.Server {
	cfg := generated.Config{Resolvers: NewResolver(s, o.OnlineWindow), Directives: Directives()}
	setCosts(&cfg.Complexity)
	srv := handler.New(generated.NewExecutableSchema(cfg))
	srv.AddTransport(getTransport{})
	srv.AddTransport(postTransport{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		// With the schema hidden, "did you mean" hints would leak it.
		srv.Use(refuseIntrospection{})
		srv.SetDisableSuggestion(true)
	}
	srv.SetParserTokenLimit(o.MaxTokens)
	srv.Use(queryLimits{maxDepth: o.MaxDepth, maxAliases: o.MaxAliases})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	srv.Use(extension.FixedComplexityLimit(o.MaxCost, complexity.WithFixedScalarValue(0)))
	srv.SetErrorPresenter(ErrorPresenter(o.Logger))
	srv.SetRecoverFunc(Recover(o.Logger))
	srv.AroundOperations(withRowCache)
	return srv
}
