// Package client is a typed Go client of a Keyplane server, for backends
// that manage their team's API keys, devices and members, and for devices
// that enroll and report in.
//
// # Use
//
//	kp := client.New("https://keyplane.example.com/graphql", client.WithKey(os.Getenv("KEYPLANE_KEY")))
//	for d, err := range kp.AllDevices(ctx, client.DeviceFilter{Status: client.DeviceStatusOnline}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(d.Name, d.LastSeenAt)
//	}
//
// A Client is safe for concurrent use. Its methods are named after the
// schema's fields (Devices, CreateApiKey, RotateApiKey, EnrollDevice, …) and
// take and return the types generated from the schema: inputs such as
// CreateApiKeyInput, filters such as DeviceFilter, enums such as Scope and
// DeviceStatus, and results such as Device, ApiKey and CreatedApiKey. A
// nullable field of a result is a pointer (Device.LastSeenAt is nil until
// the first heartbeat); an optional input field is a value that is left
// out when it is empty.
//
// # Credentials
//
// WithKey sets the Bearer credential. A backend holds a team API key
// (kp_…) and never hands it to a browser. A device enrolls with an
// enrollment key (kpe_…), which EnrollDevice sends in its input and not as
// a Bearer header, and then speaks with its own token (kpd_…):
//
//	enrolled, err := kp.EnrollDevice(ctx, client.EnrollDeviceInput{EnrollmentKey: enrollmentKey, SerialNumber: "CAM-0042"})
//	// …
//	device := kp.With(client.WithKey(enrolled.Token.Reveal()))
//	_, err = device.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{FirmwareVersion: "2.4.1"})
//
// # Secrets
//
// The secret of a new or rotated key and the token of a device come back
// once, as a Secret. Printing, logging or JSON-encoding a result shows
// "kp_…[redacted]" in its place; Secret.Reveal returns the value, for the
// one place that stores or uses it.
//
// # Errors
//
// A failure the server answers is a *Error, which errors.Is matches
// against ErrUnauthenticated, ErrForbidden, ErrNotFound, ErrConflict,
// ErrRateLimited, ErrBadUserInput, ErrFailedPrecondition or ErrInternal,
// and whose fields say more: Reason (why a credential was refused), Scope
// (the scope a key lacks), Field (the input at fault), RetryAfter and
// RequestID. Network failures are returned as the http.Client gave them.
//
// # Retries and pages
//
// A query refused with HTTP 429 is sent again after the Retry-After the
// server gave, at most DefaultMaxRetries times within DefaultMaxRetryWait
// (WithRetries changes both); a mutation is never sent twice. Lists come a
// page at a time (Devices, with PageOptions and Page.Next) or whole, as an
// iterator that requests page after page (AllDevices).
//
// # Regenerating
//
// generated.go is made by genqlient from ../schema.graphqls and the
// operations in operations/*.graphql, as genqlient.yaml says. After
// changing either, run go generate ./... from the repository's root, and
// commit the result; CI fails when it is stale.
package client

//go:generate go tool genqlient
