package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoListen is Listen's answer on a database without LISTEN/NOTIFY.
var ErrNoListen = errors.New("db: this database has no LISTEN/NOTIFY")

// Listen receives PostgreSQL's notifications on channel, on a connection of
// its own outside the pool, until ctx ends. Each time it has (re)connected
// and listens, it calls ready: a notification sent while it was away is
// lost, so the caller catches up then. A lost connection is retried with a
// growing pause, from 100 ms up to 5 s. It returns ErrNoListen on SQLite,
// and at once if the first LISTEN fails, as on an engine without it.
func (d *DB) Listen(ctx context.Context, channel string, ready func(), notify func(payload string)) error {
	if d.directConn == nil {
		return ErrNoListen
	}
	pause := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		listened, err := d.listenOnce(ctx, channel, ready, notify)
		if first && errors.Is(err, errListen) {
			return err
		}
		if listened {
			// It had worked: the next loss waits from the shortest pause.
			pause = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(pause*2, 5*time.Second)
	}
	return nil
}

var errListen = errors.New("db: LISTEN refused")

// listenOnce listens on one connection until it fails; listened tells
// whether it got as far as listening.
func (d *DB) listenOnce(ctx context.Context, channel string, ready func(), notify func(string)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, d.directConn.Copy())
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, errors.Join(errListen, err)
	}
	ready()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		notify(n.Payload)
	}
}
