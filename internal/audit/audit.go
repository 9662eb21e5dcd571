// Package audit writes and reads the team's audit log. Record is called
// inside each mutation's transaction, so an event exists exactly when its
// change committed.
package audit

import (
	"context"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/reqlog"
	"github.com/keyplane/keyplane/internal/requestid"
	"github.com/keyplane/keyplane/internal/scope"
	"github.com/keyplane/keyplane/internal/store"
)

// Actions named by the contract: the mutation, type first.
const (
	APIKeyCreate = "apiKey.create"
	APIKeyUpdate = "apiKey.update"
	APIKeyRotate = "apiKey.rotate"
	APIKeyRevoke = "apiKey.revoke"
	TeamCreate   = "team.create"
	TeamUpdate   = "team.update"

	DeviceCreate      = "device.create"
	DeviceUpdate      = "device.update"
	DeviceRotateToken = "device.rotateToken"
	DeviceRevoke      = "device.revoke"
	DeviceEnroll      = "device.enroll"
	// DeviceOnline and DeviceOffline record presence, once per transition:
	// the device is the actor of the first, nobody of the second.
	DeviceOnline  = "device.online"
	DeviceOffline = "device.offline"

	EnrollmentKeyCreate = "enrollmentKey.create"
	EnrollmentKeyRevoke = "enrollmentKey.revoke"

	MemberAdd    = "member.add"
	MemberUpdate = "member.update"
	MemberRemove = "member.remove"
)

// Record writes one event through tx. actor is nil for the command line.
func Record(ctx context.Context, tx *store.Store, teamID uuid.UUID, actor *auth.Principal, action, targetID string) error {
	return write(ctx, tx, actor, []store.AuditEvent{event(ctx, teamID, actor, action, targetID)})
}

// RecordEach writes one event per target, in one statement per batch.
func RecordEach(ctx context.Context, tx *store.Store, teamID uuid.UUID, actor *auth.Principal, action string, targetIDs []string) error {
	events := make([]store.AuditEvent, len(targetIDs))
	for i, target := range targetIDs {
		events[i] = event(ctx, teamID, actor, action, target)
	}
	return write(ctx, tx, actor, events)
}

// write inserts the events and, within a request, logs each at info once
// its transaction has committed: an event rolled back with its change is
// never logged.
func write(ctx context.Context, tx *store.Store, actor *auth.Principal, events []store.AuditEvent) error {
	if err := tx.InsertAuditEvents(ctx, events); err != nil {
		return err
	}
	if entry := reqlog.From(ctx); entry != nil && entry.Log != nil {
		tx.AfterCommit(func() { logEvents(ctx, entry.Log, actor, events) })
	}
	return nil
}

// logEvents writes one line per event: its action, target and actor, by
// global id. The line carries the request id, as the request's own does.
func logEvents(ctx context.Context, log *slog.Logger, actor *auth.Principal, events []store.AuditEvent) {
	actorID := reqlog.ActorID(actor)
	for _, e := range events {
		target := ""
		if e.TargetID != nil {
			target = *e.TargetID
		}
		log.LogAttrs(ctx, slog.LevelInfo, "audit",
			slog.String("request_id", requestid.From(ctx)),
			slog.String("action", e.Action),
			slog.String("target", target),
			slog.String("actor", actorID),
		)
	}
}

// event builds an event for the request in ctx: who made it (a key, a
// device, or nobody for the command line), and from where.
func event(ctx context.Context, teamID uuid.UUID, actor *auth.Principal, action, targetID string) store.AuditEvent {
	e := store.AuditEvent{TeamID: teamID, Action: action, CreatedAt: store.Now(), TargetID: optional(targetID)}
	if actor != nil {
		switch actor.Kind {
		case auth.KindAPIKey:
			keyID := actor.KeyID
			e.ActorKeyID = &keyID
		case auth.KindDevice:
			deviceID := actor.DeviceID
			e.ActorDeviceID = &deviceID
		}
	}
	if c := auth.ClientFrom(ctx); c.IP != "" || c.UserAgent != "" {
		e.IP, e.UserAgent = optional(c.IP), optional(clip(c.UserAgent, maxUserAgent))
	}
	return e
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// maxUserAgent bounds what a client can make us store per event.
const maxUserAgent = 512

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Log reads the caller's team's audit log.
type Log struct {
	store *store.Store
}

// NewLog returns a Log on s.
func NewLog(s *store.Store) *Log { return &Log{store: s} }

// List reads one page of events.
func (l *Log) List(ctx context.Context, actor *auth.Principal, f store.AuditFilter, args store.PageArgs) (store.Page[store.AuditEvent], error) {
	if err := mayFilter(actor, f); err != nil {
		return store.Page[store.AuditEvent]{}, err
	}
	return l.store.ListAuditEvents(ctx, actor.TeamID, f, args)
}

// Count counts the events matching f.
func (l *Log) Count(ctx context.Context, actor *auth.Principal, f store.AuditFilter) (int64, error) {
	if err := mayFilter(actor, f); err != nil {
		return 0, err
	}
	return l.store.CountAuditEvents(ctx, actor.TeamID, f)
}

// MayRead checks the caller may read the log with this filter, as List
// does; a live subscription asks it too, again whenever its key changes.
func (l *Log) MayRead(actor *auth.Principal, f store.AuditFilter) error { return mayFilter(actor, f) }

// mayFilter checks the caller may read the log with this filter: filtering
// by actor ties events to that key or device, as AuditEvent.actor and
// actorDevice would, so it needs the read scope of the actor's type too.
func mayFilter(actor *auth.Principal, f store.AuditFilter) error {
	need := []scope.Scope{scope.AuditRead}
	if f.ActorKeyID != nil {
		need = append(need, scope.APIKeysRead)
	}
	if f.ActorDeviceID != nil {
		need = append(need, scope.DevicesRead)
	}
	return actor.Need(need...)
}

// ByID reads several of the caller's team's events, for nodes(ids:). With
// no ids it only checks the caller may read the log, so that a refusal does
// not depend on what the ids name.
func (l *Log) ByID(ctx context.Context, actor *auth.Principal, ids []uuid.UUID) ([]store.AuditEvent, error) {
	return auth.ByID(ctx, actor, scope.AuditRead, ids, l.store.AuditEventsByID)
}

// Change runs a mutation and its audit event in one transaction, then reads
// the changed object back in it. apply gets the caller as it is now, read
// again in the transaction (auth.InTx), and reports whether it changed
// anything: when it did not (revoking what is revoked, an update with no
// fields), no event is written and the object is read as it is.
func Change[T any](ctx context.Context, s *store.Store, actor *auth.Principal, action, targetID string,
	apply func(tx *store.Store, actor *auth.Principal) (bool, error), read func(tx *store.Store) (*T, error)) (*T, error) {
	return auth.InTx(ctx, s, actor, func(tx *store.Store, actor *auth.Principal) (*T, error) {
		changed, err := apply(tx, actor)
		if err != nil {
			return nil, err
		}
		if changed {
			if err := Record(ctx, tx, actor.TeamID, actor, action, targetID); err != nil {
				return nil, err
			}
		}
		return read(tx)
	})
}

// Columns adapts a write of some columns to Change's apply: with no column
// to write there is no change, and no event. need is checked on the caller
// as it is now, whether or not anything is written.
func Columns(columns map[string]any, need func(actor *auth.Principal) error, write func(tx *store.Store, columns map[string]any) error) func(tx *store.Store, actor *auth.Principal) (bool, error) {
	return func(tx *store.Store, actor *auth.Principal) (bool, error) {
		if err := need(actor); err != nil || len(columns) == 0 {
			return false, err
		}
		return true, write(tx, columns)
	}
}
