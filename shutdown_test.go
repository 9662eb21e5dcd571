package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/credential"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// TestShutdownUnderLoad runs `keyplane serve` as its own process, sends it
// SIGTERM while clients keep sending it authenticated mutations, and checks
// that:
//   - /readyz turned 503 first, while requests were still served (the drain
//     of KEYPLANE_SHUTDOWN_DRAIN), and only then did the listener close;
//   - every request the server accepted was answered: each device in the
//     database was answered as created, each answer was a success, and a
//     request whose connection broke was never run nor logged (it sat in
//     the listener's backlog when the listener closed);
//   - new connections were refused once it stopped listening;
//   - the key's last use, up to its last answered request, was written;
//   - it exited 0.
func TestShutdownUnderLoad(t *testing.T) {
	for _, d := range testdb.Dialects(t) {
		t.Run(string(d), func(t *testing.T) { shutdownUnderLoad(t, d) })
	}
}

// sdOutcome is what became of one request of the load.
type sdOutcome int

const (
	sdAnswered sdOutcome = iota // an HTTP answer came
	sdRefused                   // the connection was refused: nothing listens
	sdBroken                    // the connection broke before an answer came
)

// sdRequest is one request of the load, as its client saw it.
type sdRequest struct {
	id      string // its X-Request-Id, and its device's serial number
	client  int
	sent    time.Time
	outcome sdOutcome
	status  int
	body    string
	err     error
	// draining: /readyz had answered 503 before it was sent.
	draining bool
}

func shutdownUnderLoad(t *testing.T, dialect db.Dialect) {
	dbURL := cleanEnv(t)
	if dialect == db.Postgres {
		dbURL = testdb.New(t, db.Postgres).URL
		t.Setenv("DATABASE_URL", dbURL)
	}
	code, stdout, stderr := runCLI("bootstrap", "--team", "Acme")
	if code != 0 {
		t.Fatalf("bootstrap: exit %d:\n%s", code, stderr)
	}
	key := strings.TrimSpace(stdout)

	c := startServe(t, "KEYPLANE_SHUTDOWN_DRAIN=1s", "KEYPLANE_RATE_LIMIT_RPS=0", "LOG_FORMAT=json")
	base := "http://" + c.listen
	c.waitFor(t, base+"/readyz")

	// The readiness probe: a fresh connection each time, as a load
	// balancer's. It stops once nothing listens.
	var draining atomic.Bool
	var probes []string // "200", "503", "refused", or another error
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			res, err := client.Get(base + "/readyz")
			switch {
			case err == nil:
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				probes = append(probes, fmt.Sprint(res.StatusCode))
				if res.StatusCode == http.StatusServiceUnavailable {
					draining.Store(true)
				}
			case errors.Is(err, syscall.ECONNREFUSED):
				probes = append(probes, "refused")
				return
			default:
				probes = append(probes, err.Error())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The load: clients with connections that they keep alive, each sending
	// createDevice after createDevice until a connection is refused.
	const clients = 6
	var (
		mu       sync.Mutex
		requests []sdRequest
		answered atomic.Int64
		wg       sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			for i := 0; ; i++ {
				r := sdSend(client, base, key, fmt.Sprintf("sd-%d-%d", c, i), &draining)
				r.client = c
				mu.Lock()
				requests = append(requests, r)
				mu.Unlock()
				if r.outcome == sdAnswered {
					answered.Add(1)
				}
				if r.outcome == sdRefused {
					return
				}
			}
		}()
	}

	// A steady load first.
	for answered.Load() < 50 {
		select {
		case <-c.exited:
			t.Fatalf("serve exited under load (%v):\n%s", c.err, c.output.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within a minute of SIGTERM:\n%s", c.output.String())
	}
	wg.Wait()
	<-probed
	if c.err != nil {
		t.Errorf("after SIGTERM serve exited with %v, want 0", c.err)
	}
	logs := c.output.String()

	// Readiness: 200s, then 503s, then refused; never ready again. A
	// probe may break without an answer only as the listener closes: its
	// connection sat in the listener's backlog, never accepted.
	first503 := slices.Index(probes, "503")
	if first503 < 0 {
		t.Errorf("/readyz never answered 503 before the listener closed: %s", sdSummary(probes))
	} else if slices.Contains(probes[first503:], "200") {
		t.Errorf("/readyz answered 200 again after 503: %s", sdSummary(probes))
	}
	for i, p := range probes {
		if p != "200" && p != "503" && p != "refused" && (i < first503 || probes[i+1] != "refused") {
			t.Errorf("readiness probe %d of %d broke before the listener closed: %s", i+1, len(probes), p)
		}
	}
	if _, err := net.DialTimeout("tcp", c.listen, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a connection after the exit: %v, want refused", err)
	}

	// The load, by outcome.
	count := map[sdOutcome]int{}
	servedDraining := 0
	var lastAnswered time.Time
	var broken []sdRequest
	for _, r := range requests {
		count[r.outcome]++
		switch r.outcome {
		case sdAnswered:
			if r.status != http.StatusOK || !strings.Contains(r.body, `"serialNumber":"`+r.id+`"`) {
				t.Errorf("request %s was answered %d: %s", r.id, r.status, r.body)
			}
			if r.draining {
				servedDraining++
			}
			if r.sent.After(lastAnswered) {
				lastAnswered = r.sent
			}
		case sdBroken:
			broken = append(broken, r)
		}
	}
	// A request may break without an answer only as the listener closes:
	// its client's next connection is refused.
	last := map[int]sdOutcome{}
	for _, r := range requests {
		if last[r.client] == sdBroken && r.outcome != sdRefused {
			t.Errorf("client %d: a request broke before the listener closed (%v), and the server answered after it", r.client, r.err)
		}
		last[r.client] = r.outcome
	}
	t.Logf("%d requests: %d answered (%d sent once /readyz answered 503), %d broken before an answer, %d refused; readiness probes: %s",
		len(requests), count[sdAnswered], servedDraining, count[sdBroken], count[sdRefused], sdSummary(probes))
	if servedDraining == 0 {
		t.Errorf("no request sent after /readyz answered 503 was served: no drain")
	}
	if count[sdRefused] != clients {
		t.Errorf("%d clients saw their connection refused, want all %d", count[sdRefused], clients)
	}

	// What the server ran, and wrote down, after its exit.
	d, err := db.Open(context.Background(), dbURL, db.Pool{MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(d)
	defer st.Close()
	devices, err := st.CountForTest(context.Background(), "devices", "serial_number LIKE ?", "sd-%")
	if err != nil {
		t.Fatal(err)
	}
	if devices != int64(count[sdAnswered]) {
		t.Errorf("the server created %d devices and answered %d requests: it ran requests it did not answer", devices, count[sdAnswered])
	}
	for _, r := range broken {
		n, err := st.CountForTest(context.Background(), "devices", "serial_number = ?", r.id)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || strings.Contains(logs, `"`+r.id+`"`) {
			t.Errorf("request %s was accepted (its device exists: %v; it was logged: %v), and its connection broke without an answer: %v",
				r.id, n != 0, strings.Contains(logs, `"`+r.id+`"`), r.err)
		}
	}

	parsed, err := credential.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := st.APIKeyForAuth(context.Background(), parsed.ID)
	if err != nil {
		t.Fatal(err)
	}
	k, err := st.APIKey(context.Background(), ak.TeamID, ak.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k.LastUsedAt == nil || k.LastUsedAt.Before(lastAnswered.Truncate(time.Microsecond)) {
		t.Errorf("the key's lastUsedAt is %v, before its last answered request, sent at %v: the last usage batch was not written",
			k.LastUsedAt, lastAnswered)
	}
	if t.Failed() {
		t.Logf("serve's output:\n%s", sdTail(logs, 40))
	}
}

// sdSend sends one createDevice whose serial number is also its request id.
func sdSend(client *http.Client, base, key, id string, draining *atomic.Bool) sdRequest {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: CreateDeviceInput!) { createDevice(input: $in) { device { serialNumber } } }`,
		"variables": map[string]any{"in": map[string]any{"name": "load", "serialNumber": id}},
	})
	r := sdRequest{id: id, draining: draining.Load(), sent: time.Now()}
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		r.outcome, r.err = sdBroken, err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", id)
	res, err := client.Do(req)
	switch {
	case err == nil:
		raw, readErr := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if readErr != nil {
			r.outcome, r.err = sdBroken, readErr
			return r
		}
		r.outcome, r.status, r.body = sdAnswered, res.StatusCode, string(raw)
	case errors.Is(err, syscall.ECONNREFUSED):
		r.outcome, r.err = sdRefused, err
	default:
		r.outcome, r.err = sdBroken, err
	}
	return r
}

// sdSummary shortens a run of readiness probes: "200×12 503×40 refused×1".
func sdSummary(probes []string) string {
	var out []string
	for i := 0; i < len(probes); {
		j := i
		for j < len(probes) && probes[j] == probes[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%s×%d", probes[i], j-i))
		i = j
	}
	return strings.Join(out, " ")
}

// sdTail returns the last n lines of s.
func sdTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
