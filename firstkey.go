package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
)

// bootstrapHow tells an operator the two ways to the first key that keep it
// out of the logs.
const bootstrapHow = "run `keyplane bootstrap --team NAME` once (it prints the key on stdout only), " +
	"or set KEYPLANE_BOOTSTRAP_KEY_FILE=/path and restart (the first start writes the key there, mode 0600)"

// firstStart gives an empty database its first team and admin key, in a
// way that never leaves the key in a log:
//
//   - KEYPLANE_BOOTSTRAP_KEY_FILE set: the key goes into that new file, mode
//     0600, and the log names only the file;
//   - text logs on a terminal (go run .): the key is shown once, boxed;
//   - otherwise (LOG_FORMAT=json, or stderr read by a container runtime or
//     a log collector): no team is made, since its key would land in the
//     logs, and one log line says how to get one.
//
// A database that already holds a team is left alone.
func firstStart(ctx context.Context, cfg config.Config, log *slog.Logger, st *store.Store, stderr io.Writer) error {
	has, err := st.HasTeams(ctx)
	if err != nil {
		return fmt.Errorf("look for a team: %w", err)
	}
	if has {
		if cfg.BootstrapKeyFile != "" {
			log.Info("the database already has a team, so KEYPLANE_BOOTSTRAP_KEY_FILE is not written; the setting can go", "file", cfg.BootstrapKeyFile)
		}
		return nil
	}
	svc := teams.NewService(st)
	switch {
	case cfg.BootstrapKeyFile != "":
		return writeFirstKey(ctx, svc, cfg.BootstrapKeyFile, log)
	case cfg.LogFormat == "text" && isTerminal(stderr):
		team, issued, err := svc.BootstrapFirst(ctx, firstTeamName, teams.DefaultKeyName)
		if err != nil {
			return fmt.Errorf("create the first team: %w", err)
		}
		if team != nil {
			printFirstKey(stderr, team.Name, issued.Secret, cfg.ListenAddr)
		}
		return nil
	default:
		log.Warn("the database has no team, and none was made: stderr is not a terminal, so its first key would be left in the logs", "how", bootstrapHow)
		return nil
	}
}

// writeFirstKey creates the first team with its key written to path, a new
// file of mode 0600. It never replaces a file: an existing one may hold the
// key of an earlier database, or be something else altogether. The file is
// written inside the team's transaction, so if it cannot be, no team is made.
func writeFirstKey(ctx context.Context, svc *teams.Service, path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("KEYPLANE_BOOTSTRAP_KEY_FILE: %s already exists and is never overwritten: move it away (it may hold the key of an earlier database) and start again, or unset the variable", path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("KEYPLANE_BOOTSTRAP_KEY_FILE: the directory %s does not exist: create it, or mount a volume there, writable by this process", filepath.Dir(path))
	case err != nil:
		return fmt.Errorf("KEYPLANE_BOOTSTRAP_KEY_FILE: %w", err)
	}
	kept := false
	defer func() {
		if !kept {
			_ = f.Close()
			_ = os.Remove(path)
		}
	}()
	team, _, err := svc.BootstrapFirstWith(ctx, firstTeamName, teams.DefaultKeyName, func(issued apikeys.Issued) error {
		// Chmod as well: the mode given to OpenFile passes through umask.
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		if _, err := f.WriteString(issued.Secret + "\n"); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("create the first team and write its key to %s: %w", path, err)
	}
	if team == nil {
		// Another replica made the first team between the look and the lock.
		log.Info("another process made the first team, so KEYPLANE_BOOTSTRAP_KEY_FILE is not written", "file", path)
		return nil
	}
	kept = true
	log.Info("made the first team; its admin key is in KEYPLANE_BOOTSTRAP_KEY_FILE, mode 0600: read it, store it, delete the file", "team", team.Name, "file", path)
	return nil
}

// terminal is what a writer may implement to say whether a person reads
// it; tests use it to stand in for one.
type terminal interface{ IsTerminal() bool }

// isTerminal reports whether w is a terminal a person reads: a character
// device other than the null device. A pipe, a file, or the log driver of a
// container runtime (without a TTY) is not one.
func isTerminal(w io.Writer) bool {
	switch w := w.(type) {
	case terminal:
		return w.IsTerminal()
	case *os.File:
		fi, err := w.Stat()
		if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return false
		}
		if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
			return false
		}
		return true
	}
	return false
}
