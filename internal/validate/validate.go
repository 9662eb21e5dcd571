// Package validate holds the input limits of the contract, one rule each, so
// that every mutation refuses bad text the same way.
package validate

import (
	"errors"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyplane/keyplane/internal/apperr"
	"github.com/keyplane/keyplane/internal/netaddr"
)

// Limits of the contract.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
	MaxCIDRs             = 50
)

// Name checks a display name: 1 to 200 characters of valid UTF-8, no
// control characters, not only spaces.
func Name(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return apperr.Input(field, "%s must not be empty", field)
	}
	if err := text(field, s, MaxNameLength, false); err != nil {
		return err
	}
	return nil
}

// Description checks free text: at most 2,000 characters of valid UTF-8,
// line breaks and tabs allowed, other control characters not.
func Description(field, s string) error {
	return text(field, s, MaxDescriptionLength, true)
}

func text(field, s string, max int, multiline bool) error {
	if !utf8.ValidString(s) {
		return apperr.Input(field, "%s must be valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return apperr.Input(field, "%s must be at most %d characters, got %d", field, max, n)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return apperr.Input(field, "%s must not contain control characters", field)
		}
	}
	return nil
}

// CIDRs checks a list of networks and returns them in canonical form
// (203.0.113.7/24 becomes 203.0.113.0/24, ::ffff:10.0.0.0/104 becomes
// 10.0.0.0/8), without duplicates. What an entry admits is netaddr's rule.
func CIDRs(field string, cidrs []string) ([]string, error) {
	if len(cidrs) > MaxCIDRs {
		return nil, apperr.Input(field, "%s takes at most %d networks", field, MaxCIDRs)
	}
	out := make([]string, 0, len(cidrs))
	seen := make(map[string]bool, len(cidrs))
	for _, c := range cidrs {
		prefix, err := netaddr.ParsePrefix(strings.TrimSpace(c))
		if errors.Is(err, netaddr.ErrShortMapped) {
			return nil, apperr.Input(field, "%s: %q is an IPv4-mapped network shorter than /96, which reaches into IPv6; write the IPv4 network instead (::ffff:10.0.0.0/104 is 10.0.0.0/8)", field, truncate(c))
		}
		if err != nil {
			return nil, apperr.Input(field, "%s: %q is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32", field, truncate(c))
		}
		canonical := prefix.String()
		if !seen[canonical] {
			seen[canonical] = true
			out = append(out, canonical)
		}
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 || !utf8.ValidString(s) {
		return strings.ToValidUTF8(s[:min(len(s), 64)], "?") + "…"
	}
	return s
}

// More limits of the contract.
const (
	MaxTags      = 50
	MaxTagLength = 64
	MaxEmail     = 254
)

// Tags checks a list of tags: at most 50, each 1 to 64 characters with no
// comma or control character; duplicates are dropped, order kept.
func Tags(field string, tags []string) ([]string, error) {
	if len(tags) > MaxTags {
		return nil, apperr.Input(field, "%s takes at most %d tags", field, MaxTags)
	}
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for _, tag := range tags {
		if tag == "" || strings.ContainsRune(tag, ',') {
			return nil, apperr.Input(field, "%s: a tag must be non-empty and hold no comma", field)
		}
		if err := text(field, tag, MaxTagLength, false); err != nil {
			return nil, apperr.Input(field, "%s: each tag is at most %d characters of text without control characters", field, MaxTagLength)
		}
		if !seen[tag] {
			seen[tag] = true
			out = append(out, tag)
		}
	}
	return out, nil
}

// Email checks an address and returns its comparison key: the address in
// lower case, so that two spellings of one address are one member.
func Email(field, s string) (string, error) {
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s || addr.Name != "" || len(s) > MaxEmail || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "", apperr.Input(field, "%s must be an email address such as ada@example.com", field)
	}
	if err := text(field, s, MaxEmail, false); err != nil {
		return "", err
	}
	return strings.ToLower(s), nil
}

// Optional checks an optional one-line text field (a model, a firmware
// version) of at most 200 characters; nil passes.
func Optional(field string, s *string) error {
	if s == nil {
		return nil
	}
	return text(field, *s, MaxNameLength, false)
}

// Search checks text a client filters by: at most 200 characters of valid
// UTF-8 without NUL, which PostgreSQL text cannot hold.
func Search(field string, s string) error {
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return apperr.Input(field, "%s must be valid UTF-8 text without NUL characters", field)
	}
	if n := utf8.RuneCountInString(s); n > MaxNameLength {
		return apperr.Input(field, "%s must be at most %d characters, got %d", field, MaxNameLength, n)
	}
	return nil
}
