package generated

import "github.com/jackc/pgx/v5/pgtype"

// Team is the team of the calling key; its devices are read by
// Team.devices's resolver.
type Team struct {
	ID pgtype.UUID
}
