package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/reqlog"
)

// Label values of operations that are not one of the schema's root fields,
// and of requests that never named an operation that could run (a body or
// a document that does not parse or validate).
const (
	otherField = "other"
	noneLabel  = "none"
	okOutcome  = "ok"
)

// operations counts and times the GraphQL requests answered, by operation
// type and root field, and notes them in the request's log entry. Every
// label is bounded: the field is one of the schema's root fields, read from
// the schema at start, or "other" (an alias counts as the field it aliases;
// the client's operationName is never a label); the outcome is "ok" or the
// first error's code, one of the contract's, or "other".
type operations struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// fields holds a series per root field of each operation type; other
	// the one of any other field of that type.
	fields map[ast.Operation]map[string]*opSeries
	other  map[ast.Operation]*opSeries
	// none is the series of requests that ran no operation.
	none     *opSeries
	outcomes map[string]string
}

// opSeries is the series of one operation type and field. Its children
// are made on first use, so that /metrics lists only what was asked, and
// then kept, so that the hot path hashes no label.
type opSeries struct {
	typ, field string
	once       sync.Once
	ok         prometheus.Counter
	duration   prometheus.Observer
}

func (s *opSeries) children(o *operations) *opSeries {
	s.once.Do(func() {
		s.ok = o.total.WithLabelValues(s.typ, s.field, okOutcome)
		s.duration = o.duration.WithLabelValues(s.typ, s.field)
	})
	return s
}

// newOperations reads the root fields of the schema and registers the
// metrics on reg; with a nil reg they are kept but not exposed.
func newOperations(schema *ast.Schema, reg prometheus.Registerer) *operations {
	o := &operations{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyplane_graphql_operations_total",
			Help: "GraphQL requests answered, by operation type, root field (a field of the schema, or other) and outcome (ok, or the first error's code).",
		}, []string{"type", "field", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyplane_graphql_operation_duration_seconds",
			Help: "Time from the request reaching the GraphQL handler to its response being ready, by operation type and root field.",
			// 0.5 ms to about 4 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"type", "field"}),
		fields:   map[ast.Operation]map[string]*opSeries{},
		other:    map[ast.Operation]*opSeries{},
		none:     &opSeries{typ: noneLabel, field: noneLabel},
		outcomes: map[string]string{},
	}
	for _, c := range apperr.Codes() {
		o.outcomes[string(c)] = string(c)
	}
	for typ, def := range map[ast.Operation]*ast.Definition{ast.Query: schema.Query, ast.Mutation: schema.Mutation, ast.Subscription: schema.Subscription} {
		o.other[typ] = &opSeries{typ: string(typ), field: otherField}
		if def == nil {
			continue
		}
		fields := map[string]*opSeries{"__typename": {typ: string(typ), field: "__typename"}}
		for _, f := range def.Fields {
			fields[f.Name] = &opSeries{typ: string(typ), field: f.Name}
		}
		o.fields[typ] = fields
	}
	if reg != nil {
		reg.MustRegister(o.total, o.duration)
	}
	return o
}

// series returns the series of an operation: of its first root field that
// is not __typename (or __typename, when it selects nothing else).
func (o *operations) series(op operation) *opSeries {
	if op.def == nil {
		return o.none
	}
	other, known := o.other[op.def.Operation]
	if !known {
		return o.none
	}
	if s, ok := o.fields[op.def.Operation][rootField(op.def.SelectionSet, op.frags, 0)]; ok {
		return s
	}
	return other
}

// maxFragmentNesting bounds how deep rootField looks through fragments for
// the first field; a validated document has no cycle, this is a backstop.
const maxFragmentNesting = 8

// rootField returns the name (never the alias) of the first root field of
// a selection set, looking into fragments; __typename only when there is
// no other. A spread that validation did not resolve is looked up in frags.
func rootField(set ast.SelectionSet, frags ast.FragmentDefinitionList, depth int) string {
	fallback := ""
	for _, sel := range set {
		var name string
		switch s := sel.(type) {
		case *ast.Field:
			name = s.Name
		case *ast.InlineFragment:
			if depth < maxFragmentNesting {
				name = rootField(s.SelectionSet, frags, depth+1)
			}
		case *ast.FragmentSpread:
			def := s.Definition
			if def == nil {
				def = frags.ForName(s.Name)
			}
			if def != nil && depth < maxFragmentNesting {
				name = rootField(def.SelectionSet, frags, depth+1)
			}
		}
		switch name {
		case "":
		case "__typename":
			fallback = name
		default:
			return name
		}
	}
	return fallback
}

// record counts and times one response about to be written, and notes its
// operation and error codes in the request's log entry. The client's
// operationName goes to the log only.
func (o *operations) record(ctx context.Context, op operation, resp *graphql.Response) {
	if o == nil {
		return
	}
	s := o.series(op).children(o)
	entry := reqlog.From(ctx)
	if entry != nil && s != o.none {
		entry.OpType, entry.OpField = s.typ, s.field
	}
	if entry != nil && op.name != "" {
		entry.SetOpName(op.name)
	}
	outcome := okOutcome
	for i, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		if i == 0 {
			outcome = o.outcomes[code]
			if outcome == "" {
				outcome = otherField
			}
		}
		if entry != nil {
			entry.AddCode(code)
			// Why a credential in the input (enrollDevice's key) or a key
			// that ended mid-request was refused, as a 401 says it.
			if reason, _ := e.Extensions["reason"].(string); reason != "" && entry.Reason == "" && code == string(apperr.Unauthenticated) {
				entry.Reason = reason
			}
		}
	}
	if outcome == okOutcome {
		s.ok.Inc()
	} else {
		o.total.WithLabelValues(s.typ, s.field, outcome).Inc()
	}
	if start := graphql.GetStartTime(ctx); !start.IsZero() {
		s.duration.Observe(time.Since(start).Seconds())
	}
}
