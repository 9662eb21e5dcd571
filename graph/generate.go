package graph

//go:generate go tool gqlgen generate
//go:generate go run ./internal/seqlists generated/generated.go
