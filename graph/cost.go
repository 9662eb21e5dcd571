package graph

import (
	"github.com/keyplane/keyplane/graph/generated"
	"github.com/keyplane/keyplane/graph/model"
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

// setCosts puts the connection cost on every connection field.
func setCosts(c *generated.ComplexityRoot) {
	c.Team.APIKeys = func(child int, first *int, _ *string, last *int, _ *string, _ *model.APIKeyFilter) int {
		return connectionCost(child, first, last)
	}
	c.Team.AuditEvents = func(child int, first *int, _ *string, last *int, _ *string, _ *model.AuditEventFilter) int {
		return connectionCost(child, first, last)
	}
	c.Team.Devices = func(child int, first *int, _ *string, last *int, _ *string, _ *model.DeviceFilter) int {
		return connectionCost(child, first, last)
	}
	c.Team.Members = func(child int, first *int, _ *string, last *int, _ *string, _ *model.MemberFilter) int {
		return connectionCost(child, first, last)
	}
	c.Team.EnrollmentKeys = func(child int, first *int, _ *string, last *int, _ *string) int {
		return connectionCost(child, first, last)
	}
	c.Member.APIKeys = func(child int, first *int, _ *string) int {
		return connectionCost(child, first, nil)
	}
	c.Query.Nodes = func(child int, ids []string) int {
		return len(ids) * (1 + child)
	}
}
