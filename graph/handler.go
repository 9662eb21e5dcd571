package graph

import (
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/internal/live"
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
	// MaxFields refuses a document of more fields once its fragments are
	// expanded, and MaxSelection one with a larger selection set, before
	// validation, which would walk every spread of every fragment.
	MaxFields    int
	MaxSelection int
	// MaxTokens refuses a document of more lexical tokens before parsing it all.
	MaxTokens int
	// MaxResponseBytes refuses, with QUERY_TOO_COMPLEX, a response larger
	// than it, rather than sending it or cutting it short; 0 sets no limit.
	MaxResponseBytes int
	// OnlineWindow is how recently a device must have been seen to be ONLINE.
	OnlineWindow time.Duration
	Logger       *slog.Logger
	// Registerer, when set, gets the metrics of the operations answered.
	Registerer prometheus.Registerer
	// Live serves the subscriptions, over the transports Stream tunes;
	// nil: subscriptions are refused.
	Live   *live.Hub
	Stream LiveOptions
}

// queryCacheSize is how many documents the caches keep: parsed and
// validated, persisted, and measured by the limits.
const queryCacheSize = 1000

// NewHandler builds the GraphQL endpoint: explicit transports, a parsed
// query cache, automatic persisted queries, the cost limit, error handling
// that never leaks internals, and the metrics and log entry of every
// operation answered (see operations).
func NewHandler(s *store.Store, o Options) *handler.Server {
	cfg := generated.Config{Resolvers: NewResolver(s, o.OnlineWindow, o.Live), Directives: Directives()}
	setCosts(&cfg.Complexity)
	es := generated.NewExecutableSchema(cfg)
	srv := handler.New(es)
	r := responder{maxResponse: o.MaxResponseBytes, maxTokens: o.MaxTokens, ops: newOperations(es.Schema(), o.Registerer)}
	if o.Live != nil {
		// Before POST, which would take an event-stream request.
		srv.AddTransport(websocketTransport(o.Stream, o.Live))
		srv.AddTransport(newSSETransport(o.Stream, r))
	}
	srv.AddTransport(getTransport{r})
	srv.AddTransport(postTransport{r})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](queryCacheSize))
	presenter := ErrorPresenter(o.Logger)
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		// With the schema hidden, "did you mean" hints would leak it, and
		// so would the names in validation messages.
		srv.Use(refuseIntrospection{})
		srv.SetDisableSuggestion(true)
		presenter = hideSchema(presenter)
	}
	srv.SetParserTokenLimit(o.MaxTokens)
	// Persisted queries first, so the limits measure the query they name.
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](queryCacheSize)})
	srv.Use(newQueryLimits(o, queryCacheSize))
	srv.Use(newCostLimit(o.MaxCost, queryCacheSize))
	srv.SetErrorPresenter(presenter)
	srv.SetRecoverFunc(Recover(o.Logger))
	srv.AroundOperations(withRowCache)
	srv.AroundOperations(onlySubscriptions)
	srv.AroundOperations(chargeStreamed)
	srv.AroundOperations(withStreamSlot)
	srv.AroundResponses(withEventContext)
	return srv
}
