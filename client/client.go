package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Defaults of the options.
const (
	// DefaultMaxRetries is how many times a query refused with 429 is sent
	// again.
	DefaultMaxRetries = 3
	// DefaultMaxRetryWait bounds the time a query spends retrying, from its
	// first attempt: a Retry-After that would end later is not waited for.
	DefaultMaxRetryWait = 10 * time.Second
	// DefaultPageSize is how many items each request of an All… iterator
	// asks for: the most the server gives.
	DefaultPageSize = 100
	// DefaultUserAgent is the User-Agent of every request, which the audit
	// log records.
	DefaultUserAgent = "keyplane-go-client"
)

// maxResponseBytes bounds what the client reads of a response; the server
// refuses to write more than 8 MiB by default.
const maxResponseBytes = 32 << 20

// Client calls one Keyplane server with one credential. It is safe for
// concurrent use. Make it with New; With gives a copy with another
// credential or other options.
type Client struct {
	endpoint     string
	key          string
	httpClient   *http.Client
	maxRetries   int
	maxRetryWait time.Duration
	pageSize     int
	userAgent    string
	gql          graphql.Client
}

// Option configures a Client.
type Option func(*Client)

// New returns a client of the server at url: its GraphQL endpoint, such as
// "https://keyplane.example.com/graphql". A URL with no path gets
// "/graphql".
//
//	kp := client.New("http://localhost:8080", client.WithKey(os.Getenv("KEYPLANE_KEY")))
func New(url string, opts ...Option) *Client {
	c := &Client{
		endpoint:     endpointOf(url),
		httpClient:   http.DefaultClient,
		maxRetries:   DefaultMaxRetries,
		maxRetryWait: DefaultMaxRetryWait,
		pageSize:     DefaultPageSize,
		userAgent:    DefaultUserAgent,
	}
	for _, opt := range opts {
		opt(c)
	}
	c.gql = transport{c}
	return c
}

// With returns a copy of the client with more options, sharing its HTTP
// client. It is how a device speaks for itself, with its own token:
//
//	device := kp.With(client.WithKey(enrolled.Token.Reveal()))
//	_, err := device.DeviceHeartbeat(ctx, client.DeviceHeartbeatInput{FirmwareVersion: "2.4.1"})
func (c *Client) With(opts ...Option) *Client {
	copied := *c
	for _, opt := range opts {
		opt(&copied)
	}
	copied.gql = transport{&copied}
	return &copied
}

// endpointOf adds /graphql to a URL that has no path.
func endpointOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Path != "" && u.Path != "/") || u.Host == "" {
		return raw
	}
	u.Path = "/graphql"
	return u.String()
}

// WithKey sets the Bearer credential of every request: a team API key
// (kp_…) for everything but a device's heartbeat, which needs the device's
// own token (kpd_…). An empty key sends none. EnrollDevice never sends
// one: the enrollment key in its input is its credential.
func WithKey(key string) Option {
	return func(c *Client) { c.key = strings.TrimSpace(key) }
}

// WithHTTPClient sets the HTTP client the requests go through, for its
// timeouts, proxy, TLS settings or a RoundTripper of your own. Nil means
// http.DefaultClient.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) {
		if h == nil {
			h = http.DefaultClient
		}
		c.httpClient = h
	}
}

// WithRetries bounds the retries of a query refused with HTTP 429: at most
// retries more attempts, each sent once the server's Retry-After has
// passed, and only while that wait ends within the given duration of the
// first attempt; otherwise the query fails at once with ErrRateLimited.
// Mutations are never retried. WithRetries(0, 0) turns retrying off. The
// defaults are DefaultMaxRetries and DefaultMaxRetryWait.
func WithRetries(retries int, within time.Duration) Option {
	return func(c *Client) {
		c.maxRetries, c.maxRetryWait = max(retries, 0), max(within, 0)
	}
}

// WithPageSize sets how many items each request of an All… iterator asks
// for, from 1 to 100 (DefaultPageSize).
func WithPageSize(n int) Option {
	return func(c *Client) { c.pageSize = min(max(n, 1), 100) }
}

// WithUserAgent sets the User-Agent of every request, which the audit log
// records (DefaultUserAgent).
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// contextKey marks a request that must carry no credential.
type contextKey struct{}

func withoutCredential(ctx context.Context) context.Context {
	return context.WithValue(ctx, contextKey{}, true)
}

// transport is the graphql.Client the generated code calls: it adds the
// credential, retries queries refused with 429, and turns errors into
// *Error.
type transport struct{ c *Client }

func (t transport) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	c := t.c
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("keyplane: encode %s: %w", req.OpName, err)
	}
	idempotent := isQuery(req.Query)
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := c.post(ctx, body, resp)
		var e *Error
		if !idempotent || !errors.As(err, &e) || e.StatusCode != http.StatusTooManyRequests || attempt >= c.maxRetries {
			return err
		}
		wait := e.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		if time.Since(start)+wait > c.maxRetryWait {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// isQuery reports whether a generated operation is a query: the only kind
// that is safe to send again.
func isQuery(document string) bool {
	return strings.HasPrefix(strings.TrimSpace(document), "query")
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post sends one request and decodes its answer into resp.
func (c *Client) post(ctx context.Context, body []byte, resp *graphql.Response) error {
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("keyplane: %w", err)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	httpReq.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		httpReq.Header.Set("User-Agent", c.userAgent)
	}
	if anonymous, _ := ctx.Value(contextKey{}).(bool); !anonymous && c.key != "" {
		httpReq.Header.Set("Authorization", "Bearer "+c.key)
	}
	httpResp, err := c.httpClient.Do(httpReq)
	if err != nil {
		return err // a *url.Error, which names the URL and not the credential
	}
	defer httpResp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(httpResp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("keyplane: read response: %w", err)
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("keyplane: response larger than %d bytes", maxResponseBytes)
	}
	requestID := httpResp.Header.Get("X-Request-Id")

	if httpResp.StatusCode != http.StatusOK {
		return StatusError(httpResp.StatusCode, httpResp.Header, raw)
	}

	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("keyplane: decode response (request id %s): %w", requestID, err)
	}
	if len(resp.Errors) > 0 {
		errs := make([]error, len(resp.Errors))
		for i, ge := range resp.Errors {
			errs[i] = ErrorOf(ge, httpResp.StatusCode, requestID)
		}
		if len(errs) == 1 {
			return errs[0]
		}
		return errors.Join(errs...)
	}
	return nil
}

// StatusError reads an answer other than 200 (a refused credential, a rate
// limit, a body refused before any GraphQL ran) from its status, headers and
// body, as Do returns it: for a caller that reads Keyplane's answers itself,
// such as an event stream.
func StatusError(status int, header http.Header, body []byte) *Error {
	requestID := header.Get("X-Request-Id")
	var decoded struct {
		Errors gqlerror.List `json:"errors"`
	}
	_ = json.Unmarshal(body, &decoded)
	e := &Error{StatusCode: status, RequestID: requestID}
	if len(decoded.Errors) > 0 {
		e = ErrorOf(decoded.Errors[0], status, requestID)
	} else {
		e.Message = strings.TrimSpace(http.StatusText(status))
	}
	switch status {
	case http.StatusUnauthorized:
		if e.Code == "" {
			e.Code = CodeUnauthenticated
		}
	case http.StatusTooManyRequests:
		if e.Code == "" {
			e.Code = CodeRateLimited
		}
		e.RetryAfter = retryAfter(header.Get("Retry-After"), time.Now())
	}
	return e
}

// ErrorOf reads one GraphQL error of an answer, as Do returns it.
func ErrorOf(ge *gqlerror.Error, status int, requestID string) *Error {
	str := func(name string) string {
		s, _ := ge.Extensions[name].(string)
		return s
	}
	e := &Error{
		Code:       Code(str("code")),
		Message:    ge.Message,
		Reason:     Reason(str("reason")),
		Scope:      str("scope"),
		Field:      str("field"),
		RequestID:  requestID,
		StatusCode: status,
	}
	if len(ge.Path) > 0 {
		e.Path = ge.Path.String()
	}
	if id := str("requestId"); id != "" {
		e.RequestID = id
	}
	if seconds, ok := ge.Extensions["retryAfter"].(float64); ok && seconds > 0 {
		e.RetryAfter = time.Duration(seconds * float64(time.Second))
	}
	return e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(header string, now time.Time) time.Duration {
	header = strings.TrimSpace(header)
	if header == "" {
		return 0
	}
	if seconds, err := strconv.Atoi(header); err == nil {
		return time.Duration(max(seconds, 0)) * time.Second
	}
	if at, err := http.ParseTime(header); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}
