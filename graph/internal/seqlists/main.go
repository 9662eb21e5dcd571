// Command seqlists runs after gqlgen (see graph/generate.go): it rewrites
// the generated code's calls to graphql.MarshalSliceConcurrently, which
// starts a goroutine per list element, into calls to marshalSlice
// (graph/generated/slice.go), which marshals the elements in turn. The load
// profile showed those goroutines as the largest cost of a page of devices.
//
//	go run ./internal/seqlists generated/generated.go
package main

import (
	"bytes"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: seqlists FILE")
		os.Exit(2)
	}
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "seqlists:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	from, to := []byte("graphql.MarshalSliceConcurrently("), []byte("marshalSlice(")
	if !bytes.Contains(src, from) && !bytes.Contains(src, to) {
		return fmt.Errorf("%s has no list marshalling to rewrite: has gqlgen changed?", path)
	}
	return os.WriteFile(path, bytes.ReplaceAll(src, from, to), 0o644)
}
