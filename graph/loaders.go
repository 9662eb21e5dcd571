package graph

import (
	"context"
	"slices"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/store"
)

// The fields that point from a row to another (createdBy, owner, actor,
// actorDevice, Member.apiKeys) are gqlgen batch resolvers: gqlgen hands
// them every sibling of a list at once, and each reads what the whole page
// points to in one query. The count of statements a request sends therefore
// does not grow with the page, whatever the timing.

//
// Batching covers the siblings of one list. For lists nested in a list (the
// keys of each member of a page), the outer resolver reads ahead for all of
// them at once into the operation's cache, which related consults first.

// rowCache holds the rows one operation has read by id, so that a row read
// ahead for a nested list is not read again. It lives for one operation and
// one team: nothing is shared across requests. Rows are keyed by type and
// id (rowKey), since nodes(ids:) lets the client pair any id with any type:
// a device's id asked for as a key must not find the device, nor mark the
// id absent for the device.
type rowCache struct {
	mu   sync.Mutex
	rows map[any]any
}

// rowKey is the cache's key of a row of type T.
type rowKey[T any] struct{ id uuid.UUID }

type rowCacheKey struct{}

// withRowCache gives each operation its own cache.
func withRowCache(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, rowCacheKey{}, &rowCache{rows: map[any]any{}}))
}

func cacheFrom(ctx context.Context) *rowCache {
	c, _ := ctx.Value(rowCacheKey{}).(*rowCache)
	if c == nil {
		c = &rowCache{rows: map[any]any{}}
	}
	return c
}

// remember stores rows read for the operation.
func remember[T any](ctx context.Context, rows []*T, id func(*T) uuid.UUID) {
	c := cacheFrom(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, row := range rows {
		if row != nil {
			c.rows[rowKey[T]{id(row)}] = row
		}
	}
}

// inFlight marks ids one call is reading: others asking for them wait for
// it rather than read them again (owner and scopes both want a key's owner,
// and gqlgen resolves them at the same time).
type inFlight struct{ done chan struct{} }

// absent marks an id that was read and found nothing the team holds.
type absent struct{}

// related resolves, for each parent, the row its ref points to (nil when it
// points nowhere, or to a row the caller's team does not hold). Rows already
// read in this operation come from its cache; the rest come in one query.
//
// fetch is a domain service's read by ids, which checks the caller's scope
// first. related calls it with no ids before it looks at the cache, so the
// check runs on every edge whatever was read before, by whichever path, and
// a refusal does not depend on what the edge points to.
func related[P, T any](ctx context.Context, parents []*P, ref func(*P) *uuid.UUID,
	fetch func(ctx context.Context, ids []uuid.UUID) ([]T, error), id func(*T) uuid.UUID) ([]*T, error) {
	if _, err := fetch(ctx, nil); err != nil {
		return nil, err
	}
	c := cacheFrom(ctx)
	mine := &inFlight{done: make(chan struct{})}
	var missing []uuid.UUID
	var waits []*inFlight
	c.mu.Lock()
	for _, p := range parents {
		r := ref(p)
		if r == nil {
			continue
		}
		switch v := c.rows[rowKey[T]{*r}].(type) {
		case nil:
			c.rows[rowKey[T]{*r}] = mine
			missing = append(missing, *r)
		case *inFlight:
			if v != mine && !slices.Contains(waits, v) {
				waits = append(waits, v)
			}
		}
	}
	c.mu.Unlock()
	if len(missing) > 0 {
		if err := fill(ctx, c, mine, missing, fetch, id); err != nil {
			return nil, err
		}
	}
	for _, w := range waits {
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]*T, len(parents))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range parents {
		if r := ref(p); r != nil {
			out[i], _ = c.rows[rowKey[T]{*r}].(*T)
		}
	}
	return out, nil
}

// fill reads the rows one call claimed and stores them, or absent for ids
// that found nothing. Whatever happens, even a panic, it releases the calls
// waiting for those ids.
func fill[T any](ctx context.Context, c *rowCache, mine *inFlight, missing []uuid.UUID,
	fetch func(ctx context.Context, ids []uuid.UUID) ([]T, error), id func(*T) uuid.UUID) error {
	defer close(mine.done)
	rows, err := fetch(ctx, missing)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range missing {
		c.rows[rowKey[T]{m}] = absent{}
	}
	for i := range rows {
		c.rows[rowKey[T]{id(&rows[i])}] = &rows[i]
	}
	return err
}

// The functions below bind a domain service's read by ids to the caller.

func (r *Resolver) keysByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.APIKey, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.APIKey, error) { return r.apiKeys.ByID(ctx, p, ids) }
}

func (r *Resolver) membersByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.Member, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.Member, error) { return r.members.ByID(ctx, p, ids) }
}

func (r *Resolver) devicesByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.Device, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.Device, error) { return r.devices.ByID(ctx, p, ids) }
}

func (r *Resolver) teamsByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.Team, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.Team, error) { return r.teams.ByID(ctx, p, ids) }
}

func (r *Resolver) enrollmentKeysByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.EnrollmentKey, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.EnrollmentKey, error) {
		return r.devices.KeysByID(ctx, p, ids)
	}
}

func (r *Resolver) auditEventsByID(ctx context.Context) func(context.Context, []uuid.UUID) ([]store.AuditEvent, error) {
	p := caller(ctx)
	return func(ctx context.Context, ids []uuid.UUID) ([]store.AuditEvent, error) {
		return r.auditLog.ByID(ctx, p, ids)
	}
}

func keyID(k *store.APIKey) uuid.UUID      { return k.ID }
func memberID(m *store.Member) uuid.UUID   { return m.ID }
func deviceID(d *store.Device) uuid.UUID   { return d.ID }
func ownerOf(k *store.APIKey) *uuid.UUID   { return k.OwnerID }
func creatorOf(k *store.APIKey) *uuid.UUID { return k.CreatedByID }

// personalKeys pages each member's personal keys, all in one query, and
// counts them in one more only when the query selects totalCount.
func (r *Resolver) personalKeys(ctx context.Context, members []*store.Member, args store.PageArgs) ([]*model.APIKeyConnection, error) {
	owners := make([]uuid.UUID, len(members))
	for i, m := range members {
		owners[i] = m.ID
	}
	pages, counts, err := r.apiKeys.ListByOwners(ctx, caller(ctx), owners, args, selects(ctx, "totalCount"))
	if err != nil {
		return nil, err
	}
	// The keys' owners are these members; read their creators ahead, for
	// all members at once, when the query asks for them.
	remember(ctx, members, memberID)
	if selectsKeyField(ctx, "createdBy") {
		var keys []*store.APIKey
		for _, p := range pages {
			for i := range p.Items {
				keys = append(keys, &p.Items[i])
			}
		}
		if _, err := related(ctx, keys, creatorOf, r.keysByID(ctx), keyID); err != nil {
			return nil, err
		}
	}
	out := make([]*model.APIKeyConnection, len(members))
	for i, m := range members {
		n := counts[m.ID]
		out[i] = model.NewAPIKeyConnection(pages[m.ID], func(context.Context) (int64, error) { return n, nil })
	}
	return out, nil
}

// selects reports whether the field being resolved selects a sub-field.
func selects(ctx context.Context, name string) bool {
	return reaches(graphql.GetOperationContext(ctx), graphql.CollectFieldsCtx(ctx, connectionTypes), []string{name})
}

// selectsKeyField reports whether a connection of API keys being resolved
// asks for a field of its keys, through nodes or edges.
func selectsKeyField(ctx context.Context, name string) bool {
	oc, fields := graphql.GetOperationContext(ctx), graphql.CollectFieldsCtx(ctx, connectionTypes)
	return reaches(oc, fields, []string{"nodes", name}) || reaches(oc, fields, []string{"edges", "node", name})
}

// connectionTypes are the type conditions a fragment inside a connection of
// API keys may name.
var connectionTypes = []string{"ApiKeyConnection", "ApiKeyEdge", "ApiKey", "Node"}

func reaches(oc *graphql.OperationContext, fields []graphql.CollectedField, path []string) bool {
	for _, f := range fields {
		if f.Name != path[0] {
			continue
		}
		if len(path) == 1 || reaches(oc, graphql.CollectFields(oc, f.Selections, connectionTypes), path[1:]) {
			return true
		}
	}
	return false
}

// fullTeam returns the team with its own fields. Query.team hands out just
// the id, which is all its connections need, so the common query
// `team { devices { … } }` reads no team row; name and createdAt read it
// once per operation.
func (r *Resolver) fullTeam(ctx context.Context, t *store.Team) (*store.Team, error) {
	if !t.CreatedAt.IsZero() {
		return t, nil
	}
	teams, err := related(ctx, []*store.Team{t}, func(t *store.Team) *uuid.UUID { return &t.ID }, r.teamsByID(ctx), teamID)
	if err != nil {
		return nil, err
	}
	if teams[0] == nil {
		return nil, apperr.NotFoundf("team not found")
	}
	return teams[0], nil
}
