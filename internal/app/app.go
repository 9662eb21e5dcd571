// Package app wires Keyplane together: the store, the domain services, the
// GraphQL endpoint and the HTTP surface. The binary and the end-to-end tests
// build the server through it, so they run the same thing.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/graph"
	"github.com/keyplane/keyplane/internal/auth"
	"github.com/keyplane/keyplane/internal/config"
	"github.com/keyplane/keyplane/internal/devices"
	"github.com/keyplane/keyplane/internal/httpapi"
	"github.com/keyplane/keyplane/internal/live"
	"github.com/keyplane/keyplane/internal/ratelimit"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/usage"
)

// App is a ready-to-serve Keyplane.
type App struct {
	// Handler serves the whole HTTP surface.
	Handler http.Handler
	// Metrics serves GET /metrics alone, for a listener of its own; it is
	// set only when cfg.MetricsAddr is, and Handler then answers 404 there.
	Metrics http.Handler
	// Sweeper records devices OFFLINE once they go silent; Run runs it.
	Sweeper *devices.Sweeper
	// Usage batches last-use times; Run flushes it.
	Usage *usage.Recorder
	// Live reads the audit log as it grows and serves the subscriptions;
	// Run runs it, and its doorbell.
	Live  *live.Hub
	store *store.Store
	log   *slog.Logger
	redis *redis.Client
	build *buildInfo
}

// New builds the server on an open, migrated store. It fails only when
// REDIS_URL is set and Redis cannot be reached.
func New(ctx context.Context, cfg config.Config, s *store.Store, log *slog.Logger) (*App, error) {
	a := &App{Usage: usage.New(s, log, cfg.UsageFlushInterval), build: newBuildInfo(),
		Sweeper: devices.NewSweeper(s, cfg.DeviceOnlineWindow, cfg.PresenceSweepInterval, log),
		Live: live.NewHub(s, live.Options{PerKey: cfg.SubscriptionsPerKey, Max: cfg.MaxSubscriptions,
			Buffer: cfg.SubscriptionBuffer, Poll: cfg.EventsPoll, Window: cfg.DeviceOnlineWindow, Logger: log}),
		store: s, log: log}
	s.OnEvents(a.Live.Ring)
	if err := s.CheckNotify(ctx); err != nil {
		log.Warn("live events: this database refuses NOTIFY; other replicas' changes arrive by the poll", "poll", cfg.EventsPoll.String(), "err", err)
	}
	limits, err := a.limits(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.build, newPoolCollector(s.DB()))
	if err := a.Usage.Register(reg); err != nil {
		return nil, err
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		// Each request's log line tells its statements and database time.
		s.DB().TrackRequests()
	}
	gql := graph.NewHandler(s, graph.Options{
		Introspection: cfg.Introspection, OnlineWindow: cfg.DeviceOnlineWindow, Logger: log,
		MaxCost: cfg.MaxCost, MaxDepth: cfg.MaxDepth, MaxAliases: cfg.MaxAliases, MaxTokens: cfg.MaxTokens,
		MaxFields: cfg.MaxFields, MaxSelection: cfg.MaxSelection,
		MaxResponseBytes: cfg.MaxResponseBytes,
		Registerer:       reg,
		Live:             a.Live,
		Stream: graph.LiveOptions{KeepAlive: cfg.StreamKeepAlive, WriteTimeout: cfg.StreamWriteTimeout,
			MaxMessageBytes: int64(cfg.MaxWebsocketMessage), Origins: cfg.WebsocketOrigins},
	})
	reg.MustRegister(liveCollector{a.Live})
	var schema string
	if cfg.Introspection {
		schema = graph.SDL()
	}
	a.Handler = httpapi.NewRouter(httpapi.Options{
		GraphQL:        gql,
		Authenticator:  auth.NewAuthenticator(s, a.Usage),
		Database:       s,
		Logger:         log,
		Registry:       reg,
		MetricsApart:   cfg.MetricsAddr != "",
		Playground:     cfg.Playground,
		Schema:         schema,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		Limits:         limits,
		TrustedProxies: cfg.TrustedProxies,
	})
	if cfg.MetricsAddr != "" {
		a.Metrics = httpapi.NewMetricsHandler(reg)
	}
	return a, nil
}

// limits builds the rate limiters: in process, or in Redis when REDIS_URL
// is set, so that every replica shares them. A rate of 0 turns one off.
// Redis is asked with a deadline of cfg.RedisTimeout per call and no retry
// of the client's own: the limiters fail open behind a circuit breaker, so
// that a sick Redis costs a request at most one deadline.
func (a *App) limits(ctx context.Context, cfg config.Config, log *slog.Logger) (httpapi.Limits, error) {
	var backend *ratelimit.RedisBackend
	newLimiter := func(prefix string, rate float64, burst int) ratelimit.Limiter {
		switch {
		case rate == 0:
			return nil
		case backend != nil:
			return ratelimit.NewRedis(backend, prefix, rate, burst)
		default:
			return ratelimit.NewLocal(rate, burst)
		}
	}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return httpapi.Limits{}, fmt.Errorf("REDIS_URL: %w", err)
		}
		ratelimit.FailFast(opts, cfg.RedisTimeout)
		a.redis = redis.NewClient(opts)
		if err := a.redis.Ping(ctx).Err(); err != nil {
			_ = a.redis.Close()
			return httpapi.Limits{}, fmt.Errorf("connect to redis: %w", err)
		}
		backend = ratelimit.NewRedisBackend(a.redis, cfg.RedisTimeout, log)
	}
	return httpapi.Limits{
		Requests:  newLimiter("keyplane:rate:req:", cfg.RateLimitRPS, cfg.RateLimitBurst),
		Failures:  newLimiter("keyplane:rate:fail:", cfg.AuthFailureRPS, cfg.AuthFailureBurst),
		Anonymous: newLimiter("keyplane:rate:anon:", cfg.AnonymousRPS, cfg.AnonymousBurst),
		Redis:     backend,
	}, nil
}

// Run does the server's background work (the presence sweeper, the live
// events and their doorbell, the usage flush) until ctx ends, then flushes what is pending and lets go of Redis.
func (a *App) Run(ctx context.Context) {
	var background sync.WaitGroup
	background.Go(func() { a.Sweeper.Run(ctx) })
	background.Go(func() { a.Live.Run(ctx) })
	background.Go(func() { a.listen(ctx) })
	a.Usage.Run(ctx)
	background.Wait()
	if a.redis != nil {
		_ = a.redis.Close()
	}
}

// listen rings the live events' doorbell on every replica's commits, by
// PostgreSQL's LISTEN/NOTIFY. On SQLite, or an engine without LISTEN, the
// store's commit hook rings it for this process's own changes and the
// hub's poll finds the rest.
func (a *App) listen(ctx context.Context) {
	err := a.store.DB().Listen(ctx, store.EventsChannel, a.Live.RingAll, func(payload string) {
		if team, err := uuid.Parse(payload); err == nil {
			a.Live.Ring(team)
		}
	})
	if err != nil && !errors.Is(err, db.ErrNoListen) {
		a.log.Warn("live events: LISTEN is refused; changes of other replicas arrive by the poll", "err", err)
	}
}
