package main

//go:generate go tool gqlgen generate --config gqlgen.yml
//go:generate go run ../../graph/internal/seqlists generated/generated.go
