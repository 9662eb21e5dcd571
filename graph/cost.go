package graph

import (
	"context"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/validate"
)

// connectionCost is the contract's cost of a connection: the page size times
// one plus what each row selects. A request that asks for no size gets the
// default page.
func connectionCost(child int, first, last *int) int {
	size := model.DefaultPageSize
	if first != nil {
		size = *first
	} else if last != nil {
		size = *last
	}
	size = max(size, 0)
	return size * (1 + child)
}

// listCost is the cost of a list of scalars: as many as it may hold, so
// that a page of rows that each carry a long list costs what it weighs.
// Without it a scalar costs 0, and a request of a few hundred bytes could
// draw megabytes of tags.
func listCost(most int) func(int) int {
	return func(int) int { return most }
}

// setCosts puts the connection cost on every connection field, and on
// every list of scalars the most it may hold. Other fields keep the
// contract's default: 1 for an object, 0 for a scalar.
func setCosts(c *generated.ComplexityRoot) {
	c.ApiKey.Scopes = listCost(len(scope.All))
	c.ApiKey.CIDRs = listCost(validate.MaxCIDRs)
	c.Device.TagList = listCost(validate.MaxTags)
	c.EnrollmentKey.TagList = listCost(validate.MaxTags)
	c.Team.APIKeys = func(child int, first *int, _ *string, last *int, _ *string, _ *model.APIKeyFilter, _ model.ListOrder) int {
		return connectionCost(child, first, last)
	}
	c.Team.AuditEvents = func(child int, first *int, _ *string, last *int, _ *string, _ *model.AuditEventFilter, _ model.ListOrder) int {
		return connectionCost(child, first, last)
	}
	c.Team.Devices = func(child int, first *int, _ *string, last *int, _ *string, _ *model.DeviceFilter, _ model.ListOrder) int {
		return connectionCost(child, first, last)
	}
	c.Team.Members = func(child int, first *int, _ *string, last *int, _ *string, _ *model.MemberFilter, _ model.ListOrder) int {
		return connectionCost(child, first, last)
	}
	c.Team.EnrollmentKeys = func(child int, first *int, _ *string, last *int, _ *string, _ model.ListOrder) int {
		return connectionCost(child, first, last)
	}
	c.Member.APIKeys = func(child int, first *int, _ *string, _ model.ListOrder) int {
		return connectionCost(child, first, nil)
	}
	c.Query.Nodes = func(child int, ids []string) int {
		return len(ids) * (1 + child)
	}
}

// costLimit refuses, before execution, an operation that costs more than
// limit, as gqlgen's FixedComplexityLimit does, and remembers the cost of
// an operation sent without variables: it costs the same every time, so the
// hot path's queries, which carry their page size inline, are measured
// once, not on every request.
type costLimit struct {
	limit int
	es    graphql.ExecutableSchema
	known graphql.Cache[int]
}

func newCostLimit(limit, size int) *costLimit {
	return &costLimit{limit: limit, known: lru.New[int](size)}
}

func (c *costLimit) ExtensionName() string { return "CostLimit" }

func (c *costLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}

func (c *costLimit) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	cost, cached := 0, false
	key := rc.RawQuery
	if rc.OperationName != "" {
		key = rc.OperationName + "\x00" + key
	}
	if len(rc.Variables) == 0 {
		cost, cached = c.known.Get(ctx, key)
	}
	if !cached {
		cost = complexity.Calculate(ctx, c.es, rc.Operation, rc.Variables, complexity.WithFixedScalarValue(0))
		if len(rc.Variables) == 0 {
			c.known.Add(ctx, key, cost)
		}
	}
	if cost > c.limit {
		err := gqlerror.Errorf("operation has complexity %d, which exceeds the limit of %d", cost, c.limit)
		errcode.Set(err, "COMPLEXITY_LIMIT_EXCEEDED")
		return err
	}
	return nil
}
