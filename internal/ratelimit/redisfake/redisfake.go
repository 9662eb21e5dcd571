// Package redisfake is a stand-in Redis for tests: a TCP listener on
// 127.0.0.1 that speaks just enough RESP to serve the rate limiter, and can
// be told to stop answering or to hang up. It counts the connections it
// accepted and the commands it read, so that a test can assert how often a
// client called rather than how long it waited. It never touches the
// machine's real Redis.
package redisfake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Mode is how the fake treats what it is sent.
type Mode int32

// The modes.
const (
	// Answer replies: PONG to PING, Reply to EVAL and EVALSHA, an error to
	// anything else (which clients take as an old Redis and carry on).
	Answer Mode = iota
	// Hang accepts connections and reads commands, and never replies.
	Hang
	// Hangup closes every connection as soon as it is made or sent to.
	Hangup
)

// Server is one fake Redis.
type Server struct {
	ln    net.Listener
	mode  atomic.Int32
	reply atomic.Int64

	dials    atomic.Int64
	commands atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 on a free port, in the mode given.
func Start(mode Mode) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, conns: map[net.Conn]struct{}{}}
	s.mode.Store(int32(mode))
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the REDIS_URL of the fake.
func (s *Server) URL() string { return "redis://" + s.ln.Addr().String() + "/0" }

// Addr is the fake's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetMode changes the mode, for connections open already too.
func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

// SetReply sets the integer EVAL and EVALSHA answer (for the rate limiter:
// 0 allows, a positive number is a wait in microseconds).
func (s *Server) SetReply(n int64) { s.reply.Store(n) }

// Dials returns how many connections the fake accepted.
func (s *Server) Dials() int64 { return s.dials.Load() }

// Commands returns how many commands the fake read.
func (s *Server) Commands() int64 { return s.commands.Load() }

// Close stops listening and drops every connection: a Redis that is gone.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	_ = s.ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.dials.Add(1)
		if Mode(s.mode.Load()) == Hangup {
			_ = c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		s.commands.Add(1)
		var out string
		switch Mode(s.mode.Load()) {
		case Hang:
			continue
		case Hangup:
			return
		}
		switch strings.ToUpper(args[0]) {
		case "PING":
			out = "+PONG\r\n"
		case "EVAL", "EVALSHA":
			out = ":" + strconv.FormatInt(s.reply.Load(), 10) + "\r\n"
		default:
			out = "-ERR unknown command '" + args[0] + "'\r\n"
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings, as clients send them.
func readCommand(r *bufio.Reader) ([]string, error) {
	n, err := readHeader(r, '*')
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 1024 {
		return nil, fmt.Errorf("redisfake: %d arguments", n)
	}
	args := make([]string, n)
	for i := range args {
		size, err := readHeader(r, '$')
		if err != nil {
			return nil, err
		}
		if size < 0 || size > 1<<20 {
			return nil, fmt.Errorf("redisfake: argument of %d bytes", size)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func readHeader(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 2 || line[0] != kind {
		return 0, errors.New("redisfake: not a RESP command")
	}
	return strconv.Atoi(line[1:])
}
