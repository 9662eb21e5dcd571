package devices

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/keyplane/keyplane/internal/audit"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
)

// sweepBatch is how many silent devices one read of a sweep takes; a sweep
// reads again while a read comes back full.
const sweepBatch = 500

// maxSweep bounds one sweep, however many devices fell silent at once (all
// of them, say, after an outage): what it recorded stays recorded, and the
// next tick goes on from there.
const maxSweep = 30 * time.Second

// Sweeper records devices OFFLINE once they have gone silent, with one
// device.offline event each (no actor); Service.Heartbeat records them
// ONLINE again. Every replica runs one: each transition is a conditional
// update in a transaction holding the team's lock, so exactly one replica
// changes a device's row and writes its event.
//
// Hysteresis: a device is recorded OFFLINE only after a full window of
// silence, and ONLINE at its first heartbeat after that; so it records at
// most one online/offline pair per window, and a device that is seen, goes
// silent for less than the window, and is seen again records nothing.
//
// A device is recorded OFFLINE up to one interval after its derived status
// (Device.StatusAt) turned OFFLINE; the derived status stays what the API
// shows. Revoked devices and devices never seen are never swept.
type Sweeper struct {
	store    *store.Store
	window   time.Duration
	interval time.Duration
	log      *slog.Logger
}

// NewSweeper returns a Sweeper on s that looks every interval for devices
// recorded ONLINE and not seen within window (the window Service uses).
// Both must be positive; internal/config holds their defaults.
func NewSweeper(s *store.Store, window, interval time.Duration, log *slog.Logger) *Sweeper {
	return &Sweeper{store: s, window: window, interval: interval, log: log}
}

// Run sweeps every interval until ctx ends. A sweep that fails is logged
// and tried again at the next tick.
func (w *Sweeper) Run(ctx context.Context) {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := w.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Error("presence sweep", "err", err, "recorded_offline", n)
		case n > 0:
			w.log.Debug("presence sweep", "recorded_offline", n)
		}
	}
}

// Sweep records OFFLINE, once, every device recorded ONLINE whose last
// heartbeat is a window old or more, and returns how many it recorded. It
// reads them in batches across teams, longest silent first, and changes
// each team's in one transaction: the team's lock, the update, which
// checks again that each is still ONLINE and silent so that a heartbeat
// racing it wins, and an event for each device it did change.
func (w *Sweeper) Sweep(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, maxSweep)
	defer cancel()
	cutoff := store.Now().Add(-w.window)
	recorded := 0
	for {
		silent, err := w.store.SilentOnlineDevices(ctx, cutoff, sweepBatch)
		if err != nil {
			return recorded, err
		}
		var teams []uuid.UUID
		byTeam := map[uuid.UUID][]uuid.UUID{}
		for _, d := range silent {
			if _, seen := byTeam[d.TeamID]; !seen {
				teams = append(teams, d.TeamID)
			}
			byTeam[d.TeamID] = append(byTeam[d.TeamID], d.ID)
		}
		for _, team := range teams {
			n, err := w.recordOffline(ctx, team, byTeam[team], cutoff)
			recorded += n
			if err != nil {
				return recorded, err
			}
		}
		// Each full batch either changed its devices or lost them to
		// heartbeats, so the next read finds others.
		if len(silent) < sweepBatch {
			return recorded, nil
		}
	}
}

// recordOffline records OFFLINE those of one team's devices that are still
// silent since cutoff, with an event each, and returns how many.
func (w *Sweeper) recordOffline(ctx context.Context, teamID uuid.UUID, devices []uuid.UUID, cutoff time.Time) (int, error) {
	return store.Tx(ctx, w.store, func(tx *store.Store) (int, error) {
		if err := tx.LockTeam(ctx, teamID); err != nil {
			return 0, err
		}
		changed, err := tx.RecordDevicesOffline(ctx, teamID, devices, cutoff)
		if err != nil || len(changed) == 0 {
			return 0, err
		}
		targets := make([]string, len(changed))
		for i, id := range changed {
			targets[i] = ids.Encode(ids.Device, id)
		}
		return len(changed), audit.RecordEach(ctx, tx, teamID, nil, audit.DeviceOffline, targets)
	})
}
