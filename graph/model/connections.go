package model

import (
	"context"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/store"
)

// Counter counts the rows behind a connection. It runs only when a query
// selects totalCount, so a page costs no COUNT(*) unless asked for.
type Counter func(ctx context.Context) (int64, error)

// connection is what every XConnection type shares: a keyset page, how to
// count the whole list, and how to find a row's id for its cursor.
type connection[T any] struct {
	page  store.Page[T]
	count Counter
	id    func(*T) uuid.UUID
}

// Nodes returns the rows on the page.
func (c *connection[T]) Nodes() []*T {
	out := make([]*T, len(c.page.Items))
	for i := range c.page.Items {
		out[i] = &c.page.Items[i]
	}
	return out
}

// PageInfo describes the page, with the cursors of its first and last rows.
func (c *connection[T]) PageInfo() *PageInfo {
	info := &PageInfo{HasNextPage: c.page.HasNext, HasPreviousPage: c.page.HasPrev}
	if n := len(c.page.Items); n > 0 {
		first, last := c.cursor(&c.page.Items[0]), c.cursor(&c.page.Items[n-1])
		info.StartCursor, info.EndCursor = &first, &last
	}
	return info
}

// TotalCount counts every row the filter matches.
func (c *connection[T]) TotalCount(ctx context.Context) (int, error) {
	n, err := c.count(ctx)
	return int(n), err
}

func (c *connection[T]) cursor(row *T) string { return EncodeCursor(c.id(row)) }

// edges pairs each row with its cursor, in the edge type of the schema.
func edges[T, E any](c *connection[T], edge func(cursor string, node *T) E) []E {
	out := make([]E, len(c.page.Items))
	for i := range c.page.Items {
		out[i] = edge(c.cursor(&c.page.Items[i]), &c.page.Items[i])
	}
	return out
}

// APIKeyConnection is a page of API keys.
type APIKeyConnection struct{ connection[store.APIKey] }

// NewAPIKeyConnection wraps a page of keys.
func NewAPIKeyConnection(p store.Page[store.APIKey], count Counter) *APIKeyConnection {
	return &APIKeyConnection{connection[store.APIKey]{p, count, func(k *store.APIKey) uuid.UUID { return k.ID }}}
}

// Edges returns the keys on the page with their cursors.
func (c *APIKeyConnection) Edges() []*APIKeyEdge {
	return edges(&c.connection, func(cursor string, k *store.APIKey) *APIKeyEdge { return &APIKeyEdge{Cursor: cursor, Node: k} })
}

// AuditEventConnection is a page of audit events.
type AuditEventConnection struct{ connection[store.AuditEvent] }

// NewAuditEventConnection wraps a page of events.
func NewAuditEventConnection(p store.Page[store.AuditEvent], count Counter) *AuditEventConnection {
	return &AuditEventConnection{connection[store.AuditEvent]{p, count, func(e *store.AuditEvent) uuid.UUID { return e.ID }}}
}

// Edges returns the events on the page with their cursors.
func (c *AuditEventConnection) Edges() []*AuditEventEdge {
	return edges(&c.connection, func(cursor string, e *store.AuditEvent) *AuditEventEdge {
		return &AuditEventEdge{Cursor: cursor, Node: e}
	})
}

// DeviceConnection is a page of devices.
type DeviceConnection struct{ connection[store.Device] }

// NewDeviceConnection wraps a page of devices.
func NewDeviceConnection(p store.Page[store.Device], count Counter) *DeviceConnection {
	return &DeviceConnection{connection[store.Device]{p, count, func(d *store.Device) uuid.UUID { return d.ID }}}
}

// Edges returns the devices on the page with their cursors.
func (c *DeviceConnection) Edges() []*DeviceEdge {
	return edges(&c.connection, func(cursor string, d *store.Device) *DeviceEdge { return &DeviceEdge{Cursor: cursor, Node: d} })
}

// MemberConnection is a page of members.
type MemberConnection struct{ connection[store.Member] }

// NewMemberConnection wraps a page of members.
func NewMemberConnection(p store.Page[store.Member], count Counter) *MemberConnection {
	return &MemberConnection{connection[store.Member]{p, count, func(m *store.Member) uuid.UUID { return m.ID }}}
}

// Edges returns the members on the page with their cursors.
func (c *MemberConnection) Edges() []*MemberEdge {
	return edges(&c.connection, func(cursor string, m *store.Member) *MemberEdge { return &MemberEdge{Cursor: cursor, Node: m} })
}

// EnrollmentKeyConnection is a page of enrollment keys.
type EnrollmentKeyConnection struct {
	connection[store.EnrollmentKey]
}

// NewEnrollmentKeyConnection wraps a page of enrollment keys.
func NewEnrollmentKeyConnection(p store.Page[store.EnrollmentKey], count Counter) *EnrollmentKeyConnection {
	return &EnrollmentKeyConnection{connection[store.EnrollmentKey]{p, count, func(k *store.EnrollmentKey) uuid.UUID { return k.ID }}}
}

// Edges returns the enrollment keys on the page with their cursors.
func (c *EnrollmentKeyConnection) Edges() []*EnrollmentKeyEdge {
	return edges(&c.connection, func(cursor string, k *store.EnrollmentKey) *EnrollmentKeyEdge {
		return &EnrollmentKeyEdge{Cursor: cursor, Node: k}
	})
}

// Node is any object with a global id. The store's types are bound to the
// schema's Node types directly, so the interface asks nothing of them.
type Node interface{}
