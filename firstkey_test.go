package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/apikeys"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// ttyBuffer stands in for a terminal that a person reads.
type ttyBuffer struct{ bytes.Buffer }

func (*ttyBuffer) IsTerminal() bool { return true }

// anyKey matches a team API key anywhere in a text.
var anyKey = regexp.MustCompile(`kp_[A-Za-z0-9_]{20,}`)

// firstStartOnce runs firstStart on a database with log and box sharing
// out, as they share stderr in the server.
func firstStartOnce(t *testing.T, st *store.Store, cfg config.Config, out interface {
	Write([]byte) (int, error)
}) error {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:8080"
	}
	return firstStart(context.Background(), cfg, newLogger(cfg, out), st, out)
}

// authenticates reports whether key is a working key of the database.
func authenticates(t *testing.T, st *store.Store, key string) bool {
	t.Helper()
	p, err := auth.NewAuthenticator(st, nil).Authenticate(context.Background(), key, auth.Client{IP: "127.0.0.1"})
	return err == nil && p != nil
}

func TestFirstStartBoxOnATerminal(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		database := testdb.New(t, d)
		var out ttyBuffer
		if err := firstStartOnce(t, database.Store, config.Config{LogFormat: "text"}, &out); err != nil {
			t.Fatal(err)
		}
		keys := anyKey.FindAllString(out.String(), -1)
		if len(keys) != 1 {
			t.Fatalf("want the key once, in a box, got %d keys:\n%s", len(keys), out.String())
		}
		if !strings.Contains(out.String(), "┌") || !strings.Contains(out.String(), "└") {
			t.Errorf("no box:\n%s", out.String())
		}
		if !authenticates(t, database.Store, keys[0]) {
			t.Errorf("the boxed key does not authenticate")
		}
		if n := database.Count(t, "teams", ""); n != 1 {
			t.Errorf("%d teams, want 1", n)
		}
	})
}

// Without a terminal to show the key on, or with JSON logs, no team is made
// and one log line says how to get one; no key appears anywhere.
func TestFirstStartWithoutATerminalMakesNoTeam(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		tests := []struct {
			name   string
			format string
			out    interface{ Write([]byte) (int, error) }
		}{
			{"text logs, not a terminal", "text", &bytes.Buffer{}},
			{"JSON logs, not a terminal", "json", &bytes.Buffer{}},
			{"JSON logs on a terminal", "json", &ttyBuffer{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				database := testdb.New(t, d)
				if err := firstStartOnce(t, database.Store, config.Config{LogFormat: tc.format}, tc.out); err != nil {
					t.Fatal(err)
				}
				out := tc.out.(interface{ String() string }).String()
				if anyKey.MatchString(out) || strings.Contains(out, "┌") {
					t.Errorf("the output shows a key or its box:\n%s", out)
				}
				if strings.Count(out, "\n") != 1 {
					t.Errorf("want one log line, got:\n%s", out)
				}
				for _, want := range []string{"keyplane bootstrap", "KEYPLANE_BOOTSTRAP_KEY_FILE"} {
					if !strings.Contains(out, want) {
						t.Errorf("the line does not mention %s:\n%s", want, out)
					}
				}
				if tc.format == "json" {
					var line map[string]any
					if err := json.Unmarshal([]byte(out), &line); err != nil {
						t.Errorf("not one JSON line (%v):\n%s", err, out)
					}
				}
				if n := database.Count(t, "teams", ""); n != 0 {
					t.Errorf("%d teams, want none: nobody could get their key", n)
				}
			})
		}
	})
}

func TestFirstStartWritesTheKeyFile(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		for _, format := range []string{"text", "json"} {
			t.Run(format, func(t *testing.T) {
				database := testdb.New(t, d)
				path := filepath.Join(t.TempDir(), "first-key")
				cfg := config.Config{LogFormat: format, BootstrapKeyFile: path}
				// A terminal, even: the file wins, and the key is not shown.
				var out ttyBuffer
				if err := firstStartOnce(t, database.Store, cfg, &out); err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("mode %v, want 0600", fi.Mode().Perm())
				}
				content, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !keyLine.Match(content) {
					t.Fatalf("the file is not one key line: %q", content)
				}
				if !authenticates(t, database.Store, strings.TrimSpace(string(content))) {
					t.Errorf("the key in the file does not authenticate")
				}
				logged := out.String()
				if anyKey.MatchString(logged) || strings.Contains(logged, "┌") {
					t.Errorf("the log shows a key or its box:\n%s", logged)
				}
				if strings.Count(logged, "\n") != 1 || !strings.Contains(logged, path) {
					t.Errorf("want one line naming %s, got:\n%s", path, logged)
				}

				// The next start finds the team and leaves the file alone.
				out.Reset()
				if err := firstStartOnce(t, database.Store, cfg, &out); err != nil {
					t.Fatalf("second start: %v", err)
				}
				if again, _ := os.ReadFile(path); !bytes.Equal(again, content) {
					t.Errorf("the second start changed the file")
				}
				if anyKey.MatchString(out.String()) {
					t.Errorf("the second start logs a key:\n%s", out.String())
				}
				if n := database.Count(t, "teams", ""); n != 1 {
					t.Errorf("%d teams, want 1", n)
				}
			})
		}
	})
}

func TestFirstStartKeyFileRefusals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		t.Run("existing file", func(t *testing.T) {
			database := testdb.New(t, d)
			path := filepath.Join(t.TempDir(), "first-key")
			if err := os.WriteFile(path, []byte("kept\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := firstStartOnce(t, database.Store, config.Config{LogFormat: "json", BootstrapKeyFile: path}, &out)
			if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), path) {
				t.Errorf("err %v, want one saying %s already exists", err, path)
			}
			if content, _ := os.ReadFile(path); string(content) != "kept\n" {
				t.Errorf("the file was overwritten: %q", content)
			}
			if anyKey.MatchString(out.String()) || anyKey.MatchString(err.Error()) {
				t.Errorf("a key shows: %v\n%s", err, out.String())
			}
			if n := database.Count(t, "teams", ""); n != 0 {
				t.Errorf("%d teams, want none", n)
			}
		})

		t.Run("a symlink to elsewhere", func(t *testing.T) {
			database := testdb.New(t, d)
			dir := t.TempDir()
			path := filepath.Join(dir, "first-key")
			if err := os.Symlink(filepath.Join(dir, "elsewhere"), path); err != nil {
				t.Skip(err)
			}
			err := firstStartOnce(t, database.Store, config.Config{LogFormat: "json", BootstrapKeyFile: path}, &bytes.Buffer{})
			if err == nil {
				t.Errorf("a dangling symlink was followed")
			}
			if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err == nil {
				t.Errorf("the key was written through the symlink")
			}
		})

		t.Run("missing directory", func(t *testing.T) {
			database := testdb.New(t, d)
			dir := filepath.Join(t.TempDir(), "no", "such")
			err := firstStartOnce(t, database.Store, config.Config{LogFormat: "json", BootstrapKeyFile: filepath.Join(dir, "first-key")}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), "directory "+dir+" does not exist") {
				t.Errorf("err %v, want one naming the missing directory %s", err, dir)
			}
			if n := database.Count(t, "teams", ""); n != 0 {
				t.Errorf("%d teams, want none", n)
			}
		})

		t.Run("a key that cannot be handed over is never made", func(t *testing.T) {
			database := testdb.New(t, d)
			failed := errors.New("disk full")
			team, _, err := teams.NewService(database.Store).BootstrapFirstWith(context.Background(), firstTeamName, teams.DefaultKeyName,
				func(apikeys.Issued) error { return failed })
			if !errors.Is(err, failed) || team != nil {
				t.Errorf("team %v, err %v; want none and %v", team, err, failed)
			}
			for _, table := range []string{"teams", "api_keys"} {
				if n := database.Count(t, table, ""); n != 0 {
					t.Errorf("%d rows in %s, want none", n, table)
				}
			}
		})
	})
}

// hasTeams reports whether the database at url holds a team.
func hasTeams(t *testing.T, url string) bool {
	t.Helper()
	d, err := db.Open(context.Background(), url, db.Pool{MaxOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(d)
	defer st.Close()
	has, err := st.HasTeams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return has
}

// The real binary, its stderr a pipe as under a container runtime: no
// team, no key in the output, one line on how to bootstrap; then the
// one-off `keyplane bootstrap` gets the key.
func TestServeNotATerminalLeavesNoKeyInTheLogs(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dbURL := cleanEnv(t)
			c := spawnServe(t, "DATABASE_URL="+dbURL, "LOG_FORMAT="+format)
			c.stop(t)
			out := c.output.String()
			if anyKey.MatchString(out) || strings.Contains(out, "┌") {
				t.Errorf("the output shows a key or its box:\n%s", out)
			}
			if !strings.Contains(out, "keyplane bootstrap") || !strings.Contains(out, "KEYPLANE_BOOTSTRAP_KEY_FILE") {
				t.Errorf("the output does not say how to get the first key:\n%s", out)
			}
			if format == "json" {
				checkJSONLines(t, out)
			}
			if hasTeams(t, dbURL) {
				t.Errorf("serve made a team whose key nobody has")
			}

			code, stdout, stderr := runCLI("bootstrap", "--team", "Acme")
			if code != 0 || !keyLine.MatchString(stdout) {
				t.Fatalf("bootstrap afterwards: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
			}
		})
	}
}

func TestServeWritesTheKeyFile(t *testing.T) {
	dbURL := cleanEnv(t)
	path := filepath.Join(t.TempDir(), "first-key")
	c := spawnServe(t, "DATABASE_URL="+dbURL, "LOG_FORMAT=json", "KEYPLANE_BOOTSTRAP_KEY_FILE="+path)
	c.stop(t)
	out := c.output.String()
	checkJSONLines(t, out)
	if anyKey.MatchString(out) {
		t.Errorf("the output shows a key:\n%s", out)
	}
	if !strings.Contains(out, `"file":"`+path+`"`) {
		t.Errorf("no log line names the file %s:\n%s", path, out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	content, _ := os.ReadFile(path)
	if !keyLine.Match(content) {
		t.Errorf("the file is not one key line: %q", content)
	}

	// A restart with the setting still there and the file still in place
	// starts normally.
	c = spawnServe(t, "DATABASE_URL="+dbURL, "LOG_FORMAT=json", "KEYPLANE_BOOTSTRAP_KEY_FILE="+path)
	c.stop(t)
	if again, _ := os.ReadFile(path); !bytes.Equal(again, content) {
		t.Errorf("the restart changed the file")
	}
}

// A key file that cannot be written stops the first start with one line,
// exit 1, rather than making a team nobody has the key of.
func TestServeRefusesAnExistingKeyFile(t *testing.T) {
	dbURL := cleanEnv(t)
	path := filepath.Join(t.TempDir(), "first-key")
	if err := os.WriteFile(path, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startServe(t, "DATABASE_URL="+dbURL, "LOG_FORMAT=json", "KEYPLANE_BOOTSTRAP_KEY_FILE="+path)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on a key file it cannot write")
	}
	out := c.output.String()
	var exit *exec.ExitError
	if !errors.As(c.err, &exit) || exit.ExitCode() != exitFailure {
		t.Errorf("exit %v, want %d:\n%s", c.err, exitFailure, out)
	}
	if !strings.Contains(out, "already exists") {
		t.Errorf("the output does not say the file exists:\n%s", out)
	}
	if content, _ := os.ReadFile(path); string(content) != "kept\n" {
		t.Errorf("the file was overwritten: %q", content)
	}
	if hasTeams(t, dbURL) {
		t.Errorf("serve made a team whose key nobody has")
	}
}

// checkJSONLines fails unless every line of out is a JSON object (the test
// binary's own PASS line aside).
func checkJSONLines(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "PASS" || strings.HasPrefix(line, "ok ") || line == "" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}
