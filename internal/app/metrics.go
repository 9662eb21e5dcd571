package app

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/live"
)

// poolCollector reports the database's connection pools at each scrape:
// connections in use and idle, the most it may open, and how often and how
// long callers waited for one. On PostgreSQL these are the pgx pool (the
// connections) and database/sql's view over it (pool "sql"); on SQLite the
// read pool and the one writer.
type poolCollector struct {
	db                          *db.DB
	conns, max, waits, waitTime *prometheus.Desc
}

func newPoolCollector(d *db.DB) *poolCollector {
	return &poolCollector{
		db: d,
		conns: prometheus.NewDesc("keyplane_db_connections",
			"Database connections by pool and state (in_use, idle).", []string{"pool", "state"}, nil),
		max: prometheus.NewDesc("keyplane_db_connections_max",
			"The most connections a pool may open (0: no bound).", []string{"pool"}, nil),
		waits: prometheus.NewDesc("keyplane_db_waits_total",
			"Times a caller waited for a free connection of the pool.", []string{"pool"}, nil),
		waitTime: prometheus.NewDesc("keyplane_db_wait_seconds_total",
			"Time callers spent waiting for a free connection of the pool.", []string{"pool"}, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.max
	ch <- c.waits
	ch <- c.waitTime
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.db.PoolStats() {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(p.InUse), p.Pool, "in_use")
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(p.Idle), p.Pool, "idle")
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(p.Max), p.Pool)
		ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(p.Waits), p.Pool)
		ch <- prometheus.MustNewConstMetric(c.waitTime, prometheus.CounterValue, p.WaitTime.Seconds(), p.Pool)
	}
}

// Build names the running build, for keyplane_build_info.
type Build struct {
	Version, Commit string
}

// buildInfo reports keyplane_build_info{version,commit,goversion} 1. The
// build is read from the binary until SetBuild names it (the version and
// commit the linker set in package main).
type buildInfo struct {
	desc  *prometheus.Desc
	build atomic.Pointer[Build]
}

func newBuildInfo() *buildInfo {
	b := &buildInfo{desc: prometheus.NewDesc("keyplane_build_info",
		"Always 1; the labels name the running build: version, commit, Go version.", []string{"version", "commit", "goversion"}, nil)}
	b.build.Store(&Build{Version: "dev", Commit: vcsRevision()})
	return b
}

// vcsRevision is the commit the Go tool stamped into the binary, or "unknown".
func vcsRevision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func (b *buildInfo) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *buildInfo) Collect(ch chan<- prometheus.Metric) {
	build := b.build.Load()
	ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, 1, build.Version, build.Commit, runtime.Version())
}

// SetBuild names the running build in keyplane_build_info; an empty field
// keeps what the binary says of itself.
func (a *App) SetBuild(version, commit string) {
	b := *a.build.build.Load()
	if version != "" {
		b.Version = version
	}
	if commit != "" {
		b.Commit = commit
	}
	a.build.build.Store(&b)
}

// liveCollector reports the live subscriptions: how many are open, and how
// many were dropped for falling behind.
type liveCollector struct{ hub *live.Hub }

var (
	liveActive  = prometheus.NewDesc("keyplane_subscriptions", "Live subscriptions open in this process.", nil, nil)
	liveDropped = prometheus.NewDesc("keyplane_subscriptions_dropped_total", "Live subscriptions dropped for falling behind.", nil, nil)
)

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) { ch <- liveActive; ch <- liveDropped }

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	active, dropped := c.hub.Subscriptions()
	ch <- prometheus.MustNewConstMetric(liveActive, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(liveDropped, prometheus.CounterValue, float64(dropped))
}
