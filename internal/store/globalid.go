package store

import (
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/ids"
)

// The API shows each row by its global id and some computed fields. They
// are methods here, not resolvers, so that gqlgen computes them inline for
// every row of a page instead of starting a goroutine per field.

// GlobalID is the id clients see: team_….
func (t *Team) GlobalID() string { return ids.Encode(ids.Team, t.ID) }

// GlobalID is the id clients see: key_….
func (k *APIKey) GlobalID() string { return ids.Encode(ids.APIKey, k.ID) }

// Start is the public prefix of the key's secret.
func (k *APIKey) Start() string { return credential.Start(credential.APIKey, k.ID) }

// GlobalID is the id clients see: dev_….
func (d *Device) GlobalID() string { return ids.Encode(ids.Device, d.ID) }

// TagList is the device's tags.
func (d *Device) TagList() []string { return SplitTags(d.Tags) }

// GlobalID is the id clients see: mem_….
func (m *Member) GlobalID() string { return ids.Encode(ids.Member, m.ID) }

// GlobalID is the id clients see: enr_….
func (k *EnrollmentKey) GlobalID() string { return ids.Encode(ids.EnrollmentKey, k.ID) }

// Start is the public prefix of the enrollment key's secret.
func (k *EnrollmentKey) Start() string { return credential.Start(credential.EnrollmentKey, k.ID) }

// TagList is the tags the key gives the devices it enrolls.
func (k *EnrollmentKey) TagList() []string { return SplitTags(k.Tags) }

// GlobalID is the id clients see: evt_….
func (e *AuditEvent) GlobalID() string { return ids.Encode(ids.AuditEvent, e.ID) }
