package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/live"
)

// A subscription's operation carries a streamSlot, which its resolver fills
// with the live stream it opened. Each event is then resolved as a response
// of its own (withEventContext): with the key as the hub last read it, so
// that a demotion narrows what the next event shows, and with a row cache
// of its own, so that no event is answered from another's rows. Once the
// stream ends for a reason, one last response carries that error.
type streamSlot struct {
	mu       sync.Mutex
	stream   *live.Stream
	reported bool
}

type streamSlotKey struct{}

// withStreamSlot gives a subscription's operation its slot.
func withStreamSlot(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription {
		ctx = context.WithValue(ctx, streamSlotKey{}, &streamSlot{})
	}
	return next(ctx)
}

// withEventContext resolves each event of a subscription with the key as
// it is now and a fresh row cache, and turns the stream's end into an error
// response when it ended for a reason.
func withEventContext(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	slot, _ := ctx.Value(streamSlotKey{}).(*streamSlot)
	if slot == nil {
		return next(ctx)
	}
	slot.mu.Lock()
	stream := slot.stream
	slot.mu.Unlock()
	if stream == nil {
		return next(ctx)
	}
	ctx = auth.WithPrincipal(ctx, stream.Principal())
	ctx = context.WithValue(ctx, rowCacheKey{}, &rowCache{rows: map[any]any{}})
	resp := next(ctx)
	if resp != nil {
		return resp
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if err := stream.Err(); err != nil && !slot.reported {
		slot.reported = true
		graphql.AddError(ctx, err)
		return &graphql.Response{Errors: graphql.GetErrors(ctx)}
	}
	return nil
}

// subscribe opens a live stream for the subscription resolving in ctx.
func subscribe[T any](ctx context.Context, hub *live.Hub, req live.Request, conv func(live.Event) T) (<-chan T, error) {
	slot, _ := ctx.Value(streamSlotKey{}).(*streamSlot)
	if hub == nil || slot == nil {
		return nil, apperr.New(apperr.FailedPrecondition, "live events are not served here")
	}
	req.Principal, req.Client = caller(ctx), auth.ClientFrom(ctx).IP
	ch, stream, err := live.Subscribe(ctx, hub, req, conv)
	if err != nil {
		return nil, err
	}
	slot.mu.Lock()
	slot.stream = &stream
	slot.mu.Unlock()
	return ch, nil
}
