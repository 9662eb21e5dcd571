package graph

import (
	"github.com/google/uuid"

	"github.com/keyplane/keyplane/graph/model"
	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/validate"
)

// decodeID reads a global id of one kind from an input field. A malformed
// id or one of another kind is BAD_USER_INPUT; a well-formed id the caller's
// team does not hold becomes NOT_FOUND further down.
func decodeID(field string, kind ids.Kind, id string) (uuid.UUID, error) {
	u, err := ids.DecodeAs(kind, id)
	if err != nil {
		return uuid.Nil, apperr.Input(field, "%s is not a valid %s id", field, kind)
	}
	return u, nil
}

// text reads an optional filter text, checked like every search.
func text(field string, s *string) (string, error) {
	if s == nil {
		return "", nil
	}
	return *s, validate.Search(field, *s)
}

func apiKeyFilter(f *model.APIKeyFilter) (out store.APIKeyFilter, err error) {
	if f == nil {
		return out, nil
	}
	if f.Status != nil {
		out.Status = store.APIKeyStatus(*f.Status)
	}
	out.Search, err = text("filter.search", f.Search)
	return out, err
}

func auditFilter(f *model.AuditEventFilter) (store.AuditFilter, error) {
	var out store.AuditFilter
	if f == nil {
		return out, nil
	}
	var err error
	if out.Action, err = text("filter.action", f.Action); err != nil {
		return out, err
	}
	if f.ActorID != nil {
		kind, id, err := ids.Decode(*f.ActorID)
		switch {
		case err == nil && kind == ids.APIKey:
			out.ActorKeyID = &id
		case err == nil && kind == ids.Device:
			out.ActorDeviceID = &id
		default:
			return out, apperr.Input("actorId", "actorId must be the id of an API key or a device")
		}
	}
	if out.TargetID, err = text("filter.targetId", f.TargetID); err != nil {
		return out, err
	}
	out.Since, out.Until = f.Since, f.Until
	return out, nil
}

// optionalID reads an optional global id; nil stays nil.
func optionalID(field string, kind ids.Kind, id *string) (*uuid.UUID, error) {
	if id == nil {
		return nil, nil
	}
	u, err := decodeID(field, kind, *id)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func deviceFilter(f *model.DeviceFilter) (out store.DeviceFilter, err error) {
	if f == nil {
		return out, nil
	}
	if f.Status != nil {
		out.Status = store.DeviceStatus(*f.Status)
	}
	if out.Tag, err = text("filter.tag", f.Tag); err != nil {
		return out, err
	}
	out.Search, err = text("filter.search", f.Search)
	return out, err
}

func memberFilter(f *model.MemberFilter) (out store.MemberFilter, err error) {
	if f == nil {
		return out, nil
	}
	if f.Role != nil {
		out.Role = string(*f.Role)
	}
	if f.Status != nil {
		out.Status = string(*f.Status)
	}
	out.Search, err = text("filter.search", f.Search)
	return out, err
}
