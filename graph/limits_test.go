package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/internal/config"
)

// defaultOptions are the endpoint's options with every default of
// internal/config, the introspection switch as given.
func defaultOptions(t testing.TB, introspection bool) Options {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Introspection: introspection, MaxCost: cfg.MaxCost, MaxDepth: cfg.MaxDepth, MaxAliases: cfg.MaxAliases,
		MaxTokens: cfg.MaxTokens, MaxFields: cfg.MaxFields, MaxSelection: cfg.MaxSelection,
		OnlineWindow: cfg.DeviceOnlineWindow, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// newTestHandler is the real endpoint on no store: every request these
// tests send is refused before a resolver would reach it.
func newTestHandler(t testing.TB, introspection bool) *handler.Server {
	t.Helper()
	return NewHandler(nil, defaultOptions(t, introspection))
}

// answer is a GraphQL response as a client reads it.
type answer struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Locations  []any          `json:"locations"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	raw []byte
}

func (a answer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

func (a answer) message() string {
	if len(a.Errors) == 0 {
		return ""
	}
	return a.Errors[0].Message
}

// post sends one operation to h in process, with ctx as the request's.
func post(ctx context.Context, t testing.TB, h http.Handler, query string, vars map[string]any) answer {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{raw: w.Body.Bytes()}
	if err := json.Unmarshal(a.raw, &a); err != nil {
		t.Fatalf("response %d is not JSON: %v: %.300s", w.Code, err, a.raw)
	}
	return a
}

// selectionsIn counts the selections written in a document, every operation
// and fragment definition once, none expanded: the most a linear pass may
// look at.
func selectionsIn(doc *ast.QueryDocument) int {
	var count func(ast.SelectionSet) int
	count = func(set ast.SelectionSet) int {
		n := len(set)
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				n += count(s.SelectionSet)
			case *ast.InlineFragment:
				n += count(s.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += count(op.SelectionSet)
	}
	for _, def := range doc.Fragments {
		n += count(def.SelectionSet)
	}
	return n
}

// doubling writes n fragments, each spreading the next twice through
// body(next), the last selecting leaf: 2^n selections once expanded.
func doubling(op, on string, n int, body func(next string) string, leaf string) string {
	var b strings.Builder
	b.WriteString(strings.ReplaceAll(op, "SPREAD", "...F0"))
	for i := range n {
		fmt.Fprintf(&b, "\nfragment F%d on %s { %s }", i, on, body(fmt.Sprintf("F%d", i+1)))
	}
	fmt.Fprintf(&b, "\nfragment F%d on %s { %s }", n, on, leaf)
	return b.String()
}

// exponentialShapes are documents of about 1 KB whose expansion doubles
// with each fragment: before this check, validation, the depth and alias
// walk and the cost calculation each walked every path.
func exponentialShapes(n int) map[string]string {
	twice := func(next string) string { return "..." + next + " ..." + next }
	return map[string]string{
		"spreads":              doubling("query { SPREAD }", "Query", n, twice, "__typename"),
		"inline fragments":     doubling("query { SPREAD }", "Query", n, func(next string) string { return "... on Query { ..." + next + " } ... { ..." + next + " }" }, "__typename"),
		"aliased fields":       doubling("query { viewer { SPREAD } }", "ApiKey", n, func(next string) string { return "a: createdBy { ..." + next + " } b: createdBy { ..." + next + " }" }, "id"),
		"an unknown fragment":  doubling("query { SPREAD }", "Query", n, twice, "...Missing"),
		"under __schema":       doubling("query { __schema { types { SPREAD } } }", "__Type", n, twice, "name"),
		"an unused fragment":   doubling("query { __typename } fragment Unused on Query { __schema { types { SPREAD } } }", "__Type", n, twice, "name"),
		"without an operation": doubling("fragment Root on Query { SPREAD }", "Query", n, twice, "__typename"),
		"and a cycle":          doubling("query { SPREAD }", "Query", n, twice, "...F0"),
	}
}

// TestExponentialFragmentsAreMeasuredOnce checks the work of the measure,
// not its time: it looks at each selection of the document once, however
// often a fragment is spread, and the document is refused.
func TestExponentialFragmentsAreMeasuredOnce(t *testing.T) {
	o := defaultOptions(t, true)
	l := newQueryLimits(o, 10)
	for _, n := range []int{25, 30, 60} {
		for name, query := range exponentialShapes(n) {
			t.Run(fmt.Sprintf("%d fragments %s", n, name), func(t *testing.T) {
				if len(query) > 4000 && n <= 30 {
					t.Errorf("the shape takes %d bytes; it should stay small", len(query))
				}
				doc, err := parser.ParseQuery(&ast.Source{Input: query})
				if err != nil {
					t.Fatal(err)
				}
				s := measure(doc, l)
				if written := selectionsIn(doc); s.visited > written {
					t.Errorf("the measure visited %d selections of a document that writes %d", s.visited, written)
				}
				refusal := l.checkDocument(s)
				switch {
				case refusal == nil:
					t.Fatalf("not refused: %+v", s)
				case name == "and a cycle":
					if s.cycle == "" {
						t.Errorf("the cycle went unnoticed: %v", refusal)
					}
				case refusal.Extensions["code"] != "QUERY_TOO_COMPLEX" || !strings.Contains(refusal.Message, fmt.Sprint(o.MaxFields)):
					t.Errorf("refused with %v %q, want the field limit", refusal.Extensions["code"], refusal.Message)
				}
			})
		}
	}
}

// TestExponentialFragmentsAreRefusedCheaply sends the shapes through the
// real endpoint. The allocations of a refusal grow with the length of the
// text, not with its expansion: 60 fragments cost about twice 30, where a
// walk of every path would cost 2^30 times more.
func TestExponentialFragmentsAreRefusedCheaply(t *testing.T) {
	h := newTestHandler(t, true)
	ctx := context.Background()
	for name := range exponentialShapes(1) {
		t.Run(name, func(t *testing.T) {
			allocs := map[int]float64{}
			for _, n := range []int{30, 60} {
				query := exponentialShapes(n)[name]
				want := "QUERY_TOO_COMPLEX"
				if name == "and a cycle" {
					want = "BAD_USER_INPUT"
				}
				if a := post(ctx, t, h, query, nil); a.code() != want {
					t.Fatalf("%d fragments: code %q, want %s: %.300s", n, a.code(), want, a.raw)
				}
				run := 0
				allocs[n] = testing.AllocsPerRun(5, func() {
					// A new text each time, so no cache answers.
					run++
					post(ctx, t, h, fmt.Sprintf("%s\n# %d", query, run), nil)
				})
			}
			t.Logf("allocations per refusal: 30 fragments %.0f, 60 fragments %.0f", allocs[30], allocs[60])
			if allocs[60] > 3*allocs[30] {
				t.Errorf("refusing 60 fragments took %.0f allocations, 30 took %.0f: the work is not linear", allocs[60], allocs[30])
			}
		})
	}
}

// TestRepeatedFieldsAreRefusedBeforeValidation sends 4,900 repeated
// fields, which gqlparser's overlapping-fields rule compares pairwise. An
// unknown field rides along: had validation run first, it would answer.
func TestRepeatedFieldsAreRefusedBeforeValidation(t *testing.T) {
	o := defaultOptions(t, true)
	query := "{ unknownField " + strings.Repeat("__typename ", 4900) + "}"
	a := post(context.Background(), t, newTestHandler(t, true), query, nil)
	if a.code() != "QUERY_TOO_COMPLEX" || !strings.Contains(a.message(), "once its fragments are expanded") {
		t.Fatalf("want a limit of the expanded document: %.300s", a.raw)
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		t.Fatal(err)
	}
	if s := measure(doc, newQueryLimits(o, 1)); s.visited != 4901 {
		t.Errorf("visited %d selections, want 4901", s.visited)
	}

	// The same fields through fragments of 100 each are as wide.
	var b strings.Builder
	b.WriteString("{ ")
	for i := range 49 {
		fmt.Fprintf(&b, "...F%d ", i)
	}
	b.WriteString("}")
	for i := range 49 {
		fmt.Fprintf(&b, " fragment F%d on Query { %s}", i, strings.Repeat("__typename ", 100))
	}
	if a := post(context.Background(), t, newTestHandler(t, true), b.String(), nil); a.code() != "QUERY_TOO_COMPLEX" {
		t.Fatalf("4,900 fields through 49 fragments: %.300s", a.raw)
	}
}

// TestLimitsAtTheirEdges checks each limit passes at its value and refuses
// one past it, and that depth and aliases stay those of the operation run.
func TestLimitsAtTheirEdges(t *testing.T) {
	ctx := context.Background()
	wide := func(n int) string { return "{ " + strings.Repeat("__typename ", n) + "}" }
	// Four sets of 9 fields under a set of 4: 40 fields.
	teams := func(last int) string {
		return "{ a: team { " + strings.Repeat("name ", 9) + "} b: team { " + strings.Repeat("name ", 9) +
			"} c: team { " + strings.Repeat("name ", 9) + "} d: team { " + strings.Repeat("name ", last) + "} }"
	}
	// Three spreads of 9 fields (33 in the operation) and the fragment's own 9.
	spread := "{ a: team { ...F } b: team { ...F } c: team { ...F } } fragment F on Team { " + strings.Repeat("name ", 9) + "}"
	// Fragments spread side by side in two sets, each selecting a field of
	// its own.
	spreads := func(team, viewer int) string {
		var b strings.Builder
		b.WriteString("{ team { ")
		for i := range team {
			fmt.Fprintf(&b, "...T%d ", i)
		}
		b.WriteString("} viewer { ")
		for i := range viewer {
			fmt.Fprintf(&b, "...V%d ", i)
		}
		b.WriteString("} }")
		for i := range team {
			fmt.Fprintf(&b, " fragment T%d on Team { t%d: name }", i, i)
		}
		for i := range viewer {
			fmt.Fprintf(&b, " fragment V%d on ApiKey { v%d: name }", i, i)
		}
		return b.String()
	}
	// A fragment whose field takes a list of 100 ids, spread n times.
	idsSpread := func(n int) string {
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = fmt.Sprintf(`"key_%d"`, i)
		}
		return "{ " + strings.Repeat("...F ", n) + "} fragment F on Query { nodes(ids: [" + strings.Join(ids, ", ") + "]) { __typename } }"
	}
	deep := "query Deep { viewer " + strings.Repeat("{ createdBy ", 11) + "{ id }" + strings.Repeat(" }", 11) + " }"
	// A data query n levels deep: viewer, createdBy n-2 times, id.
	data := func(n int, leaf string) string {
		return "viewer " + strings.Repeat("{ createdBy ", n-2) + "{ " + leaf + " }" + strings.Repeat(" }", n-2)
	}
	// A chain of n ofType under __type: n+2 levels of introspection.
	typeChain := func(n int) string {
		return `__type(name: "Team") { ` + ofTypes(n) + ` }`
	}
	// The chain of n ofType again, each level a fragment spreading the next.
	typeFragments := func(n int) string {
		var b strings.Builder
		b.WriteString(`{ __type(name: "Team") { ...T0 } }`)
		for i := range n {
			fmt.Fprintf(&b, " fragment T%d on __Type { ofType { ...T%d } }", i, i+1)
		}
		fmt.Fprintf(&b, " fragment T%d on __Type { name }", n)
		return b.String()
	}
	// The standard queries' deepest path: __schema, types, fields, type,
	// nine ofType, and a leaf, 14 levels; n more ofType make it 14+n.
	schemaChain := func(n int) string {
		return "__schema { types { fields { type { " + ofTypes(9+n) + " } } } }"
	}
	for _, tc := range []struct {
		name                    string
		maxFields, maxSelection int
		query, operation, want  string
	}{
		{"10 fields in a set", 2000, 10, wide(10), "", ""},
		{"11 fields in a set", 2000, 10, wide(11), "", "holds 11 fields or more"},
		{"11 fields through a fragment", 2000, 10, "{ __typename ...F } fragment F on Query { " + strings.Repeat("__typename ", 10) + "}", "", "holds 11 fields or more"},
		{"11 fields through an inline fragment", 2000, 10, "{ __typename ... on Query { " + strings.Repeat("__typename ", 10) + "} }", "", "holds 11 fields or more"},
		{"40 fields", 40, 200, teams(9), "", ""},
		{"41 fields", 40, 200, teams(10), "", "selects 41 fields or more"},
		{"a fragment counts where it is spread and where it is defined", 40, 200, spread, "", "selects 42 fields or more"},
		{"45 pairs of one field", 2000, 10, "{ team { " + strings.Repeat("name ", 10) + "} }", "", ""},
		{"46 pairs of one field", 2000, 10, "{ team { " + strings.Repeat("name ", 10) + "} team { id } }", "", "compare 46 pairs"},
		{"pairs through a fragment count where it is spread", 2000, 10, "{ team { ...F } team { ...F } } fragment F on Team { " + strings.Repeat("name ", 5) + "}", "", "compare 46 pairs"},
		{"pairs in a fragment no operation spreads count on their own", 2000, 10, "{ team { name } } fragment F on Team { " + strings.Repeat("name ", 9) + "} fragment G on Team { name ...F }", "", "compare 81 pairs"},
		{"a chain of fragments is counted once", 2000, 10, "{ team { ...F0 } } fragment F0 on Team { name ...F1 } fragment F1 on Team { name ...F2 } " +
			"fragment F2 on Team { name ...F3 } fragment F3 on Team { name ...F4 } fragment F4 on Team { name ...F5 } fragment F5 on Team { name ...F6 } " +
			"fragment F6 on Team { name ...F7 } fragment F7 on Team { name ...F8 } fragment F8 on Team { name ...F9 } fragment F9 on Team { name }", "", ""},
		{"42 pairs of fragments spread together", 2000, 10, spreads(7, 7), "", ""},
		{"49 pairs of fragments spread together", 2000, 10, spreads(8, 7), "", "compare 49 pairs"},
		{"pairs under aliases count by response name", 2000, 10, "{ team { n: name n: name } t: team { n: name } u: team { n: name } }", "", ""},
		{"a list of 100 ids spread 40 times", 2000, 100, idsSpread(40), "", ""},
		{"a list of 100 ids spread 60 times", 2000, 100, idsSpread(60), "", "values or more once its fragments are expanded; the limit is 5000"},
		{"depth 13 in the operation run", 2000, 200, deep + " query Flat { __typename }", "Deep", "nested 13 levels"},
		{"depth 13 in another operation", 2000, 200, deep + " query Flat { __typename }", "Flat", ""},
		{"depth 13 alongside introspection", 2000, 100, "{ " + data(13, "id") + " " + schemaChain(0) + " }", "", "nested 13 levels deep or more; the limit is 12"},
		{"depth 12 alongside introspection 16 deep", 2000, 100, "{ " + data(12, "id") + " " + schemaChain(2) + " }", "", ""},
		{"introspection 16 deep from __schema", 2000, 100, "{ " + schemaChain(2) + " }", "", ""},
		{"introspection 17 deep from __schema", 2000, 100, "{ " + schemaChain(3) + " }", "", "introspection is nested 17 levels deep or more from __schema or __type; the limit is 16"},
		{"ofType 14 deep under __type", 2000, 100, "{ " + typeChain(14) + " }", "", ""},
		{"ofType 15 deep under __type", 2000, 100, "{ " + typeChain(15) + " }", "", "introspection is nested 17 levels"},
		{"ofType 50 deep under __type", 2000, 100, "{ " + typeChain(50) + " }", "", "introspection is nested 52 levels"},
		{"ofType 50 deep under an aliased __schema", 2000, 100, "{ s: __schema { types { " + ofTypes(50) + " } } }", "", "introspection is nested 53 levels"},
		{"ofType 30 deep through a chain of fragments", 2000, 100, typeFragments(30), "", "introspection is nested 32 levels"},
		{"ofType 50 deep in a fragment spread under __schema", 2000, 100, "{ __schema { types { ...R } } } fragment R on __Type { " + ofTypes(50) + " }", "", "introspection is nested 53 levels"},
		{"ofType 50 deep through inline fragments", 2000, 100, "{ ... on Query { __type(name: \"Team\") { ... { " + ofTypes(50) + " } } } }", "", "introspection is nested 52 levels"},
		// __type inside a data field counts for the data depth up to where
		// it starts, as one level: introspection is no way around the
		// data's limit. (Validation refuses __type there, since no field
		// returns Query; the measure does not rely on it.)
		{"__type at data depth 12", 2000, 100, "{ " + data(12, typeChain(0)) + " }", "", ""},
		{"__type at data depth 13", 2000, 100, "{ " + data(13, typeChain(0)) + " }", "", "nested 13 levels deep or more; the limit is 12"},
		{"__type at data depth 13 through a fragment", 2000, 100, "{ " + data(12, "...I") + " } fragment I on ApiKey { createdBy { " + typeChain(0) + " } }", "", "nested 13 levels deep or more; the limit is 12"},
		{"a data field aliased __schema", 2000, 100, "{ __schema: " + data(13, "id") + " }", "", "nested 13 levels deep or more; the limit is 12"},
		{"__typename is a data field", 2000, 100, "{ " + data(13, "__typename") + " }", "", "nested 13 levels deep or more; the limit is 12"},
		{"introspection in the operation run", 2000, 100, "query Deep { " + typeChain(50) + " } query Flat { __typename }", "Flat", ""},
		{"31 aliases", 2000, 200, "{ " + strings.Repeat("a: __typename ", 31) + "}", "", "uses 31 aliases; the limit is 30"},
		{"aliases through a fragment spread twice", 2000, 200, "{ ...F ...F } fragment F on Query { " + strings.Repeat("a: __typename ", 16) + "}", "", "uses 32 aliases"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions(t, true)
			o.MaxFields, o.MaxSelection = tc.maxFields, tc.maxSelection
			l := newQueryLimits(o, 10)
			// The parameters' check, then, as after validation, the operation's.
			refusal := func() string {
				err := l.MutateOperationParameters(ctx, &graphql.RawParams{Query: tc.query, OperationName: tc.operation})
				if err == nil {
					s, _ := l.shapes.get(shapeKey(tc.query))
					err = l.checkOperation(s, tc.operation)
				}
				if err == nil {
					return ""
				}
				return err.Message
			}
			got := refusal()
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			// The second time the shape comes from the cache, with the same answer.
			if again := refusal(); again != got {
				t.Errorf("cached: %q, first %q", again, got)
			}
		})
	}
}

// TestCachedQueryIsNotParsedAgain holds the hot path to one look-up: a
// query seen before allocates nothing in the limits.
func TestCachedQueryIsNotParsedAgain(t *testing.T) {
	l := newQueryLimits(defaultOptions(t, true), 10)
	ctx := context.Background()
	p := &graphql.RawParams{Query: "query Viewer { viewer { id name scopes createdBy { id } } }"}
	if err := l.MutateOperationParameters(ctx, p); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if err := l.MutateOperationParameters(ctx, p); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("a cached query allocates %.0f times", allocs)
	}
}

// TestCancelledRequestDoesNoWork checks a request whose client has gone is
// answered before its query is even parsed, and before it would execute.
func TestCancelledRequestDoesNoWork(t *testing.T) {
	l := newQueryLimits(defaultOptions(t, true), 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	query := "{ __typename }"
	if err := l.MutateOperationParameters(ctx, &graphql.RawParams{Query: query}); err == nil {
		t.Fatal("a cancelled request was measured")
	}
	if _, parsed := l.shapes.get(shapeKey(query)); parsed {
		t.Error("a cancelled request's query was parsed")
	}
	if err := l.MutateOperationContext(ctx, &graphql.OperationContext{}); err == nil {
		t.Error("a cancelled request would execute")
	}
	if a := post(ctx, t, newTestHandler(t, true), query, nil); a.Data != nil && string(a.Data) != "null" || !strings.Contains(a.message(), "cancelled") {
		t.Errorf("a cancelled request answered %.300s", a.raw)
	}
}

// TestComplexityIsBoundedByTheFieldLimit checks that gqlgen's cost walk,
// which visits every spread of every fragment, does at most a few calls per
// field the limit admits: the largest doubling shape under MaxFields.
func TestComplexityIsBoundedByTheFieldLimit(t *testing.T) {
	o := defaultOptions(t, true)
	l := newQueryLimits(o, 10)
	es := &countingSchema{ExecutableSchema: executableSchema()}
	n := 1
	for ; ; n++ {
		doc, err := parser.ParseQuery(&ast.Source{Input: exponentialShapes(n + 1)["aliased fields"]})
		if err != nil {
			t.Fatal(err)
		}
		if measure(doc, l).fields > o.MaxFields {
			break
		}
	}
	query := exponentialShapes(n)["aliased fields"]
	doc, errs := loadQuery(es.Schema(), query)
	if errs != nil {
		t.Fatal(errs)
	}
	s := measure(doc, l)
	if err := l.checkDocument(s); err != nil {
		t.Fatalf("the largest shape admitted is refused: %v", err)
	}
	cost := complexity.Calculate(context.Background(), es, doc.Operations[0], nil, complexity.WithFixedScalarValue(0))
	t.Logf("%d doubling fragments: %d fields, cost %d in %d calls", n, s.fields, cost, es.calls)
	// Node's six implementations are the most one field is priced for.
	if es.calls > 6*o.MaxFields {
		t.Errorf("the cost walk made %d calls for %d fields", es.calls, s.fields)
	}
}

type countingSchema struct {
	graphql.ExecutableSchema
	calls int
}

func (c *countingSchema) Complexity(ctx context.Context, typeName, field string, child int, args map[string]any) (int, bool) {
	c.calls++
	return c.ExecutableSchema.Complexity(ctx, typeName, field, child, args)
}

// loadQuery parses and validates a query with gqlparser's default rules.
func loadQuery(schema *ast.Schema, query string) (*ast.QueryDocument, gqlerror.List) {
	return gqlparser.LoadQueryWithRules(schema, query, rules.NewDefaultRules())
}

// executableSchema is the schema with the costs NewHandler gives it.
func executableSchema() graphql.ExecutableSchema {
	cfg := generated.Config{Resolvers: NewResolver(nil, 0, nil), Directives: Directives()}
	setCosts(&cfg.Complexity)
	return generated.NewExecutableSchema(cfg)
}

// ofTypes is a chain of n ofType ending in name.
func ofTypes(n int) string {
	return strings.Repeat("ofType { ", n) + "name" + strings.Repeat(" }", n)
}

// TestIntrospectionQueriesPassTheLimits measures the introspection queries
// of graphql-js (every option on), GraphiQL and Apollo: they fit the
// default field, selection, pair and value limits with room to spare, are
// one level deep in the data graph and within the introspection depth, and
// answer the schema. With introspection off, each is refused as such.
func TestIntrospectionQueriesPassTheLimits(t *testing.T) {
	o := defaultOptions(t, true)
	files, err := filepath.Glob("testdata/introspection/*.graphql")
	if err != nil || len(files) != 3 {
		t.Fatalf("want 3 introspection queries, found %v %v", files, err)
	}
	h, off := newTestHandler(t, true), newTestHandler(t, false)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: string(text)}, o.MaxTokens)
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := loadQuery(executableSchema().Schema(), string(text)); errs != nil {
				t.Fatalf("not valid against the schema: %v", errs)
			}
			s := measure(doc, newQueryLimits(o, 1))
			l := newQueryLimits(o, 1)
			op := s.ops[0]
			t.Logf("%d fields once expanded (limit %d), widest selection %d (limit %d), %d pairs (limit %d), %d values (limit %d), "+
				"data depth %d (limit %d), introspection depth %d (limit %d)",
				s.fields, o.MaxFields, s.widest, o.MaxSelection, s.overlaps, l.maxOverlaps(), s.values, o.MaxTokens,
				op.depth, o.MaxDepth, op.introspection, l.maxIntrospectionDepth)
			if s.fields*2 > o.MaxFields || s.widest*2 > o.MaxSelection || s.overlaps*2 > l.maxOverlaps() || s.values*2 > o.MaxTokens {
				t.Errorf("less than half the limits to spare")
			}
			if op.depth != 1 || op.introspection <= o.MaxDepth || op.introspection > l.maxIntrospectionDepth {
				t.Errorf("data depth %d, introspection depth %d: want 1, and past the data limit yet within the introspection one", op.depth, op.introspection)
			}
			a := post(context.Background(), t, h, string(text), nil)
			var data struct {
				Schema struct {
					QueryType struct{ Name string }
					Types     []struct {
						Name   string
						Fields []struct{ Name string }
					}
				} `json:"__schema"`
			}
			if len(a.Errors) > 0 || json.Unmarshal(a.Data, &data) != nil || data.Schema.QueryType.Name != "Query" || len(data.Schema.Types) < 20 {
				t.Fatalf("want the schema: %.500s", a.raw)
			}
			if !slices.ContainsFunc(data.Schema.Types, func(ty struct {
				Name   string
				Fields []struct{ Name string }
			}) bool {
				return ty.Name == "Team" && len(ty.Fields) > 0
			}) {
				t.Errorf("Team is not among the types, with its fields")
			}
			if a := post(context.Background(), t, off, string(text), nil); a.code() != "BAD_USER_INPUT" || a.message() != introspectionOff || a.Data != nil && string(a.Data) != "null" {
				t.Errorf("with introspection off: %.300s", a.raw)
			}
		})
	}
}

// TestIntrospectionDepthAtTheEndpoint sends, through the real endpoint, a
// chain of ofType past the introspection bound and a data query past the
// depth limit: both are refused after validation, with introspection on.
// With it off, the chain hears that introspection is off.
func TestIntrospectionDepthAtTheEndpoint(t *testing.T) {
	ctx := context.Background()
	on, off := newTestHandler(t, true), newTestHandler(t, false)
	chain := func(n int) string { return `{ __type(name: "Team") { ` + ofTypes(n) + ` } }` }
	for _, tc := range []struct {
		name, query string
		h           http.Handler
		code, want  string
	}{
		{"ofType 14 deep", chain(14), on, "", ""},
		{"ofType 50 deep", chain(50), on, "QUERY_TOO_COMPLEX", "introspection is nested 52 levels deep or more from __schema or __type; the limit is 16"},
		{"data depth 13", "{ viewer " + strings.Repeat("{ createdBy ", 11) + "{ id }" + strings.Repeat(" }", 11) + " }", on, "QUERY_TOO_COMPLEX", "nested 13 levels deep or more; the limit is 12"},
		{"ofType 14 deep, introspection off", chain(14), off, "BAD_USER_INPUT", introspectionOff},
		{"ofType 50 deep, introspection off", chain(50), off, "BAD_USER_INPUT", introspectionOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := post(ctx, t, tc.h, tc.query, nil)
			if a.code() != tc.code || !strings.Contains(a.message(), tc.want) {
				t.Fatalf("want %q %q: %.300s", tc.code, tc.want, a.raw)
			}
			if tc.code == "" && !strings.Contains(string(a.Data), `"__type":{"ofType":null}`) {
				t.Errorf("no answer: %.300s", a.raw)
			}
		})
	}
}

// TestShapeCacheStaysSmall checks the cache forgets when full.
func TestShapeCacheStaysSmall(t *testing.T) {
	l := newQueryLimits(defaultOptions(t, true), 2)
	for i := range 5 {
		if err := l.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: fmt.Sprintf("{ a%d: __typename }", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.shapes.shapes); n != 2 {
		t.Errorf("the cache holds %d shapes, want 2", n)
	}
}

// BenchmarkLimitsOfACachedQuery is the limits' share of the hot path: a
// query seen before.
func BenchmarkLimitsOfACachedQuery(b *testing.B) {
	l := newQueryLimits(defaultOptions(b, true), 10)
	ctx := context.Background()
	p := &graphql.RawParams{Query: "query Devices($after: String) { team { devices(first: 50, after: $after) { nodes { id name serialNumber tags status lastSeenAt } pageInfo { hasNextPage endCursor } } } }"}
	for b.Loop() {
		if err := l.MutateOperationParameters(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}
