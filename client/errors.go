package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Code is the kind of a Keyplane error: the extensions.code of a GraphQL
// error.
type Code string

// The codes of the API (README, "Errors").
const (
	CodeUnauthenticated    Code = "UNAUTHENTICATED"
	CodeForbidden          Code = "FORBIDDEN"
	CodeNotFound           Code = "NOT_FOUND"
	CodeBadUserInput       Code = "BAD_USER_INPUT"
	CodeConflict           Code = "CONFLICT"
	CodeFailedPrecondition Code = "FAILED_PRECONDITION"
	CodeRateLimited        Code = "RATE_LIMITED"
	CodeQueryTooComplex    Code = "QUERY_TOO_COMPLEX"
	CodeInternal           Code = "INTERNAL"
)

// Reason says why a credential did not authenticate (HTTP 401).
type Reason string

// The reasons of an UNAUTHENTICATED error. The server says INVALID unless
// the secret matched: only the holder of a real credential learns that it
// is revoked, expired, used from an address it is not allowed from, or (an
// enrollment key, from EnrollDevice) used up.
const (
	ReasonInvalid      Reason = "INVALID"
	ReasonRevoked      Reason = "REVOKED"
	ReasonExpired      Reason = "EXPIRED"
	ReasonIPNotAllowed Reason = "IP_NOT_ALLOWED"
	ReasonUsedUp       Reason = "USED_UP"
)

// Sentinels for errors.Is: every *Error matches the one of its Code.
var (
	// ErrUnauthenticated: no credential, or one that does not authenticate;
	// the *Error's Reason says why.
	ErrUnauthenticated = errors.New("keyplane: unauthenticated")
	// ErrForbidden: a valid key without a scope; the *Error's Scope names it.
	ErrForbidden = errors.New("keyplane: forbidden")
	// ErrNotFound: an unknown id, or another team's.
	ErrNotFound = errors.New("keyplane: not found")
	// ErrConflict: a duplicate serial number or email, or a concurrent
	// rotation that won.
	ErrConflict = errors.New("keyplane: conflict")
	// ErrRateLimited: HTTP 429, after the client's retries, if any; the
	// *Error's RetryAfter says when to try again.
	ErrRateLimited = errors.New("keyplane: rate limited")
	// ErrBadUserInput: a bad value; the *Error's Field names the field.
	ErrBadUserInput = errors.New("keyplane: bad user input")
	// ErrFailedPrecondition: the change would break a rule, such as
	// removing the last owner.
	ErrFailedPrecondition = errors.New("keyplane: failed precondition")
	// ErrInternal: a fault of the server; quote the *Error's RequestID to
	// its operator.
	ErrInternal = errors.New("keyplane: internal error")
)

var sentinels = map[Code]error{
	CodeUnauthenticated:    ErrUnauthenticated,
	CodeForbidden:          ErrForbidden,
	CodeNotFound:           ErrNotFound,
	CodeConflict:           ErrConflict,
	CodeRateLimited:        ErrRateLimited,
	CodeBadUserInput:       ErrBadUserInput,
	CodeFailedPrecondition: ErrFailedPrecondition,
	CodeInternal:           ErrInternal,
}

// Error is an error the server answered. Match its kind with errors.Is and
// a sentinel (errors.Is(err, client.ErrForbidden)), and read its details
// with errors.As:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Reason == client.ReasonRevoked { … }
//
// When a response carries several errors, the client returns them joined
// (errors.Join): errors.Is matches any of them, errors.As finds the first.
type Error struct {
	// Code is extensions.code; for an HTTP failure without one, such as a
	// proxy's 502, it is empty and StatusCode says what happened.
	Code Code
	// Message is the server's message, written for the caller.
	Message string
	// Reason says why a credential did not authenticate (UNAUTHENTICATED:
	// with HTTP 401 for the Bearer credential, with 200 for the enrollment
	// key of EnrollDevice); empty when no credential was sent.
	Reason Reason
	// Scope names the scope the key lacks (FORBIDDEN).
	Scope string
	// Field names the input field at fault (BAD_USER_INPUT).
	Field string
	// Path is where in the response the error arose, such as
	// "team.devices"; empty for an error of the whole request.
	Path string
	// RequestID identifies the request in the server's log (the
	// X-Request-Id header, or extensions.requestId).
	RequestID string
	// StatusCode is the HTTP status of the response: 200 for an error in
	// a GraphQL result, 401 for a bad credential, 429 when rate limited.
	StatusCode int
	// RetryAfter is how long the server asked to wait (RATE_LIMITED).
	RetryAfter time.Duration
}

// Error describes the error without any credential: the server's messages
// never carry one.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keyplane: ")
	switch {
	case e.Code != "":
		b.WriteString(string(e.Code))
	default:
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var details []string
	if e.Reason != "" {
		details = append(details, "reason "+string(e.Reason))
	}
	if e.Scope != "" {
		details = append(details, "scope "+e.Scope)
	}
	if e.Field != "" {
		details = append(details, "field "+e.Field)
	}
	if e.Path != "" {
		details = append(details, "at "+e.Path)
	}
	if e.RequestID != "" && (e.Code == CodeInternal || e.Code == "") {
		details = append(details, "request id "+e.RequestID)
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}

// Is makes errors.Is match the sentinel of the error's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}
