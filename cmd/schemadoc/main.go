// Command schemadoc writes the schema reference, docs/schema.md, from the
// descriptions in schema.graphqls: every type, field, argument, input field,
// enum value and directive, and who may call each field (its @auth).
//
// Run it from the repository root with
//
//	go run ./cmd/schemadoc
//
// or, with everything else that is generated, with go generate ./... .
// CI regenerates the file and fails when the committed one differs.
package main

//go:generate go run . -schema ../../schema.graphqls -out ../../docs/schema.md

import (
	"bytes"
	"flag"
	"fmt"
	"os"
)

func main() {
	schemaPath := flag.String("schema", "schema.graphqls", "the SDL to document")
	outPath := flag.String("out", "docs/schema.md", "the Markdown file to write")
	flag.Parse()

	if err := run(*schemaPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "schemadoc:", err)
		os.Exit(1)
	}
}

func run(schemaPath, outPath string) error {
	sdl, err := os.ReadFile(schemaPath)
	if err != nil {
		return err
	}
	doc, err := Render("schema.graphqls", string(sdl))
	if err != nil {
		return err
	}
	// Leave an up-to-date file untouched, so its modification time says
	// when the schema last changed.
	if old, err := os.ReadFile(outPath); err == nil && bytes.Equal(old, doc) {
		return nil
	}
	return os.WriteFile(outPath, doc, 0o644)
}
