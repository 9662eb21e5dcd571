package db

import (
	"database/sql/driver"
	"strings"

	gosqlite "github.com/glebarez/go-sqlite"
)

// UnicodeLower is the SQL function that lower-cases text on every dialect.
// SQLite's own LOWER folds ASCII only, so a case-insensitive search for
// "Ü" would miss "ü"; on SQLite the store calls this Go function instead.
func UnicodeLower(d Dialect) string {
	if d == SQLite {
		return "keyplane_lower"
	}
	return "LOWER"
}

// Contains returns a SQL condition true when the text column holds the
// parameter as a substring, exactly: no LIKE wildcards, no case folding
// (SQLite's LIKE folds ASCII case).
func Contains(d Dialect, column string) string {
	if d == SQLite {
		return "instr(" + column + ", ?) > 0"
	}
	return "strpos(" + column + ", ?) > 0"
}

func init() {
	gosqlite.MustRegisterDeterministicScalarFunction("keyplane_lower", 1, func(_ *gosqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return strings.ToLower(v), nil
		case []byte:
			return strings.ToLower(string(v)), nil
		default:
			return v, nil
		}
	})
}
