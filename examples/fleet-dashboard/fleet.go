package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyplane/keyplane/client"
)

// This file is the dashboard's one query to Keyplane (readFleet) and the
// answer the browser gets (fleetView); live.go holds its one subscription.
// To show something else, change both:
// ask Keyplane through the typed client, and copy into the view only what
// the page draws. app.js draws the view.

// recentCount is how many of the most recently seen devices the page lists.
const recentCount = 10

// fleetView is the body of GET /api/fleet: what the page shows, and nothing
// else. It is built field by field from the client's results, never by
// encoding one of them, so that nothing Keyplane adds to a result (an id, a
// serial number, a credential) reaches the browser unless it is written
// here.
type fleetView struct {
	Counts statusCounts `json:"counts"`
	Recent []deviceView `json:"recent"`
	// GeneratedAt is when the figures were read; the page shows how long
	// ago each device was seen relative to it, not to the browser's clock.
	GeneratedAt time.Time `json:"generatedAt"`
	// RefreshSeconds is how long the page waits before asking again.
	RefreshSeconds int `json:"refreshSeconds"`
}

// statusCounts counts the team's devices by status.
type statusCounts struct {
	Pending int `json:"pending"`
	Online  int `json:"online"`
	Offline int `json:"offline"`
	Revoked int `json:"revoked"`
	Total   int `json:"total"`
}

// deviceView is one device as the page lists it: by name, never by id.
type deviceView struct {
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	LastSeenAt time.Time `json:"lastSeenAt"`
}

// readFleet reads every device of the team, a page of 100 at a time, and
// counts them by status while keeping the most recently seen. Keyplane
// cannot sort devices by when they were last seen, so the ten most recent
// need the whole list; counting in the same pass costs nothing more. (To
// show counts alone, ask Devices for one item of each status and read
// Page.TotalCount: four small requests, whatever the size of the fleet.)
// It needs a key with DEVICES_READ.
func readFleet(ctx context.Context, kp *client.Client, now time.Time) (fleetView, error) {
	view := fleetView{Recent: []deviceView{}, GeneratedAt: now.UTC()}
	var seen []client.Device
	for d, err := range kp.AllDevices(ctx, client.DeviceFilter{}) {
		if err != nil {
			return fleetView{}, fmt.Errorf("list the devices: %w", err)
		}
		view.Counts.add(d.Status)
		if d.LastSeenAt != nil {
			if seen = append(seen, d); len(seen) >= 4*recentCount {
				seen = newest(seen)
			}
		}
	}
	for _, d := range newest(seen) {
		view.Recent = append(view.Recent, deviceView{
			Name:       displayName(d.Name),
			Status:     string(d.Status),
			LastSeenAt: d.LastSeenAt.UTC(),
		})
	}
	return view, nil
}

// add counts one device; a status this example does not know yet counts in
// the total only.
func (c *statusCounts) add(status client.DeviceStatus) {
	c.Total++
	switch status {
	case client.DeviceStatusPending:
		c.Pending++
	case client.DeviceStatusOnline:
		c.Online++
	case client.DeviceStatusOffline:
		c.Offline++
	case client.DeviceStatusRevoked:
		c.Revoked++
	}
}

// newest sorts seen devices by when they were last seen, newest first
// (then by name), and keeps the first recentCount.
func newest(devices []client.Device) []client.Device {
	slices.SortFunc(devices, func(a, b client.Device) int {
		if c := b.LastSeenAt.Compare(*a.LastSeenAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return devices[:min(len(devices), recentCount)]
}

// credentialPrefixes start Keyplane's credentials: team API keys, device
// tokens, enrollment keys.
var credentialPrefixes = []string{"kp_", "kpd_", "kpe_"}

// hiddenName stands for a device name that holds a credential's prefix.
const hiddenName = "(name hidden)"

// displayName is a device's name as the page shows it. A name is whatever
// the team, or a device enrolling itself, chose; one that holds a
// credential's prefix, perhaps a secret pasted by mistake, is hidden, so
// that no credential can reach the browser this way either.
func displayName(name string) string {
	for _, p := range credentialPrefixes {
		if strings.Contains(name, p) {
			return hiddenName
		}
	}
	return name
}
