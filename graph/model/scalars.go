// Package model holds the GraphQL edge's own types: generated inputs and
// payloads, the DateTime scalar and the connection types.
package model

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/keyplane/keyplane/internal/apperr"
)

// DateTime is the schema's DateTime scalar: RFC 3339, always in UTC.
type DateTime = time.Time

// MarshalDateTime writes t in RFC 3339 (with fractional seconds when it has
// them), in UTC.
func MarshalDateTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalDateTime reads an RFC 3339 string with an explicit offset.
func UnmarshalDateTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.Input("", "DateTime must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apperr.Input("", "DateTime must be RFC 3339, such as 2026-01-02T15:04:05Z")
	}
	return t.UTC(), nil
}

// Int is the schema's Int: a 32-bit integer, as the GraphQL spec says.
// gqlgen's own accepts numeric strings and 64-bit values; this one refuses
// them with BAD_USER_INPUT, so "60" or 2^55 never reaches a rule.
type Int = int

// MarshalInt writes an Int.
func MarshalInt(i int) graphql.Marshaler { return graphql.MarshalInt(i) }

// UnmarshalInt reads an Int from a literal or a JSON variable.
func UnmarshalInt(v any) (int, error) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case json.Number:
		parsed, err := strconv.ParseInt(string(x), 10, 32)
		if err != nil {
			return 0, apperr.Input("", "Int must be a whole number between -2147483648 and 2147483647")
		}
		n = parsed
	default:
		return 0, apperr.Input("", "Int must be a whole number, not %T", v)
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, apperr.Input("", "Int must be between -2147483648 and 2147483647")
	}
	return int(n), nil
}

// String is the schema's String: text only. gqlgen's own turns numbers and
// booleans into text, so that {"name": 42} would create a key named "42".
type String = string

// MarshalString writes a String.
func MarshalString(s string) graphql.Marshaler { return graphql.MarshalString(s) }

// UnmarshalString reads a String.
func UnmarshalString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", apperr.Input("", "String must be text, not %T", v)
	}
	return s, nil
}
