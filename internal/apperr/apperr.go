// Package apperr holds the errors a client may see. Each carries a code from
// the contract and a message written for the caller. The store's sentinels
// (store.ErrNotFound, ErrConflict, ErrStale) are not among them: the domain
// or the GraphQL edge maps those. Anything else that reaches the edge is an
// internal error and is logged, not shown.
package apperr

import (
	"errors"
	"fmt"
)

// Code is the value of extensions.code in a GraphQL error.
type Code string

// The codes of the contract.
const (
	Unauthenticated    Code = "UNAUTHENTICATED"
	Forbidden          Code = "FORBIDDEN"
	NotFound           Code = "NOT_FOUND"
	BadUserInput       Code = "BAD_USER_INPUT"
	Conflict           Code = "CONFLICT"
	FailedPrecondition Code = "FAILED_PRECONDITION"
	RateLimited        Code = "RATE_LIMITED"
	QueryTooComplex    Code = "QUERY_TOO_COMPLEX"
	Internal           Code = "INTERNAL"
)

// Codes returns every code of the contract: the values a metric's label
// may take.
func Codes() []Code {
	return []Code{Unauthenticated, Forbidden, NotFound, BadUserInput, Conflict, FailedPrecondition, RateLimited, QueryTooComplex, Internal}
}

// Error is a failure whose message is safe to show the caller.
type Error struct {
	Code    Code
	Message string
	// Field names the input field at fault, for BAD_USER_INPUT.
	Field string
	// Scope names the missing scope, for FORBIDDEN.
	Scope string
	// Reason says why a credential did not authenticate, for UNAUTHENTICATED.
	Reason string
}

func (e *Error) Error() string { return e.Message }

// Is makes every error of one code match the sentinel of that code, so that
// callers write errors.Is(err, apperr.ErrNotFound).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is, for the codes callers test for. ErrNotFound
// matches the errors made by NotFoundf, not a row the store did not find:
// test for that with store.ErrNotFound.
var (
	ErrNotFound     = &Error{Code: NotFound}
	ErrBadUserInput = &Error{Code: BadUserInput}
)

// New returns an error with a code and a message for the caller.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Input reports a bad value in one input field.
func Input(field, format string, args ...any) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// MissingScope reports a valid credential that lacks a scope.
func MissingScope(scope string) *Error {
	return &Error{Code: Forbidden, Scope: scope, Message: "this key lacks the " + scope + " scope"}
}

// NotFoundf reports an object that does not exist for the caller. Foreign
// objects use it too, so that they cannot be told from unknown ones.
func NotFoundf(format string, args ...any) *Error {
	return New(NotFound, format, args...)
}

// As returns the client-safe error inside err, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e, true
	}
	return nil, false
}
