package client

import (
	"context"
	"fmt"
	"iter"
)

// The methods below call the operations of operations/*.graphql through
// the generated functions of generated.go. Each returns the result, or nil
// and an error: a *Error the server answered (match it with errors.Is), or
// a transport error. The names follow the schema's fields.

// result returns v, or an error when the server answered null without
// saying why.
func result[T any](v *T, err error, field string) (*T, error) {
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("keyplane: %s answered null without an error", field)
	}
	return v, nil
}

// Devices returns one page of the team's devices that match filter (the
// zero DeviceFilter matches all). It needs DEVICES_READ.
func (c *Client) Devices(ctx context.Context, filter DeviceFilter, page PageOptions) (*Page[Device], error) {
	resp, err := listDevices(ctx, c.gql, page.First, page.After, filter, page.Order)
	if err != nil {
		return nil, err
	}
	if resp.Team == nil || resp.Team.Devices == nil {
		return nil, fmt.Errorf("keyplane: team.devices answered null without an error")
	}
	d := resp.Team.Devices
	return &Page[Device]{Nodes: d.Nodes, PageInfo: d.PageInfo, TotalCount: d.TotalCount}, nil
}

// AllDevices iterates over every device that matches filter, oldest first,
// requesting page after page (WithPageSize). A failed request ends the
// iteration with its error:
//
//	for d, err := range kp.AllDevices(ctx, client.DeviceFilter{Status: client.DeviceStatusOnline}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(d.Name)
//	}
func (c *Client) AllDevices(ctx context.Context, filter DeviceFilter) iter.Seq2[Device, error] {
	return all(ctx, c.pageSize, func(ctx context.Context, page PageOptions) (*Page[Device], error) {
		return c.Devices(ctx, filter, page)
	})
}

// CreateDevice registers a device; its token is in the result, once. It
// needs DEVICES_WRITE. A serial number the team already has is ErrConflict.
func (c *Client) CreateDevice(ctx context.Context, input CreateDeviceInput) (*CreatedDevice, error) {
	resp, err := createDevice(ctx, c.gql, input)
	return result(resp.CreateDevice, err, "createDevice")
}

// RotateDeviceToken gives a device a new token, in the result; the old one
// is refused at once. It needs DEVICES_WRITE.
func (c *Client) RotateDeviceToken(ctx context.Context, id string) (*RotatedDeviceToken, error) {
	resp, err := rotateDeviceToken(ctx, c.gql, RotateDeviceTokenInput{Id: id})
	return result(resp.RotateDeviceToken, err, "rotateDeviceToken")
}

// RevokeDevice revokes a device for good: its token is refused at once.
// It needs DEVICES_WRITE.
func (c *Client) RevokeDevice(ctx context.Context, id string) (*Device, error) {
	resp, err := revokeDevice(ctx, c.gql, RevokeDeviceInput{Id: id})
	payload, err := result(resp.RevokeDevice, err, "revokeDevice")
	if err != nil {
		return nil, err
	}
	return &payload.Device, nil
}

// ApiKeys returns one page of the team's API keys that match filter. It
// needs API_KEYS_READ.
func (c *Client) ApiKeys(ctx context.Context, filter ApiKeyFilter, page PageOptions) (*Page[ApiKey], error) {
	resp, err := listApiKeys(ctx, c.gql, page.First, page.After, filter, page.Order)
	if err != nil {
		return nil, err
	}
	if resp.Team == nil || resp.Team.ApiKeys == nil {
		return nil, fmt.Errorf("keyplane: team.apiKeys answered null without an error")
	}
	k := resp.Team.ApiKeys
	return &Page[ApiKey]{Nodes: k.Nodes, PageInfo: k.PageInfo, TotalCount: k.TotalCount}, nil
}

// AllApiKeys iterates over every API key that matches filter, oldest
// first, as AllDevices does.
func (c *Client) AllApiKeys(ctx context.Context, filter ApiKeyFilter) iter.Seq2[ApiKey, error] {
	return all(ctx, c.pageSize, func(ctx context.Context, page PageOptions) (*Page[ApiKey], error) {
		return c.ApiKeys(ctx, filter, page)
	})
}

// CreateApiKey creates an API key; its secret is in the result, once. It
// needs API_KEYS_WRITE, and the caller can grant only scopes it holds.
func (c *Client) CreateApiKey(ctx context.Context, input CreateApiKeyInput) (*CreatedApiKey, error) {
	resp, err := createApiKey(ctx, c.gql, input)
	return result(resp.CreateApiKey, err, "createApiKey")
}

// RotateApiKey gives a key a new secret, in the result. The old secret
// keeps working for input.GracePeriodSeconds (0 to 604800), so that the
// holders can move to the new one without downtime. It needs
// API_KEYS_WRITE and every scope the key holds; a key may rotate itself.
func (c *Client) RotateApiKey(ctx context.Context, input RotateApiKeyInput) (*RotatedApiKey, error) {
	resp, err := rotateApiKey(ctx, c.gql, input)
	return result(resp.RotateApiKey, err, "rotateApiKey")
}

// RevokeApiKey revokes a key, permanently and at once. It needs
// API_KEYS_WRITE and every scope the key holds; a key may revoke itself.
func (c *Client) RevokeApiKey(ctx context.Context, id string) (*ApiKey, error) {
	resp, err := revokeApiKey(ctx, c.gql, RevokeApiKeyInput{Id: id})
	payload, err := result(resp.RevokeApiKey, err, "revokeApiKey")
	if err != nil {
		return nil, err
	}
	return &payload.ApiKey, nil
}

// CreateEnrollmentKey creates a key that lets devices enroll themselves;
// its secret (kpe_…) is in the result, once. It needs DEVICES_WRITE.
func (c *Client) CreateEnrollmentKey(ctx context.Context, input CreateEnrollmentKeyInput) (*CreatedEnrollmentKey, error) {
	resp, err := createEnrollmentKey(ctx, c.gql, input)
	return result(resp.CreateEnrollmentKey, err, "createEnrollmentKey")
}

// EnrollDevice joins a device to the team of input.EnrollmentKey, the
// credential of this call: the request carries no Bearer header, whatever
// WithKey set. The device's token (kpd_…) is in the result, once; the
// device keeps it and speaks with it:
//
//	device := kp.With(client.WithKey(enrolled.Token.Reveal()))
func (c *Client) EnrollDevice(ctx context.Context, input EnrollDeviceInput) (*EnrolledDevice, error) {
	resp, err := enrollDevice(withoutCredential(ctx), c.gql, input)
	return result(resp.EnrollDevice, err, "enrollDevice")
}

// DeviceHeartbeat reports that the calling device is alive: the client's
// key must be the device's own token (kpd_…), not a team key. It returns
// the device, marked seen.
func (c *Client) DeviceHeartbeat(ctx context.Context, input DeviceHeartbeatInput) (*Device, error) {
	resp, err := deviceHeartbeat(ctx, c.gql, input)
	payload, err := result(resp.DeviceHeartbeat, err, "deviceHeartbeat")
	if err != nil {
		return nil, err
	}
	return &payload.Device, nil
}

// Members returns one page of the team's members that match filter. It
// needs MEMBERS_READ.
func (c *Client) Members(ctx context.Context, filter MemberFilter, page PageOptions) (*Page[Member], error) {
	resp, err := listMembers(ctx, c.gql, page.First, page.After, filter, page.Order)
	if err != nil {
		return nil, err
	}
	if resp.Team == nil || resp.Team.Members == nil {
		return nil, fmt.Errorf("keyplane: team.members answered null without an error")
	}
	m := resp.Team.Members
	return &Page[Member]{Nodes: m.Nodes, PageInfo: m.PageInfo, TotalCount: m.TotalCount}, nil
}

// AllMembers iterates over every member that matches filter, oldest
// first, as AllDevices does.
func (c *Client) AllMembers(ctx context.Context, filter MemberFilter) iter.Seq2[Member, error] {
	return all(ctx, c.pageSize, func(ctx context.Context, page PageOptions) (*Page[Member], error) {
		return c.Members(ctx, filter, page)
	})
}

// AddMember adds a member, INVITED. It needs MEMBERS_WRITE and every scope
// of the role's cap. An email the team already has is ErrConflict.
func (c *Client) AddMember(ctx context.Context, input AddMemberInput) (*Member, error) {
	resp, err := addMember(ctx, c.gql, input)
	payload, err := result(resp.AddMember, err, "addMember")
	if err != nil {
		return nil, err
	}
	return &payload.Member, nil
}

// AuditQuery says which events of the audit log to read, and how much of
// them.
type AuditQuery struct {
	// Filter narrows the log; the zero filter keeps every event.
	Filter AuditEventFilter
	// WithActors also reads who made each change: AuditEvent.Actor and
	// ActorDevice. That needs API_KEYS_READ and DEVICES_READ besides
	// AUDIT_READ; without it they stay nil.
	WithActors bool
}

// AuditEvents returns one page of the team's audit log, newest first
// unless page.Order says otherwise. It needs AUDIT_READ.
func (c *Client) AuditEvents(ctx context.Context, query AuditQuery, page PageOptions) (*Page[AuditEvent], error) {
	resp, err := listAuditEvents(ctx, c.gql, page.First, page.After, query.Filter, page.Order, query.WithActors)
	if err != nil {
		return nil, err
	}
	if resp.Team == nil || resp.Team.AuditEvents == nil {
		return nil, fmt.Errorf("keyplane: team.auditEvents answered null without an error")
	}
	e := resp.Team.AuditEvents
	return &Page[AuditEvent]{Nodes: e.Nodes, PageInfo: e.PageInfo, TotalCount: e.TotalCount}, nil
}

// AllAuditEvents iterates over every event of the audit log that matches
// the query, newest first, as AllDevices does. To follow the log as it
// grows, read it oldest first with AuditEvents and Page.Next instead.
func (c *Client) AllAuditEvents(ctx context.Context, query AuditQuery) iter.Seq2[AuditEvent, error] {
	return all(ctx, c.pageSize, func(ctx context.Context, page PageOptions) (*Page[AuditEvent], error) {
		return c.AuditEvents(ctx, query, page)
	})
}
