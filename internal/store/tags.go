package store

import "strings"

// Tags are stored as ",a,b," so that one tag is found as the substring
// ",a,"; a tag therefore never holds a comma (validate refuses it).

// JoinTags returns the storage form of a list of tags.
func JoinTags(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return "," + strings.Join(tags, ",") + ","
}

// SplitTags reads the storage form back.
func SplitTags(stored string) []string {
	stored = strings.Trim(stored, ",")
	if stored == "" {
		return []string{}
	}
	return strings.Split(stored, ",")
}
