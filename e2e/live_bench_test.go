package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/testdb"
	"github.com/keyplane/keyplane/internal/testserver"
)

// The live benchmarks measure what the issue asks of subscriptions on one
// replica: the memory an idle subscription holds, and how long an event
// takes to reach 1,000 subscribers. They are benchmarks, not timed tests:
// run them with
//
//	go test ./e2e -run '^$' -bench 'BenchmarkLive' -benchtime=1x -count=3
//
// bench/LIVE.md has the numbers. The server is a real one (testserver) on
// real TCP; its settings are the tests' (testSettings), with the
// per-address limit of requests without a credential off (every WebSocket
// upgrade carries its key in connection_init, not in a header, and all the
// clients come from 127.0.0.1) and room for 1,000 subscriptions of one key.
// The subscribers run in a process of their own (BenchmarkLiveClientProcess),
// so that neither their memory nor their goroutines count as the server's;
// each process holds about 1,000 sockets, well under this machine's ulimit
// -n of 20,000. KEYPLANE_LIVE_PROFILE=<dir> writes the server's heap and
// goroutine profiles while it holds the idle subscriptions.

// liveBenchSubs is how many subscriptions each benchmark opens.
const liveBenchSubs = 1000

// liveBenchEvents is how many events one run of BenchmarkLiveFanout commits.
const liveBenchEvents = 50

// liveBenchQuery is the subscription each subscriber holds.
const liveBenchQuery = `subscription($filter: AuditEventFilter) { auditEvents(filter: $filter) { cursor node { id action targetId } } }`

var liveBenchVars = map[string]any{"filter": map[string]any{"action": "device.create"}}

// liveBenchTransports are the two ways a client subscribes.
var liveBenchTransports = []string{"websocket", "sse"}

// liveBenchServer starts a server on a fresh database of the dialect,
// logging only warnings, so that no log grows in the memory measured.
func liveBenchServer(b *testing.B, d db.Dialect) *testserver.Server {
	b.Helper()
	return testserver.StartWith(b, testdb.New(b, d), testserver.Options{
		Level: slog.LevelWarn,
		Configure: []func(*config.Config){testSettings, func(c *config.Config) {
			c.AnonymousRPS = 0
			c.SubscriptionsPerKey = 2 * liveBenchSubs
			c.MaxSubscriptions = 4 * liveBenchSubs
		}},
	})
}

// BenchmarkLiveIdleMemory measures what an idle subscription costs the
// server: the growth of its Go heap and goroutine stacks in use (HeapInuse
// + StackInuse, after two GCs) from before 1,000 subscriptions open to once
// the hub holds them all, divided by 1,000. The subscribers run in a
// process of their own (this test binary again, as
// BenchmarkLiveClientProcess), over real TCP, so that nothing of the
// client side is counted; the kernel's socket buffers are not counted
// either. Each WebSocket subscriber is a connection of its own, the key in
// connection_init; each SSE subscriber a POST of its own.
func BenchmarkLiveIdleMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("opens 1,000 connections")
	}
	for _, d := range testdb.Dialects(b) {
		for _, tr := range liveBenchTransports {
			b.Run(string(d)+"/"+tr, func(b *testing.B) {
				s := liveBenchServer(b, d)
				liveWarmUp(b, s, tr)
				var perSub, heapPerSub, stackPerSub, goPerSub float64
				for range b.N {
					before := liveMemory(b, s, 0)
					child := startLiveClients(b, liveClientSpec{URL: s.URL, Key: s.Admin, Transport: tr, N: liveBenchSubs})
					after := liveMemory(b, s, liveBenchSubs)
					liveProfile(b, string(d)+"-"+tr)
					child.finish(b, "")
					liveWait(b, s, 0)
					n := float64(liveBenchSubs)
					perSub += (float64(after.heap+after.stack) - float64(before.heap+before.stack)) / n
					heapPerSub += (float64(after.heap) - float64(before.heap)) / n
					stackPerSub += (float64(after.stack) - float64(before.stack)) / n
					goPerSub += float64(after.goroutines-before.goroutines) / n
				}
				n := float64(b.N)
				b.ReportMetric(perSub/n, "B/sub")
				b.ReportMetric(heapPerSub/n, "heap-B/sub")
				b.ReportMetric(stackPerSub/n, "stack-B/sub")
				b.ReportMetric(goPerSub/n, "goroutines/sub")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// liveMem is the server process's memory in use.
type liveMem struct {
	heap, stack uint64
	goroutines  int
}

// liveMemory waits until the hub holds want subscriptions and the number
// of goroutines has settled, then reads the memory in use after two GCs.
func liveMemory(b *testing.B, s *testserver.Server, want int) liveMem {
	b.Helper()
	liveWait(b, s, want)
	last, stable := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(30 * time.Second); stable < 5 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return liveMem{heap: m.HeapInuse, stack: m.StackInuse, goroutines: runtime.NumGoroutine()}
}

// liveProfileEnv, when set to a directory, has BenchmarkLiveIdleMemory
// write there the heap and goroutine profiles of the server process while
// it holds the idle subscriptions (go tool pprof reads them).
const liveProfileEnv = "KEYPLANE_LIVE_PROFILE"

func liveProfile(b *testing.B, name string) {
	b.Helper()
	dir := os.Getenv(liveProfileEnv)
	if dir == "" {
		return
	}
	for _, p := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(dir, name+"."+p+".pprof"))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup(p).WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
	}
}

// liveWait waits until the hub holds want subscriptions.
func liveWait(b *testing.B, s *testserver.Server, want int) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		active, dropped := s.App.Live.Subscriptions()
		if dropped > 0 {
			b.Fatalf("the hub dropped %d subscriptions", dropped)
		}
		if active == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the hub holds %d subscriptions, want %d", active, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveWarmUp opens and ends a few subscriptions in process, so that the
// server's pools and caches (database connections, the parsed query) are
// filled before the baseline is read.
func liveWarmUp(b *testing.B, s *testserver.Server, tr string) {
	b.Helper()
	c := newLiveClient(s.URL, s.Admin)
	var closers []func()
	for range 8 {
		stop, err := c.subscribe(context.Background(), tr, func(time.Time, []byte) {}, func(error) {})
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, stop)
	}
	liveWait(b, s, len(closers))
	for _, stop := range closers {
		stop()
	}
	c.close()
	liveWait(b, s, 0)
}

// liveClients is a process of subscribers: this test binary again, running
// BenchmarkLiveClientProcess. It speaks in lines that start with
// "live-clients-".
type liveClients struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its lines, the prefix cut
}

// startLiveClients runs spec.N subscribers in a process of their own and
// waits until it reports them all subscribed.
func startLiveClients(b *testing.B, spec liveClientSpec) *liveClients {
	b.Helper()
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkLiveClientProcess$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), liveClientEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &liveClients{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() {
		defer close(c.lines)
		lines := bufio.NewScanner(stdout)
		lines.Buffer(make([]byte, 1<<16), 1<<26)
		for lines.Scan() {
			if line, ok := strings.CutPrefix(lines.Text(), "live-clients-"); ok {
				c.lines <- line
			} else if strings.HasPrefix(lines.Text(), "--- FAIL") {
				c.lines <- "error " + lines.Text()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	c.expect(b, "ready", 2*time.Minute)
	return c
}

// expect returns the rest of the process's next line, which must start
// with what, within the time given.
func (c *liveClients) expect(b *testing.B, what string, within time.Duration) string {
	b.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			b.Fatalf("the subscribers' process ended; want %q", what)
		}
		kind, rest, _ := strings.Cut(line, " ")
		if kind != what {
			b.Fatalf("the subscribers' process: %s; want %q", line, what)
		}
		return rest
	case <-time.After(within):
		b.Fatalf("the subscribers' process said no %q within %s", what, within)
		return ""
	}
}

// finish closes the process's stdin, which ends its subscriptions, waits
// for it to exit, and returns the rest of its last line of the kind what
// ("" for none); a line of error fails b.
func (c *liveClients) finish(b *testing.B, what string) string {
	b.Helper()
	_ = c.stdin.Close()
	var last string
	timeout := time.After(time.Minute)
	for done := false; !done; {
		select {
		case line, ok := <-c.lines:
			if !ok {
				done = true
				break
			}
			kind, rest, _ := strings.Cut(line, " ")
			switch kind {
			case what:
				last = rest
			case "error":
				b.Fatalf("the subscribers' process: %s", rest)
			}
		case <-timeout:
			_ = c.cmd.Process.Kill()
			b.Fatal("the subscribers' process did not end")
		}
	}
	if err := c.cmd.Wait(); err != nil {
		b.Fatalf("the subscribers' process: %v", err)
	}
	if what != "" && last == "" {
		b.Fatalf("the subscribers' process said no %q", what)
	}
	return last
}

// liveClientEnv carries a liveClientSpec to the subscribers' process.
const liveClientEnv = "KEYPLANE_LIVE_BENCH_CLIENTS"

// liveClientSpec is what the subscribers' process does: hold N
// subscriptions idle, or, with Events set, report as each of that many
// events reaches all of them.
type liveClientSpec struct {
	URL, Key, Transport string
	N, Events           int
}

// BenchmarkLiveClientProcess is not a benchmark: it is the subscribers'
// process of BenchmarkLiveIdleMemory and BenchmarkLiveFanout, and skips
// unless one of them starts it. It opens the subscriptions and prints
// "live-clients-ready". Idle, it then holds them until its stdin closes.
// For the fan-out, it prints "live-clients-event k <targetId>" once the
// k-th event reached every subscriber, all about the same target, and once
// its stdin closes, "live-clients-result" and the JSON of when (Unix
// nanoseconds) each subscriber read each event off its socket.
func BenchmarkLiveClientProcess(b *testing.B) {
	raw := os.Getenv(liveClientEnv)
	if raw == "" {
		b.Skip("the subscribers' process of the live benchmarks")
	}
	var spec liveClientSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		b.Fatal(err)
	}
	out := make(chan string, spec.Events+16)
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for line := range out {
			fmt.Printf("live-clients-%s\n", line)
		}
	}()
	var failed atomic.Bool
	fail := func(err error) {
		if failed.CompareAndSwap(false, true) {
			out <- "error " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
	}
	arrived := make([][]int64, spec.N)
	target := make([][]string, spec.N)
	count := make([]atomic.Int32, spec.Events)
	onNext := func(i int) func(time.Time, []byte) {
		arrived[i], target[i] = make([]int64, spec.Events), make([]string, spec.Events)
		next := 0
		return func(at time.Time, payload []byte) {
			if next >= spec.Events {
				fail(fmt.Errorf("subscriber %d: an event past the %d expected: %s", i, spec.Events, payload))
				return
			}
			arrived[i][next] = at.UnixNano()
			var r struct {
				Data struct {
					AuditEvents struct {
						Node struct{ TargetID string } `json:"node"`
					} `json:"auditEvents"`
				} `json:"data"`
			}
			_ = json.Unmarshal(payload, &r)
			target[i][next] = r.Data.AuditEvents.Node.TargetID
			if count[next].Add(1) == int32(spec.N) {
				out <- fmt.Sprintf("event %d %s", next, target[i][next])
			}
			next++
		}
	}
	c := newLiveClient(spec.URL, spec.Key)
	closers, err := c.subscribeMany(spec.Transport, spec.N, onNext, fail)
	if err != nil {
		fail(err)
		close(out)
		<-printed
		b.Fatal(err)
	}
	out <- fmt.Sprintf("ready %d", len(closers))
	_, _ = io.Copy(io.Discard, os.Stdin)
	if spec.Events > 0 && !failed.Load() {
		for k := range spec.Events {
			for i := range spec.N {
				if target[i][k] != target[0][k] {
					fail(fmt.Errorf("event %d: subscriber %d's is about %q, subscriber 0's about %q", k, i, target[i][k], target[0][k]))
				}
			}
		}
		raw, _ := json.Marshal(arrived)
		out <- "result " + string(raw)
	}
	close(out)
	<-printed
	for _, stop := range closers {
		stop()
	}
	c.close()
}

// BenchmarkLiveFanout measures how long an event takes to reach 1,000
// subscribers of one server: each run commits 50 events, one at a time (a
// createDevice mutation over HTTP; the next once every subscriber has the
// last), and for each (event, subscriber) pair takes the time from just
// before the mutation is sent to the moment the subscriber read the event
// off its socket (wall clock, same machine). It reports the p50, p99 and
// maximum of those 50,000 latencies, the median time the mutation itself
// took to answer, and how many cores other processes than the server's and
// the subscribers' kept busy meanwhile (other-cores: PostgreSQL's, and
// anything else running on the machine). The subscribers run in a process of their own (as
// BenchmarkLiveIdleMemory's do), on the same two cores as the server, and
// decode what they receive.
func BenchmarkLiveFanout(b *testing.B) {
	if testing.Short() {
		b.Skip("opens 1,000 connections")
	}
	for _, d := range testdb.Dialects(b) {
		for _, tr := range liveBenchTransports {
			b.Run(string(d)+"/"+tr, func(b *testing.B) { liveFanout(b, d, tr) })
		}
	}
}

func liveFanout(b *testing.B, d db.Dialect, tr string) {
	s := liveBenchServer(b, d)
	events := liveBenchEvents * b.N
	clients := startLiveClients(b, liveClientSpec{URL: s.URL, Key: s.Admin, Transport: tr, N: liveBenchSubs, Events: events})
	liveWait(b, s, liveBenchSubs)
	time.Sleep(time.Second) // the last subscriptions register with their team

	sent := make([]time.Time, events)
	mutation := make([]time.Duration, events)
	post := &http.Client{Timeout: 30 * time.Second}
	pids := []int{os.Getpid(), clients.cmd.Process.Pid}
	machine0, ours0 := liveTicks(pids...)
	began := time.Now()
	b.ResetTimer()
	for k := range events {
		body, _ := json.Marshal(map[string]any{"query": liveCreateDevice,
			"variables": map[string]any{"name": fmt.Sprintf("fanout-%d", k)}})
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.Admin)
		sent[k] = time.Now()
		res, err := post.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		mutation[k] = time.Since(sent[k])
		r := decodeResponse(raw)
		if res.StatusCode != http.StatusOK || len(r.Errors) > 0 {
			b.Fatalf("createDevice: %d %s", res.StatusCode, raw)
		}
		want := fmt.Sprintf("%d %s", k, r.str("createDevice.device.id"))
		if got := clients.expect(b, "event", 30*time.Second); got != want {
			b.Fatalf("every subscriber has event %s, want %s", got, want)
		}
		time.Sleep(10 * time.Millisecond) // the next event starts from quiet
	}
	b.StopTimer()
	machine1, ours1 := liveTicks(pids...)
	// 100 ticks a second on Linux.
	others := float64((machine1-machine0)-(ours1-ours0)) / 100 / time.Since(began).Seconds()
	b.ReportMetric(others, "other-cores")
	var arrived [][]int64
	if err := json.Unmarshal([]byte(clients.finish(b, "result")), &arrived); err != nil {
		b.Fatal(err)
	}
	if _, dropped := s.App.Live.Subscriptions(); dropped > 0 {
		b.Fatalf("the hub dropped %d subscribers", dropped)
	}

	latencies := make([]time.Duration, 0, events*liveBenchSubs)
	first, last := make([]time.Duration, events), make([]time.Duration, events)
	for k := range first {
		first[k] = time.Hour
	}
	for i := range liveBenchSubs {
		for k := range events {
			l := time.Duration(arrived[i][k] - sent[k].UnixNano())
			latencies = append(latencies, l)
			first[k], last[k] = min(first[k], l), max(last[k], l)
		}
	}
	// Per event: when its first subscriber and its last had it.
	var worst []string
	for _, k := range liveWorst(last, 3) {
		worst = append(worst, fmt.Sprintf("#%d first %s last %s (mutation %s)", k, first[k].Round(time.Millisecond), last[k].Round(time.Millisecond), mutation[k].Round(time.Millisecond)))
	}
	b.Logf("per event, median of the first arrival %s, of the last %s; slowest: %s",
		liveMedian(first).Round(100*time.Microsecond), liveMedian(last).Round(100*time.Microsecond), strings.Join(worst, ", "))
	slices.Sort(latencies)
	slices.Sort(mutation)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	at := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	b.ReportMetric(ms(at(0.50)), "p50-ms")
	b.ReportMetric(ms(at(0.99)), "p99-ms")
	b.ReportMetric(ms(latencies[len(latencies)-1]), "max-ms")
	b.ReportMetric(ms(mutation[len(mutation)/2]), "mutation-p50-ms")
	b.ReportMetric(0, "ns/op")
}

// liveTicks reads, in clock ticks, how long the machine's CPUs have been
// busy and how long of that the processes pids were, where Linux tells it:
// other work on the two cores shows in the fan-out's tail.
func liveTicks(pids ...int) (machine, ours int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, f := range strings.Fields(line)[1:] {
		var n int64
		_, _ = fmt.Sscan(f, &n)
		if i != 3 && i != 4 && i < 8 { // neither idle nor iowait; guest is in user already
			machine += n
		}
	}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		rest := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		for _, f := range rest[11:13] { // utime, stime
			var n int64
			_, _ = fmt.Sscan(f, &n)
			ours += n
		}
	}
	return machine, ours
}

// liveMedian is the median of ds.
func liveMedian(ds []time.Duration) time.Duration {
	sorted := slices.Sorted(slices.Values(ds))
	return sorted[len(sorted)/2]
}

// liveWorst returns the indexes of the n largest of ds, largest first.
func liveWorst(ds []time.Duration, n int) []int {
	idx := make([]int, len(ds))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(ds[b] - ds[a]) })
	return idx[:min(n, len(idx))]
}

// liveClient subscribes to a server over either transport, with as little
// of its own as it can: a read loop per subscription and no buffering.
type liveClient struct {
	url, key string
	// http carries the SSE streams and the WebSocket upgrades: one
	// connection each, however many.
	http *http.Client
}

func newLiveClient(url, key string) *liveClient {
	return &liveClient{url: url, key: key, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (c *liveClient) close() { c.http.CloseIdleConnections() }

// subscribeMany opens n subscriptions, 16 at a time; next(i) gives
// subscription i's handler of events. ended is called when one ends.
func (c *liveClient) subscribeMany(tr string, n int, next func(i int) func(time.Time, []byte), ended func(error)) ([]func(), error) {
	closers := make([]func(), n)
	handlers := make([]func(time.Time, []byte), n)
	for i := range n {
		handlers[i] = next(i)
	}
	var (
		mu    sync.Mutex
		first error
		work  = make(chan int)
		wg    sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				stop, err := c.subscribe(context.Background(), tr, handlers[i], ended)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("subscription %d: %w", i, err)
				}
				closers[i] = stop
				mu.Unlock()
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		for _, stop := range closers {
			if stop != nil {
				stop()
			}
		}
		return nil, first
	}
	return closers, nil
}

// subscribe opens one subscription to liveBenchQuery; onNext gets each
// event's payload, ended is called should the server end the stream
// (not when stop does).
func (c *liveClient) subscribe(ctx context.Context, tr string, onNext func(time.Time, []byte), ended func(error)) (stop func(), err error) {
	if tr == "sse" {
		return c.subscribeSSE(ctx, onNext, ended)
	}
	return c.subscribeWS(ctx, onNext, ended)
}

// subscribeWS subscribes over graphql-transport-ws, the key in
// connection_init, and waits for connection_ack.
func (c *liveClient) subscribeWS(ctx context.Context, onNext func(time.Time, []byte), ended func(error)) (func(), error) {
	dial, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dial, "ws"+strings.TrimPrefix(c.url, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPClient: c.http})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	write := func(v any) error {
		raw, _ := json.Marshal(v)
		w, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return conn.Write(w, websocket.MessageText, raw)
	}
	type message struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	read := func(ctx context.Context) (message, error) {
		var m message
		_, raw, err := conn.Read(ctx)
		if err == nil {
			err = json.Unmarshal(raw, &m)
		}
		return m, err
	}
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + c.key}}); err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	if m, err := read(dial); err != nil || m.Type != "connection_ack" {
		_ = conn.CloseNow()
		return nil, fmt.Errorf("connection_init: %q %s %v", m.Type, m.Payload, err)
	}
	if err := write(map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": liveBenchQuery, "variables": liveBenchVars}}); err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	var stopped atomic.Bool
	go func() {
		for {
			_, raw, err := conn.Read(ctx)
			if err != nil {
				if !stopped.Load() {
					ended(fmt.Errorf("websocket: %w", err))
				}
				return
			}
			at := time.Now() // the event arrived, before any decoding
			var m message
			_ = json.Unmarshal(raw, &m)
			switch m.Type {
			case "next":
				onNext(at, m.Payload)
			case "ping":
				_ = write(map[string]any{"type": "pong"})
			case "pong":
			default:
				if !stopped.Load() {
					ended(fmt.Errorf("websocket: %s", raw))
				}
				return
			}
		}
	}()
	return func() { stopped.Store(true); _ = conn.CloseNow() }, nil
}

// subscribeSSE subscribes with POST and Accept: text/event-stream, the key
// in the Authorization header.
func (c *liveClient) subscribeSSE(ctx context.Context, onNext func(time.Time, []byte), ended func(error)) (func(), error) {
	body, _ := json.Marshal(map[string]any{"query": liveBenchQuery, "variables": liveBenchVars})
	ctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, fmt.Errorf("subscribe: %d %s", res.StatusCode, raw)
	}
	var stopped atomic.Bool
	go func() {
		defer res.Body.Close()
		r := bufio.NewReaderSize(res.Body, 4096)
		event := ""
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				if !stopped.Load() && !errors.Is(err, context.Canceled) {
					ended(fmt.Errorf("sse: %w", err))
				}
				return
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case bytes.HasPrefix(line, []byte("event: ")):
				event = string(line[len("event: "):])
				if event == "complete" {
					if !stopped.Load() {
						ended(errors.New("sse: complete"))
					}
					return
				}
			case bytes.HasPrefix(line, []byte("data: ")) && event == "next":
				onNext(time.Now(), line[len("data: "):])
			}
		}
	}()
	return func() { stopped.Store(true); cancel() }, nil
}
