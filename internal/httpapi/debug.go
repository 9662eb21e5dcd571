package httpapi

import (
	"net/http"
	"net/http/pprof"
)

// NewDebugHandler serves Go's profiler under /debug/pprof/. It is meant for
// its own listener (KEYPLANE_PPROF_ADDR), never the public one: profiles
// show the program's internals and cost CPU to take.
func NewDebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}
