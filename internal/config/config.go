// Package config reads Keyplane's settings from the environment. A bad value
// is refused at start-up with one line that names the variable.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyplane/keyplane/db"
)

// The defaults, each written here and nowhere else: the packages that use
// these settings take the value they are given, and Load is what fills in
// one that is not set.
const (
	DefaultListenAddr         = ":8080"
	DefaultLogLevel           = "info"
	DefaultLogFormat          = "text"
	DefaultUsageFlushInterval = 2 * time.Second
	DefaultDeviceOnlineWindow = 5 * time.Minute
	// DefaultPresenceSweepInterval is how often each replica looks for
	// devices recorded ONLINE that have gone silent: the most a device.offline
	// event comes after the window ends.
	DefaultPresenceSweepInterval = 5 * time.Second
	// DefaultShutdownDrain is how long the server keeps serving after
	// SIGTERM with /readyz answering 503, so that load balancers stop
	// sending it requests before its listener closes.
	DefaultShutdownDrain = 5 * time.Second

	// Limits on one request: the body (1 MiB), then the query's nesting,
	// aliases, cost and lexical tokens.
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxDepth     = 12
	DefaultMaxAliases   = 30
	DefaultMaxCost      = 10000
	DefaultMaxTokens    = 5000
	// DefaultMaxFields bounds the fields of a document once its fragments
	// are expanded, and DefaultMaxSelection the fields of one selection
	// set, both checked before gqlparser's validation runs. The standard
	// introspection queries of graphql-js, GraphiQL and Apollo stay well
	// under both (about 490 fields, 10 in the widest set). The pairs that
	// validation compares are bounded by what one set of DefaultMaxSelection
	// copies of a field makes: 4,950 pairs, a few milliseconds, where 200
	// would allow 19,900 and some 17 ms.
	DefaultMaxFields    = 2000
	DefaultMaxSelection = 100
	// DefaultMaxResponseBytes refuses a larger response (8 MiB).
	DefaultMaxResponseBytes = 8 << 20

	// Live events: subscriptions per key and per process, the events that
	// may wait for one subscriber, the safety-net poll of the audit log,
	// the keep-alive ping, the longest a write to a client may block, and
	// the largest WebSocket message a client may send.
	DefaultSubscriptionsPerKey = 20
	DefaultMaxSubscriptions    = 10000
	DefaultSubscriptionBuffer  = 64
	DefaultEventsPoll          = 3 * time.Second
	DefaultStreamKeepAlive     = 15 * time.Second
	DefaultStreamWriteTimeout  = 10 * time.Second
	DefaultMaxWebsocketMessage = 64 << 10

	// Deadlines of the dependencies: each database call, and each Redis
	// call, past which the limiter fails open.
	DefaultDBTimeout    = 5 * time.Second
	DefaultRedisTimeout = 50 * time.Millisecond

	DefaultRateLimitRPS     = 100
	DefaultRateLimitBurst   = 200
	DefaultAuthFailureRPS   = 10
	DefaultAuthFailureBurst = 50
	// Requests without a credential, per client address.
	DefaultAnonymousRPS   = 10
	DefaultAnonymousBurst = 50
)

// Config is every setting the server reads.
type Config struct {
	DatabaseURL string
	ListenAddr  string
	// PprofAddr, when set, serves net/http/pprof on its own listener.
	PprofAddr string
	// MetricsAddr, when set, serves /metrics on its own listener, and only
	// there: the public listener then answers 404 for it.
	MetricsAddr   string
	Playground    bool
	Introspection bool
	LogLevel      slog.Level
	LogFormat     string
	// UsageFlushInterval is how often last-use times are written.
	UsageFlushInterval time.Duration
	// DeviceOnlineWindow is how recently a device must have been seen to be
	// ONLINE.
	DeviceOnlineWindow time.Duration
	// PresenceSweepInterval is how often devices that went silent are
	// recorded OFFLINE.
	PresenceSweepInterval time.Duration
	// ShutdownDrain is how long a stopping server answers /readyz with 503
	// while it still serves, before it closes its listener; 0: not at all.
	ShutdownDrain time.Duration

	// Limits on one request.
	MaxBodyBytes int64
	MaxDepth     int
	MaxAliases   int
	MaxCost      int
	MaxTokens    int
	// MaxFields bounds a document's fields once fragments are expanded;
	// MaxSelection the fields of one selection set.
	MaxFields        int
	MaxSelection     int
	MaxResponseBytes int
	// DBTimeout is the deadline of each database call; RedisTimeout that of
	// each Redis call.
	DBTimeout    time.Duration
	RedisTimeout time.Duration

	// Rates: requests per credential, and failed credentials per client
	// address. A rate of 0 turns that limit off.
	RateLimitRPS     float64
	RateLimitBurst   int
	AuthFailureRPS   float64
	AuthFailureBurst int
	// AnonymousRPS limits requests without a credential per client address.
	AnonymousRPS   float64
	AnonymousBurst int
	TrustedProxies []netip.Prefix
	// Live events (see the defaults above). WebsocketOrigins are the hosts
	// of other sites' pages allowed to open a WebSocket (path.Match
	// patterns such as "*.example.com"); the server's own host always is.
	SubscriptionsPerKey int
	MaxSubscriptions    int
	SubscriptionBuffer  int
	EventsPoll          time.Duration
	StreamKeepAlive     time.Duration
	StreamWriteTimeout  time.Duration
	MaxWebsocketMessage int
	WebsocketOrigins    []string
	RedisURL            string

	// BootstrapKeyFile, when set, is where the first start on an empty
	// database writes the first admin key (mode 0600, never over an existing
	// file), instead of showing it on a terminal.
	BootstrapKeyFile string
}

// Error is a setting that cannot be used.
type Error struct {
	Var     string
	Problem string
}

func (e *Error) Error() string { return e.Var + ": " + e.Problem }

// Load reads the settings through getenv (os.Getenv outside tests).
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		DatabaseURL:        or(getenv("DATABASE_URL"), db.DefaultURL),
		ListenAddr:         or(getenv("LISTEN_ADDR"), DefaultListenAddr),
		LogFormat:          strings.ToLower(or(getenv("LOG_FORMAT"), DefaultLogFormat)),
		UsageFlushInterval: DefaultUsageFlushInterval,
	}
	if _, err := db.Parse(c.DatabaseURL); err != nil {
		return c, &Error{"DATABASE_URL", err.Error()}
	}
	if err := checkAddr("LISTEN_ADDR", c.ListenAddr); err != nil {
		return c, err
	}
	if c.PprofAddr = getenv("KEYPLANE_PPROF_ADDR"); c.PprofAddr != "" {
		if err := checkAddr("KEYPLANE_PPROF_ADDR", c.PprofAddr); err != nil {
			return c, err
		}
	}
	if c.MetricsAddr = getenv("KEYPLANE_METRICS_ADDR"); c.MetricsAddr != "" {
		if err := checkAddr("KEYPLANE_METRICS_ADDR", c.MetricsAddr); err != nil {
			return c, err
		}
	}
	var err error
	if c.Playground, err = boolVar(getenv, "KEYPLANE_PLAYGROUND", true); err != nil {
		return c, err
	}
	if c.Introspection, err = boolVar(getenv, "KEYPLANE_INTROSPECTION", true); err != nil {
		return c, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(or(getenv("LOG_LEVEL"), DefaultLogLevel))); err != nil {
		return c, &Error{"LOG_LEVEL", "want debug, info, warn or error"}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, &Error{"LOG_FORMAT", "want text or json"}
	}
	if err := c.loadLimits(getenv); err != nil {
		return c, err
	}
	if c.DeviceOnlineWindow, err = durationVar(getenv, "KEYPLANE_DEVICE_ONLINE_WINDOW", DefaultDeviceOnlineWindow); err != nil {
		return c, err
	}
	if c.PresenceSweepInterval, err = durationVar(getenv, "KEYPLANE_PRESENCE_SWEEP_INTERVAL", DefaultPresenceSweepInterval); err != nil {
		return c, err
	}
	c.ShutdownDrain = DefaultShutdownDrain
	if v := getenv("KEYPLANE_SHUTDOWN_DRAIN"); v != "" {
		if c.ShutdownDrain, err = time.ParseDuration(v); err != nil || c.ShutdownDrain < 0 {
			return c, &Error{"KEYPLANE_SHUTDOWN_DRAIN", fmt.Sprintf("%q is not a duration such as 5s (0 turns the drain off)", v)}
		}
	}
	if c.BootstrapKeyFile = getenv("KEYPLANE_BOOTSTRAP_KEY_FILE"); c.BootstrapKeyFile != "" {
		if err := checkFilePath("KEYPLANE_BOOTSTRAP_KEY_FILE", c.BootstrapKeyFile); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkFilePath refuses a path that can only name a directory. Whether the
// file can be written is learnt when it is, not here.
func checkFilePath(name, path string) error {
	if strings.HasSuffix(path, "/") || strings.HasSuffix(path, string(filepath.Separator)) {
		return &Error{name, fmt.Sprintf("%q names a directory; want a file such as /var/lib/keyplane/first-key", path)}
	}
	switch filepath.Base(path) {
	case ".", "..":
		return &Error{name, fmt.Sprintf("%q names a directory; want a file such as /var/lib/keyplane/first-key", path)}
	}
	return nil
}

// checkAddr refuses a listen address that is not host:port.
func checkAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &Error{name, fmt.Sprintf("%q is not host:port, such as :8080 or 127.0.0.1:8080", addr)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &Error{name, fmt.Sprintf("%q has no valid port", addr)}
	}
	return nil
}

func boolVar(getenv func(string) string, name string, def bool) (bool, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, &Error{name, fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// loadLimits reads the request limits, the rates and where clients are.
func (c *Config) loadLimits(getenv func(string) string) error {
	ints := []struct {
		name string
		def  int
		into *int
	}{
		{"KEYPLANE_MAX_DEPTH", DefaultMaxDepth, &c.MaxDepth},
		{"KEYPLANE_MAX_ALIASES", DefaultMaxAliases, &c.MaxAliases},
		{"KEYPLANE_MAX_COST", DefaultMaxCost, &c.MaxCost},
		{"KEYPLANE_MAX_TOKENS", DefaultMaxTokens, &c.MaxTokens},
		{"KEYPLANE_RATE_LIMIT_BURST", DefaultRateLimitBurst, &c.RateLimitBurst},
		{"KEYPLANE_AUTH_FAILURE_BURST", DefaultAuthFailureBurst, &c.AuthFailureBurst},
		{"KEYPLANE_ANONYMOUS_BURST", DefaultAnonymousBurst, &c.AnonymousBurst},
		{"KEYPLANE_MAX_FIELDS", DefaultMaxFields, &c.MaxFields},
		{"KEYPLANE_MAX_SELECTION", DefaultMaxSelection, &c.MaxSelection},
		{"KEYPLANE_MAX_RESPONSE_BYTES", DefaultMaxResponseBytes, &c.MaxResponseBytes},
		{"KEYPLANE_SUBSCRIPTIONS_PER_KEY", DefaultSubscriptionsPerKey, &c.SubscriptionsPerKey},
		{"KEYPLANE_MAX_SUBSCRIPTIONS", DefaultMaxSubscriptions, &c.MaxSubscriptions},
		{"KEYPLANE_SUBSCRIPTION_BUFFER", DefaultSubscriptionBuffer, &c.SubscriptionBuffer},
		{"KEYPLANE_MAX_WEBSOCKET_MESSAGE", DefaultMaxWebsocketMessage, &c.MaxWebsocketMessage},
	}
	for _, v := range ints {
		n, err := intVar(getenv, v.name, v.def)
		if err != nil {
			return err
		}
		*v.into = n
	}
	body, err := intVar(getenv, "KEYPLANE_MAX_BODY_BYTES", DefaultMaxBodyBytes)
	if err != nil {
		return err
	}
	c.MaxBodyBytes = int64(body)
	if c.RateLimitRPS, err = rateVar(getenv, "KEYPLANE_RATE_LIMIT_RPS", DefaultRateLimitRPS); err != nil {
		return err
	}
	if c.AuthFailureRPS, err = rateVar(getenv, "KEYPLANE_AUTH_FAILURE_RPS", DefaultAuthFailureRPS); err != nil {
		return err
	}
	if c.AnonymousRPS, err = rateVar(getenv, "KEYPLANE_ANONYMOUS_RPS", DefaultAnonymousRPS); err != nil {
		return err
	}
	if c.DBTimeout, err = durationVar(getenv, "KEYPLANE_DB_TIMEOUT", DefaultDBTimeout); err != nil {
		return err
	}
	if c.RedisTimeout, err = durationVar(getenv, "KEYPLANE_REDIS_TIMEOUT", DefaultRedisTimeout); err != nil {
		return err
	}
	if c.EventsPoll, err = durationVar(getenv, "KEYPLANE_EVENTS_POLL", DefaultEventsPoll); err != nil {
		return err
	}
	if c.StreamKeepAlive, err = durationVar(getenv, "KEYPLANE_STREAM_KEEPALIVE", DefaultStreamKeepAlive); err != nil {
		return err
	}
	if c.StreamWriteTimeout, err = durationVar(getenv, "KEYPLANE_STREAM_WRITE_TIMEOUT", DefaultStreamWriteTimeout); err != nil {
		return err
	}
	for _, origin := range strings.Split(getenv("KEYPLANE_WEBSOCKET_ORIGINS"), ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			if _, err := path.Match(origin, ""); err != nil {
				return &Error{"KEYPLANE_WEBSOCKET_ORIGINS", fmt.Sprintf("%q is not a host pattern such as *.example.com", origin)}
			}
			c.WebsocketOrigins = append(c.WebsocketOrigins, origin)
		}
	}
	for _, cidr := range strings.Split(getenv("KEYPLANE_TRUSTED_PROXIES"), ",") {
		if cidr = strings.TrimSpace(cidr); cidr == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			return &Error{"KEYPLANE_TRUSTED_PROXIES", fmt.Sprintf("%q is not a CIDR such as 10.0.0.0/8", cidr)}
		}
		c.TrustedProxies = append(c.TrustedProxies, prefix.Masked())
	}
	c.RedisURL = getenv("REDIS_URL")
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return &Error{"REDIS_URL", "want redis://host:port/db or rediss://…"}
		}
	}
	return nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return def, &Error{name, fmt.Sprintf("%q is not a positive whole number", v)}
	}
	return n, nil
}

func rateVar(getenv func(string) string, name string, def float64) (float64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != f {
		return def, &Error{name, fmt.Sprintf("%q is not a rate such as 100 or 0.5 (0 turns the limit off)", v)}
	}
	return f, nil
}

func durationVar(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return def, &Error{name, fmt.Sprintf("%q is not a positive duration such as 5m or 90s", v)}
	}
	return d, nil
}
