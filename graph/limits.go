package graph

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/keyplane/keyplane/internal/apperr"
)

func init() {
	// A refused query is the client's fault: 400 under the GraphQL response
	// media type, like a validation error.
	errcode.RegisterErrorType(string(apperr.QueryTooComplex), errcode.KindProtocol)
	errcode.RegisterErrorType("COMPLEXITY_LIMIT_EXCEEDED", errcode.KindProtocol)
}

// queryLimits refuses, before gqlparser validates a document, the shapes a
// crafted query uses to make a small request cost a lot: too many fields
// once fragments are expanded, too wide a selection set, too many pairs for
// validation to compare, argument values multiplied by spreads, too deep a
// nesting, too many aliases. Fragments count where they are spread, so they
// hide nothing, yet each is measured once: the check is linear in the
// document, however its fragments spread one another.
//
// The limits of the document run on the raw parameters, after persisted
// queries are resolved and before gqlgen parses and validates: validation,
// the cost calculation and execution all walk every spread of every
// fragment, so they may only see a document whose expansion is bounded.
// Depth and aliases, which the operation's name picks, are checked from the
// same measure after validation, where they always were: a query both
// invalid and deep still hears about its mistake first, and a hidden
// schema's introspection query hears that introspection is off. A document's shape is kept by the
// SHA-256 of its text, so a query seen before costs a hash and one cache
// look-up, and the cache stays small whatever the size of the queries.
//
// Depth is measured twice. The data graph's depth counts the levels of an
// operation down to where introspection starts: a __schema or __type field
// is one level, wherever it is selected, and what lies under it is not the
// data graph's. Each introspection field's subtree is measured on its own,
// from that field down, against maxIntrospectionDepth: enough for the
// standard introspection queries, whose chains of ofType reach 15 levels,
// and no more, so the chain cannot be nested at will. The limits of the
// document (fields, selection, pairs, values) count introspection like any
// other selection.
type queryLimits struct {
	maxDepth              int
	maxIntrospectionDepth int
	maxAliases            int
	maxFields             int
	maxSelection          int
	maxTokens             int
	shapes                *shapeCache
}

// maxIntrospectionDepth bounds the levels of a __schema or __type field and
// of what it selects, counted from that field. graphql-js's
// getIntrospectionQuery, GraphiQL's and Apollo's are 15 deep: __schema,
// types, fields, type, then TypeRef's chain of nine ofType and a leaf. The
// introspection schema is the same on every server, so this is no setting.
const maxIntrospectionDepth = 16

// introspectionField reports whether a field, by its name (not its alias),
// starts the introspection of the schema.
func introspectionField(name string) bool {
	return name == "__schema" || name == "__type"
}

// newQueryLimits returns the limits of o, with a cache of the shapes of as
// many documents as gqlgen's parsed-query cache holds.
func newQueryLimits(o Options, cacheSize int) *queryLimits {
	return &queryLimits{
		maxDepth: o.MaxDepth, maxIntrospectionDepth: maxIntrospectionDepth, maxAliases: o.MaxAliases, maxFields: o.MaxFields,
		maxSelection: o.MaxSelection, maxTokens: o.MaxTokens,
		shapes: &shapeCache{size: cacheSize, shapes: make(map[[sha256.Size]byte]*shape, cacheSize)},
	}
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = &queryLimits{}

func (*queryLimits) ExtensionName() string                   { return "QueryLimits" }
func (*queryLimits) Validate(graphql.ExecutableSchema) error { return nil }

// shapeExtension names the measure of the document in the operation's
// stats, from the parameters' check to the operation's.
const shapeExtension = "QueryLimits"

// MutateOperationParameters measures the document, or finds its measure
// from an earlier request, and refuses it if it is over a limit.
func (l *queryLimits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if ctx.Err() != nil {
		return abandoned()
	}
	key := shapeKey(p.Query)
	s, ok := l.shapes.get(key)
	if !ok {
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.maxTokens)
		if err != nil {
			// The same error gqlgen's own parse would give; parsing is linear
			// and bounded by the token limit.
			if gqlErr, isGQL := err.(*gqlerror.Error); isGQL {
				errcode.Set(gqlErr, errcode.ParseFailed)
				return gqlErr
			}
			return nil
		}
		s = measure(doc, l)
		l.shapes.add(key, s)
	}
	if err := l.checkDocument(s); err != nil {
		return err
	}
	if graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(shapeExtension, s)
	}
	return nil
}

// shapeKey is the cache key of a query's shape: its SHA-256, read from the
// string in place, so that a look-up allocates nothing.
func shapeKey(query string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(query), len(query)))
}

// shapeCache keeps the shapes of recent documents. Full, it forgets one at
// random, which a flood of new queries cannot steer.
type shapeCache struct {
	mu     sync.Mutex
	size   int
	shapes map[[sha256.Size]byte]*shape
}

func (c *shapeCache) get(key [sha256.Size]byte) (*shape, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.shapes[key]
	return s, ok
}

func (c *shapeCache) add(key [sha256.Size]byte, s *shape) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.shapes) >= c.size {
		for old := range c.shapes {
			delete(c.shapes, old)
			break
		}
	}
	c.shapes[key] = s
}

// MutateOperationContext refuses, after validation, an operation nested
// too deep or with too many aliases, and stops a request whose client has
// gone, or which was otherwise cancelled, before it executes.
func (l *queryLimits) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if ctx.Err() != nil {
		return abandoned()
	}
	s, ok := oc.Stats.GetExtension(shapeExtension).(*shape)
	if !ok {
		s = measure(oc.Doc, l)
	}
	return l.checkOperation(s, oc.OperationName)
}

// saturation is where the measure stops counting: one past the largest
// limit, enough to say by how much a limit is passed without overflowing
// on a document whose expansion is exponential.
func (l *queryLimits) saturation() int {
	return max(l.maxDepth, l.maxIntrospectionDepth, l.maxAliases, l.maxFields, l.maxSelection, l.maxOverlaps(), l.maxTokens) + 1
}

// maxOverlaps bounds the pairs validation compares: as many as in the
// widest selection set allowed, made of one field repeated.
func (l *queryLimits) maxOverlaps() int {
	return l.maxSelection * (l.maxSelection - 1) / 2
}

// checkDocument refuses a document over a limit. These are limits of the
// whole document, since validation walks all of it.
func (l *queryLimits) checkDocument(s *shape) *gqlerror.Error {
	switch {
	case s.cycle != "":
		// Validation refuses it too (NoFragmentCycles), but only after other
		// rules have walked it; the message is gqlparser's.
		err := gqlerror.Errorf(`Cannot spread fragment "%s" within itself.`, s.cycle)
		errcode.Set(err, errcode.ValidationFailed)
		return err
	case s.fields > l.maxFields:
		return tooComplex(fmt.Sprintf("the query selects %d fields or more once its fragments are expanded; the limit is %d", s.fields, l.maxFields))
	case s.widest > l.maxSelection:
		return tooComplex(fmt.Sprintf("a selection set of the query holds %d fields or more once its fragments are expanded; the limit is %d", s.widest, l.maxSelection))
	case s.values > l.maxTokens:
		return tooComplex(fmt.Sprintf("the query's arguments hold %d values or more once its fragments are expanded; the limit is %d, the token limit", s.values, l.maxTokens))
	case s.overlaps > l.maxOverlaps():
		return tooComplex(fmt.Sprintf("the query makes validation compare %d pairs or more of same-named fields or of fragments spread together; the limit is %d",
			s.overlaps, l.maxOverlaps()))
	}
	return nil
}

// checkOperation refuses an operation nested too deep, in the data graph or
// under an introspection field, or with too many aliases: those of the
// operation that runs, as before.
func (l *queryLimits) checkOperation(s *shape, operationName string) *gqlerror.Error {
	op := s.operation(operationName)
	switch {
	case op == nil:
		// gqlgen has answered that the operation is not found.
		return nil
	case op.depth > l.maxDepth:
		return tooComplex(fmt.Sprintf("the query is nested %d levels deep or more; the limit is %d", op.depth, l.maxDepth))
	case op.introspection > l.maxIntrospectionDepth:
		return tooComplex(fmt.Sprintf("the query's introspection is nested %d levels deep or more from __schema or __type; the limit is %d",
			op.introspection, l.maxIntrospectionDepth))
	case op.aliases > l.maxAliases:
		return tooComplex(fmt.Sprintf("the query uses %d aliases; the limit is %d", op.aliases, l.maxAliases))
	}
	return nil
}

// tooComplex is a refusal with the QUERY_TOO_COMPLEX code.
func tooComplex(message string) *gqlerror.Error {
	err := gqlerror.Errorf("%s", message)
	errcode.Set(err, string(apperr.QueryTooComplex))
	return err
}

// abandoned is the answer to a request whose context ended before it ran:
// its client has gone, so no one reads it, and nothing more is done for it.
func abandoned() *gqlerror.Error {
	return gqlerror.Errorf("the request was cancelled before it ran")
}

// shape is what the limits need to know of a parsed document.
type shape struct {
	// fields counts the selections of every operation and every fragment
	// definition, each spread replaced by its fragment's selections; a
	// fragment spread and an inline fragment count as one field too, so a
	// fragment that selects only other fragments is not free.
	fields int
	// widest is the largest number of fields in one selection set once the
	// fragments spread in it are expanded.
	widest int
	// values counts the values written in arguments, of fields and of
	// directives, once fragments are expanded: the cost calculation and
	// execution read a field's arguments once per place it is spread, so
	// a fragment holding a long list would multiply it.
	values int
	// overlaps counts the pairs gqlparser's overlapping-fields rule
	// compares, whose number grows as the square of what is repeated: the
	// pairs of fields that share a response path, such as the 1,990 fields
	// of { team { name … } team { name … } … }, and the pairs of fragments
	// spread in one selection set. Fields are paired only when fields is
	// within its limit, and then bounded by its square.
	overlaps int
	// cycle names a fragment spread within itself, if any.
	cycle string
	// ops are the depths and aliases of each operation, in document order.
	ops []opShape
	// visited counts the selections the measure looked at, for tests: each
	// selection of the document once, however often its fragment is spread.
	visited int
}

type opShape struct {
	name string
	// depth is the data graph's: an introspection field counts as one
	// level, what it selects not at all.
	depth int
	// introspection is the depth of the deepest introspection field's
	// subtree, the field itself included.
	introspection int
	aliases       int
}

// operation finds the operation gqlgen will run, as
// ast.OperationList.ForName does.
func (s *shape) operation(name string) *opShape {
	if name == "" && len(s.ops) == 1 {
		return &s.ops[0]
	}
	for i := range s.ops {
		if s.ops[i].name == name {
			return &s.ops[i]
		}
	}
	return nil
}

// extent is the measure of one selection set once its fragments are
// expanded. Every count saturates, so an exponential expansion cannot
// overflow it.
type extent struct {
	size    int // selections, nested ones included
	width   int // fields at this level
	widest  int // the widest selection set within, this one included
	depth   int // levels of fields down to introspection, 1 for a set of leaves
	full    int // levels of fields, introspection's too
	intro   int // levels of the deepest introspection field's subtree within
	aliases int // aliases, nested ones included
	values  int // values in arguments, nested ones included
	spreads int // named fragments spread at this level, not through one
}

// measurer computes extents, each fragment's once.
type measurer struct {
	limit     int
	fragments map[string]*ast.FragmentDefinition
	done      map[string]extent
	open      map[string]bool
	cycle     string
	visited   int
	// spreadPairs counts, over every selection set written, the pairs of
	// fragments spread in it, which the overlapping-fields rule compares.
	spreadPairs int
}

// measure computes the shape of a document in one pass over its text:
// each fragment's extent is computed the first time it is spread and
// reused after, so a spread costs a map look-up, not a walk. Only a
// document within the field limit has its overlaps counted, in a second
// pass of the same kind.
func measure(doc *ast.QueryDocument, l *queryLimits) *shape {
	m := measurer{
		limit:     l.saturation(),
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		done:      make(map[string]extent, len(doc.Fragments)),
		open:      map[string]bool{},
	}
	for _, def := range doc.Fragments {
		if _, dup := m.fragments[def.Name]; !dup {
			// The first of a name, as gqlparser's ForName finds it; validation
			// refuses the others.
			m.fragments[def.Name] = def
		}
	}
	s := &shape{ops: make([]opShape, 0, len(doc.Operations))}
	add := func(e extent) {
		s.fields = m.add(s.fields, e.size)
		s.values = m.add(s.values, e.values)
		s.widest = max(s.widest, e.widest)
	}
	for _, op := range doc.Operations {
		e := m.selections(op.SelectionSet)
		add(e)
		s.ops = append(s.ops, opShape{name: op.Name, depth: e.depth, introspection: e.intro, aliases: e.aliases})
	}
	// Validation walks each fragment definition too, used or not.
	for _, def := range doc.Fragments {
		if m.fragments[def.Name] == def {
			e, _ := m.fragment(def.Name)
			add(e)
		} else {
			add(m.selections(def.SelectionSet))
		}
	}
	s.cycle, s.visited, s.overlaps = m.cycle, m.visited, m.spreadPairs
	if s.cycle == "" && s.fields <= l.maxFields {
		// The expansion is known to be small: its response paths may be
		// listed. A larger or cyclic document is refused anyway.
		s.overlaps = m.add(s.overlaps, overlapsOf(doc, m.fragments))
	}
	return s
}

// add is a saturating sum.
func (m *measurer) add(a, b int) int { return min(a+b, m.limit) }

// merge adds the extent of a fragment, named or inline, spread at this level.
func (m *measurer) merge(e *extent, f extent) {
	e.size = m.add(e.size, f.size)
	e.width = m.add(e.width, f.width)
	e.aliases = m.add(e.aliases, f.aliases)
	e.values = m.add(e.values, f.values)
	e.depth = max(e.depth, f.depth)
	e.full = max(e.full, f.full)
	e.intro = max(e.intro, f.intro)
	e.widest = max(e.widest, f.widest)
}

// selections measures one selection set.
func (m *measurer) selections(set ast.SelectionSet) extent {
	var e extent
	for _, sel := range set {
		m.visited++
		e.size = m.add(e.size, 1)
		switch s := sel.(type) {
		case *ast.Field:
			e.width = m.add(e.width, 1)
			if s.Alias != "" && s.Alias != s.Name {
				e.aliases = m.add(e.aliases, 1)
			}
			e.values = m.add(e.values, m.arguments(s.Arguments, s.Directives))
			child := m.selections(s.SelectionSet)
			e.size = m.add(e.size, child.size)
			e.aliases = m.add(e.aliases, child.aliases)
			e.values = m.add(e.values, child.values)
			full := min(child.full+1, m.limit)
			e.full = max(e.full, full)
			if introspectionField(s.Name) {
				// One level of the data graph; the rest is measured as
				// introspection, from this field down.
				e.depth = max(e.depth, 1)
				e.intro = max(e.intro, full)
			} else {
				e.depth = max(e.depth, min(child.depth+1, m.limit))
				e.intro = max(e.intro, child.intro)
			}
			e.widest = max(e.widest, child.widest)
		case *ast.InlineFragment:
			e.values = m.add(e.values, m.arguments(nil, s.Directives))
			inline := m.selections(s.SelectionSet)
			m.merge(&e, inline)
			e.spreads += inline.spreads
		case *ast.FragmentSpread:
			e.values = m.add(e.values, m.arguments(nil, s.Directives))
			e.spreads++
			if f, ok := m.fragment(s.Name); ok {
				m.merge(&e, f)
			} else {
				// An unknown fragment, which validation refuses.
				e.width = m.add(e.width, 1)
			}
		}
	}
	e.widest = max(e.widest, e.width)
	m.spreadPairs = m.add(m.spreadPairs, e.spreads*(e.spreads-1)/2)
	return e
}

// arguments counts the values written in a selection's arguments and in
// its directives' arguments.
func (m *measurer) arguments(args ast.ArgumentList, directives ast.DirectiveList) int {
	n := 0
	for _, a := range args {
		n = m.add(n, m.values(a.Value))
	}
	for _, d := range directives {
		n = m.add(n, m.arguments(d.Arguments, nil))
	}
	return n
}

// values counts a value and those inside it, a list's items or an
// object's fields.
func (m *measurer) values(v *ast.Value) int {
	if v == nil {
		return 0
	}
	n := 1
	for _, c := range v.Children {
		n = m.add(n, m.values(c.Value))
	}
	return n
}

// fragment returns the extent of a named fragment, computing it on its
// first spread. A fragment spread within itself is recorded and counts as
// empty, so the measure ends; the document is then refused.
func (m *measurer) fragment(name string) (extent, bool) {
	if e, ok := m.done[name]; ok {
		return e, true
	}
	def := m.fragments[name]
	if def == nil {
		return extent{}, false
	}
	if m.open[name] {
		if m.cycle == "" {
			m.cycle = name
		}
		return extent{}, true
	}
	m.open[name] = true
	e := m.selections(def.SelectionSet)
	delete(m.open, name)
	m.done[name] = e
	return e, true
}

// responsePaths is a tree of the response paths of a selection set once its
// fragments are expanded, with the number of fields at each.
type responsePaths struct {
	count    int
	children map[string]*responsePaths
}

func (p *responsePaths) child(name string) *responsePaths {
	if p.children == nil {
		p.children = map[string]*responsePaths{}
	}
	c := p.children[name]
	if c == nil {
		c = &responsePaths{}
		p.children[name] = c
	}
	return c
}

// addAll adds the paths of q, a fragment spread at p, to p.
func (p *responsePaths) addAll(q *responsePaths) {
	p.count += q.count
	for name, c := range q.children {
		p.child(name).addAll(c)
	}
}

// pairs counts the pairs of fields that share a path.
func (p *responsePaths) pairs() int {
	n := p.count * (p.count - 1) / 2
	for _, c := range p.children {
		n += c.pairs()
	}
	return n
}

// overlapsOf counts, in every operation, the pairs of fields that share a
// response path once fragments are expanded. The rule compares a pair
// inside a fragment once, wherever the fragment is spread, so a fragment
// an operation spreads is counted there, and only a fragment no operation
// reaches is counted on its own. Each fragment's paths are listed once
// and added where it is spread; the caller has checked the document has no
// cycle and few fields once expanded, so the work is bounded by that
// number.
func overlapsOf(doc *ast.QueryDocument, fragments map[string]*ast.FragmentDefinition) int {
	done := map[string]*responsePaths{}
	var fragment func(name string) *responsePaths
	var add func(at *responsePaths, set ast.SelectionSet)
	fragment = func(name string) *responsePaths {
		if p, ok := done[name]; ok {
			return p
		}
		p := &responsePaths{}
		if def := fragments[name]; def != nil {
			add(p, def.SelectionSet)
		}
		done[name] = p
		return p
	}
	add = func(at *responsePaths, set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				c := at.child(s.Alias)
				c.count++
				add(c, s.SelectionSet)
			case *ast.InlineFragment:
				add(at, s.SelectionSet)
			case *ast.FragmentSpread:
				at.addAll(fragment(s.Name))
			}
		}
	}
	n := 0
	for _, op := range doc.Operations {
		p := &responsePaths{}
		add(p, op.SelectionSet)
		n += p.pairs()
	}
	for _, def := range doc.Fragments {
		if _, reached := done[def.Name]; reached && fragments[def.Name] == def {
			continue
		}
		p := &responsePaths{}
		add(p, def.SelectionSet)
		n += p.pairs()
	}
	return n
}
