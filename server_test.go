package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/teams"
	"github.com/keyplane/keyplane/internal/testdb"
)

// cleanEnv clears every setting the server reads, so that the machine's
// environment cannot change what a test sees, and points DATABASE_URL at a
// fresh SQLite file (never ./data).
func cleanEnv(t *testing.T) string {
	t.Helper()
	for _, name := range []string{
		"DATABASE_URL", "LISTEN_ADDR", "KEYPLANE_PLAYGROUND", "KEYPLANE_INTROSPECTION",
		"LOG_LEVEL", "LOG_FORMAT",
		"KEYPLANE_RATE_LIMIT_RPS", "KEYPLANE_RATE_LIMIT_BURST",
		"KEYPLANE_AUTH_FAILURE_RPS", "KEYPLANE_AUTH_FAILURE_BURST",
		"KEYPLANE_TRUSTED_PROXIES", "REDIS_URL", "KEYPLANE_PPROF_ADDR",
		"KEYPLANE_BOOTSTRAP_KEY_FILE",
	} {
		t.Setenv(name, "")
	}
	// A test's SIGTERM stops serve at once; shutdown_test.go drains on purpose.
	t.Setenv("KEYPLANE_SHUTDOWN_DRAIN", "0")
	url := "sqlite:" + filepath.Join(t.TempDir(), "k.db")
	t.Setenv("DATABASE_URL", url)
	return url
}

// runCLI runs the command line and returns its exit code and output.
func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var keyLine = regexp.MustCompile(`^kp_[A-Za-z0-9_]+\n$`)

func TestBootstrapPrintsOnlyTheKey(t *testing.T) {
	check := func(t *testing.T, url string) {
		t.Setenv("DATABASE_URL", url)
		code, stdout, stderr := runCLI("bootstrap", "--team", "Acme")
		if code != 0 {
			t.Fatalf("bootstrap: exit %d, stderr:\n%s", code, stderr)
		}
		if !keyLine.MatchString(stdout) {
			t.Fatalf("stdout is not exactly one key line: %q", stdout)
		}
		key := strings.TrimSuffix(stdout, "\n")
		if strings.Contains(stderr, key) {
			t.Errorf("stderr shows the key:\n%s", stderr)
		}

		ctx := context.Background()
		d, err := db.Open(ctx, url, db.Pool{MaxOpen: 2})
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		st := store.New(d)
		defer st.Close()
		p, err := auth.NewAuthenticator(st, nil).Authenticate(ctx, key, auth.Client{IP: "127.0.0.1"})
		if err != nil {
			t.Fatalf("the printed key does not authenticate: %v", err)
		}
		if p == nil {
			t.Fatalf("the printed key authenticates to no principal")
		}
	}

	t.Run("sqlite", func(t *testing.T) {
		check(t, cleanEnv(t))
	})
	t.Run("postgres", func(t *testing.T) {
		cleanEnv(t)
		hasPostgres := false
		for _, d := range testdb.Dialects(t) {
			hasPostgres = hasPostgres || d == db.Postgres
		}
		if !hasPostgres {
			t.Skip("PostgreSQL does not answer")
		}
		check(t, testdb.New(t, db.Postgres).URL)
	})
}

func TestBootstrapFailures(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int // -1: any non-zero code
		stderr   string
	}{
		{"missing --team", []string{"bootstrap"}, 2, "--team"},
		{"empty --team", []string{"bootstrap", "--team", "  "}, 2, "--team"},
		{"unknown flag", []string{"bootstrap", "--team", "Acme", "--frobnicate"}, -1, "frobnicate"},
		{"team name of 201 characters", []string{"bootstrap", "--team", strings.Repeat("n", 201)}, -1, "200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			code, stdout, stderr := runCLI(tc.args...)
			switch {
			case tc.wantCode < 0 && code == 0:
				t.Errorf("exit 0, want non-zero")
			case tc.wantCode >= 0 && code != tc.wantCode:
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

func TestBadConfigExitsTwo(t *testing.T) {
	tests := []struct{ name, value string }{
		{"DATABASE_URL", "mysql://x"},
		{"DATABASE_URL", "postgres://"},
		{"LISTEN_ADDR", "notanaddress"},
		{"LISTEN_ADDR", ":99999"},
		{"KEYPLANE_PPROF_ADDR", "localhost"},
		{"LOG_LEVEL", "loud"},
		{"LOG_FORMAT", "xml"},
		{"KEYPLANE_PLAYGROUND", "maybe"},
		{"KEYPLANE_INTROSPECTION", "perhaps"},
	}
	for _, tc := range tests {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			cleanEnv(t)
			// Should the bad value be accepted, serve must fail at once
			// rather than block: the listen address is already taken.
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			t.Setenv("LISTEN_ADDR", busy.Addr().String())
			t.Setenv(tc.name, tc.value)

			code, stdout, stderr := runCLI("serve")
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Errorf("stderr is not one line:\n%s", stderr)
			}
			if !strings.Contains(stderr, tc.name) {
				t.Errorf("stderr does not name %s: %q", tc.name, stderr)
			}
		})
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	cleanEnv(t)
	code, stdout, stderr := runCLI("version")
	if code != 0 {
		t.Errorf("version: exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, "keyplane ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version: stdout %q, want keyplane <version> … go1.…", stdout)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("version: stdout %q, want one line", stdout)
	}

	code, stdout, stderr = runCLI("frobnicate")
	if code != 2 {
		t.Errorf("frobnicate: exit %d, want 2", code)
	}
	if stdout != "" {
		t.Errorf("frobnicate: stdout %q, want nothing", stdout)
	}
	if !strings.Contains(stderr, "frobnicate") {
		t.Errorf("frobnicate: stderr does not name the command: %q", stderr)
	}
}

func TestMigrateUpAndStatus(t *testing.T) {
	cleanEnv(t)
	pending := regexp.MustCompile(`(?m)^00001\s+pending\b`)
	applied := regexp.MustCompile(`(?m)^00001\s+applied\b`)

	code, stdout, stderr := runCLI("migrate", "status")
	if code != 0 {
		t.Fatalf("migrate status: exit %d, stderr %q", code, stderr)
	}
	if !pending.MatchString(stdout) || strings.Contains(stdout, "applied") {
		t.Errorf("migrate status on a new database: want 00001 pending and nothing applied, got:\n%s", stdout)
	}

	code, stdout, stderr = runCLI("migrate", "up")
	if code != 0 {
		t.Fatalf("migrate up: exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "applied") {
		t.Errorf("migrate up: stdout %q, want it to report what it applied", stdout)
	}

	code, stdout, stderr = runCLI("migrate", "status")
	if code != 0 {
		t.Fatalf("migrate status: exit %d, stderr %q", code, stderr)
	}
	if !applied.MatchString(stdout) || strings.Contains(stdout, "pending") {
		t.Errorf("migrate status after up: want 00001 applied and nothing pending, got:\n%s", stdout)
	}

	// up again is a no-op.
	if code, _, stderr = runCLI("migrate", "up"); code != 0 {
		t.Errorf("migrate up twice: exit %d, stderr %q", code, stderr)
	}

	code, stdout, stderr = runCLI("migrate", "bogus")
	if code != 2 {
		t.Errorf("migrate bogus: exit %d, want 2", code)
	}
	if stdout != "" || !strings.Contains(stderr, "bogus") {
		t.Errorf("migrate bogus: stdout %q, stderr %q", stdout, stderr)
	}
}

func TestFirstStartCreatesOneKeyOnce(t *testing.T) {
	ctx := context.Background()

	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		t.Run("twice", func(t *testing.T) {
			database := testdb.New(t, d)
			svc := teams.NewService(database.Store)

			team, issued, err := svc.BootstrapFirst(ctx, firstTeamName, teams.DefaultKeyName)
			if err != nil {
				t.Fatalf("first BootstrapFirst: %v", err)
			}
			if team == nil || issued.Secret == "" {
				t.Fatalf("first BootstrapFirst: team %v, secret %q; want a team and its key", team, issued.Secret)
			}
			if team.Name != firstTeamName {
				t.Errorf("team name %q, want %q", team.Name, firstTeamName)
			}
			p, err := auth.NewAuthenticator(database.Store, nil).Authenticate(ctx, issued.Secret, auth.Client{IP: "127.0.0.1"})
			if err != nil || p == nil {
				t.Errorf("the first key does not authenticate: %v", err)
			}

			team2, issued2, err := svc.BootstrapFirst(ctx, firstTeamName, teams.DefaultKeyName)
			if err != nil {
				t.Fatalf("second BootstrapFirst: %v", err)
			}
			if team2 != nil || issued2.Secret != "" {
				t.Errorf("second BootstrapFirst: team %v, secret %q; want nothing", team2, issued2.Secret)
			}
			if n := database.Count(t, "teams", ""); n != 1 {
				t.Errorf("%d teams, want 1", n)
			}
			if n := database.Count(t, "api_keys", ""); n != 1 {
				t.Errorf("%d keys, want 1", n)
			}
		})

		t.Run("concurrent", func(t *testing.T) {
			database := testdb.New(t, d)
			svc := teams.NewService(database.Store)
			const n = 4
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created int
				errs    []error
			)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					team, _, err := svc.BootstrapFirst(ctx, firstTeamName, teams.DefaultKeyName)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						errs = append(errs, err)
					}
					if team != nil {
						created++
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				t.Errorf("concurrent BootstrapFirst: %v", err)
			}
			if created != 1 {
				t.Errorf("%d calls report creating the team, want 1", created)
			}
			if got := database.Count(t, "teams", ""); got != 1 {
				t.Errorf("%d teams after %d concurrent first starts, want 1", got, n)
			}
			if got := database.Count(t, "api_keys", ""); got != 1 {
				t.Errorf("%d keys after %d concurrent first starts, want 1", got, n)
			}
		})
	})

	t.Run("printFirstKey", func(t *testing.T) {
		const secret = "kp_abcDEF123_secretSecretSecret0123456789"
		var buf bytes.Buffer
		printFirstKey(&buf, firstTeamName, secret, "127.0.0.1:9090")
		out := buf.String()
		if !strings.Contains(out, "http://127.0.0.1:9090/") {
			t.Errorf("the box does not point at the listen address:\n%s", out)
		}
		if c := strings.Count(out, secret); c != 1 {
			t.Errorf("the key appears %d times, want once:\n%s", c, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.TrimSpace(l) != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) < 3 {
			t.Fatalf("want a box, got:\n%s", out)
		}
		if !strings.HasPrefix(lines[0], "┌") || !strings.HasPrefix(lines[len(lines)-1], "└") {
			t.Errorf("the box does not open with ┌ and close with └:\n%s", out)
		}
		width := len([]rune(lines[0]))
		keyBoxed := false
		for _, l := range lines[1 : len(lines)-1] {
			if !strings.HasPrefix(l, "│") || !strings.HasSuffix(l, "│") {
				t.Errorf("line %q is not inside the box", l)
			}
			if w := len([]rune(l)); w != width {
				t.Errorf("line %q is %d wide, the box %d", l, w, width)
			}
			keyBoxed = keyBoxed || strings.Contains(l, secret)
		}
		if !keyBoxed {
			t.Errorf("the key is not inside the box:\n%s", out)
		}
	})
}
