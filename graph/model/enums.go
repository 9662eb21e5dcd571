package model

import (
	"io"
	"strconv"

	"github.com/keyplane/keyplane/internal/apperr"
)

// The schema's enums are bound to these types rather than to gqlgen's
// generated ones, whose UnmarshalGQL returns a plain error that would reach
// the client as INTERNAL: a bad value here is BAD_USER_INPUT. (Validation
// matches enum names case-insensitively, so "active" gets this far.)

// APIKeyStatus is the schema's ApiKeyStatus.
type APIKeyStatus string

// The states of an API key.
const (
	APIKeyStatusActive  APIKeyStatus = "ACTIVE"
	APIKeyStatusExpired APIKeyStatus = "EXPIRED"
	APIKeyStatusRevoked APIKeyStatus = "REVOKED"
)

// DeviceStatus is the schema's DeviceStatus.
type DeviceStatus string

// The states of a device.
const (
	DeviceStatusPending DeviceStatus = "PENDING"
	DeviceStatusOnline  DeviceStatus = "ONLINE"
	DeviceStatusOffline DeviceStatus = "OFFLINE"
	DeviceStatusRevoked DeviceStatus = "REVOKED"
)

// MemberStatus is the schema's MemberStatus.
type MemberStatus string

// The states of a member.
const (
	MemberStatusInvited MemberStatus = "INVITED"
	MemberStatusActive  MemberStatus = "ACTIVE"
)

// PrincipalKind is the schema's PrincipalKind.
type PrincipalKind string

// The kinds of credential.
const (
	PrincipalKindAPIKey PrincipalKind = "API_KEY"
	PrincipalKindDevice PrincipalKind = "DEVICE"
)

// ListOrder is the schema's ListOrder: the order of a connection's list.
type ListOrder string

// The orders of a list, by creation.
const (
	ListOrderOldestFirst ListOrder = "OLDEST_FIRST"
	ListOrderNewestFirst ListOrder = "NEWEST_FIRST"
)

// enum reads one of the values of an enum, exactly.
func enum[T ~string](name string, v any, values ...T) (T, error) {
	s, _ := v.(string)
	for _, value := range values {
		if string(value) == s {
			return value, nil
		}
	}
	return "", apperr.Input("", "%s is not a valid %s", strconv.Quote(s), name)
}

func writeEnum(w io.Writer, s string) { _, _ = io.WriteString(w, strconv.Quote(s)) }

// MarshalGQL writes the value.
func (e APIKeyStatus) MarshalGQL(w io.Writer) { writeEnum(w, string(e)) }

// UnmarshalGQL reads the value.
func (e *APIKeyStatus) UnmarshalGQL(v any) (err error) {
	*e, err = enum("ApiKeyStatus", v, APIKeyStatusActive, APIKeyStatusExpired, APIKeyStatusRevoked)
	return err
}

// MarshalGQL writes the value.
func (e DeviceStatus) MarshalGQL(w io.Writer) { writeEnum(w, string(e)) }

// UnmarshalGQL reads the value.
func (e *DeviceStatus) UnmarshalGQL(v any) (err error) {
	*e, err = enum("DeviceStatus", v, DeviceStatusPending, DeviceStatusOnline, DeviceStatusOffline, DeviceStatusRevoked)
	return err
}

// MarshalGQL writes the value.
func (e MemberStatus) MarshalGQL(w io.Writer) { writeEnum(w, string(e)) }

// UnmarshalGQL reads the value.
func (e *MemberStatus) UnmarshalGQL(v any) (err error) {
	*e, err = enum("MemberStatus", v, MemberStatusInvited, MemberStatusActive)
	return err
}

// MarshalGQL writes the value.
func (e PrincipalKind) MarshalGQL(w io.Writer) { writeEnum(w, string(e)) }

// UnmarshalGQL reads the value.
func (e *PrincipalKind) UnmarshalGQL(v any) (err error) {
	*e, err = enum("PrincipalKind", v, PrincipalKindAPIKey, PrincipalKindDevice)
	return err
}

// MarshalGQL writes the value.
func (e ListOrder) MarshalGQL(w io.Writer) { writeEnum(w, string(e)) }

// UnmarshalGQL reads the value.
func (e *ListOrder) UnmarshalGQL(v any) (err error) {
	*e, err = enum("ListOrder", v, ListOrderOldestFirst, ListOrderNewestFirst)
	return err
}
