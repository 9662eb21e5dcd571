package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Keyplane's own transports follow GraphQL over HTTP: POST with a JSON body
// runs any operation, GET runs queries only; the response is JSON, or
// application/graphql-response+json when Accept asks for it; a request that
// fails before execution (parse, validation, limits) answers 200 under JSON
// and 400 under the GraphQL response type, as the spec asks; a body that is
// not one JSON request is 400. Every refusal is a GraphQL error with a code.

// Response media types of GraphQL over HTTP.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// postTransport serves POST with a JSON body: one operation per request.
type postTransport struct{ responder }

// getTransport serves GET, for queries only: GET must be safe, so that a link
// or a prefetch can never change anything. The operation is checked after
// the query is resolved, so a mutation named by a persisted-query hash is
// refused too.
type getTransport struct{ responder }

// responder is how both transports answer: the largest response they send
// (0: no limit), and the metrics every response is recorded in (nil: none).
type responder struct {
	maxResponse int
	// maxTokens bounds the parse of a document that did not validate, to
	// name its operation in the metrics.
	maxTokens int
	ops       *operations
}

// operation is what a response answers: the operation it ran, or nil when
// the request named none, and the operationName the client sent; ran tells
// whether it was executed. The fragments are those of a document that did
// not validate, whose spreads are not resolved.
type operation struct {
	def   *ast.OperationDefinition
	frags ast.FragmentDefinitionList
	name  string
	ran   bool
}

// invalid names the operation of a document refused before it could run
// (it does not parse or validate, or is over a limit), for the metrics and
// the log: it is parsed again, within the token limit, and only then.
func (a responder) invalid(params *graphql.RawParams) operation {
	op := operation{name: params.OperationName}
	if a.ops == nil || params.Query == "" {
		return op
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, a.maxTokens)
	if err != nil || doc == nil {
		return op
	}
	op.def, op.frags = doc.Operations.ForName(params.OperationName), doc.Fragments
	return op
}

var (
	_ graphql.Transport = postTransport{}
	_ graphql.Transport = getTransport{}
)

func (postTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodPost
}

func (getTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodGet
}

func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := t.negotiate(w, r, exec)
	if !ok {
		return
	}
	params := &graphql.RawParams{Headers: r.Header, ReadTime: graphql.TraceTiming{Start: graphql.Now()}}
	if problem := decodeBody(r.Body, params); problem != "" {
		t.refuse(w, r, exec, http.StatusBadRequest, problem)
		return
	}
	params.ReadTime.End = graphql.Now()
	t.execute(w, r, exec, params, media, false)
}

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := t.negotiate(w, r, exec)
	if !ok {
		return
	}
	params := &graphql.RawParams{Headers: r.Header}
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	if problem := decodeQueryString(r.URL.RawQuery, params); problem != "" {
		t.refuse(w, r, exec, http.StatusBadRequest, problem)
		return
	}
	t.execute(w, r, exec, params, media, true)
}

// The members of a request, in a body or in a query string: these four,
// spelt exactly so, each at most once. encoding/json alone would match keys
// regardless of case and keep the last of two, so that a gateway reading
// "query" and Keyplane reading "QUERY" would see different operations; it
// would also fill RawParams.Headers from a "headers" key.
const (
	paramQuery = 1 << iota
	paramOperationName
	paramVariables
	paramExtensions
)

var paramNames = [...]string{"query", "operationName", "variables", "extensions"}

// param returns the bit of a member's name, and where its value goes; 0
// for any other name.
func param(params *graphql.RawParams, name string) (int, any) {
	switch name {
	case "query":
		return paramQuery, &params.Query
	case "operationName":
		return paramOperationName, &params.OperationName
	case "variables":
		return paramVariables, &params.Variables
	case "extensions":
		return paramExtensions, &params.Extensions
	}
	return 0, nil
}

// Why a request's members are refused. No message repeats what the client
// sent, so that nothing of a body is reflected back.
const (
	notOneObject = "the request body is not one JSON object with a query"
	batchRefused = "batched operations are not supported: send one operation per request"
)

// unknownParam explains a member that is none of the four.
func unknownParam(where, name string) string {
	for _, known := range paramNames {
		if strings.EqualFold(name, known) {
			return "the " + where + " names " + quoteName(known) + " in another case: names are matched exactly"
		}
	}
	return "the " + where + " holds a member other than query, operationName, variables and extensions"
}

// twiceParam explains a member sent twice.
func twiceParam(where, name string) string {
	return "the " + where + " holds " + quoteName(name) + " more than once"
}

func quoteName(name string) string { return `"` + name + `"` }

// decodeBody reads one JSON object into params in a single pass over the
// body, token by token: each member is checked (known, exact, once) before
// its value is decoded, so a refused body runs nothing, and the body is
// never copied whole first. It returns why the body is refused, or "".
func decodeBody(body io.Reader, params *graphql.RawParams) string {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	switch tok, err := dec.Token(); {
	case err != nil && !isJSONError(err):
		return "the request body could not be read"
	case tok == json.Delim('['):
		return batchRefused
	case tok != json.Delim('{'):
		return notOneObject
	}
	seen := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return notOneObject
		}
		name, _ := tok.(string)
		bit, into := param(params, name)
		switch {
		case bit == 0:
			return unknownParam("request body", name)
		case seen&bit != 0:
			return twiceParam("request body", name)
		}
		seen |= bit
		if err := dec.Decode(into); err != nil {
			return notOneObject
		}
	}
	// The closing brace, then nothing but white space.
	if _, err := dec.Token(); err != nil {
		return notOneObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return notOneObject
	}
	return ""
}

// isJSONError reports whether err is about the JSON rather than reading it.
func isJSONError(err error) bool {
	var syntax *json.SyntaxError
	return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &syntax)
}

// decodeQueryString reads the parameters of a GET request into params, as
// strictly as a body: the four names only, each once, and the query string
// well-formed, so that no proxy can parse it differently. It returns why
// the request is refused, or "".
func decodeQueryString(raw string, params *graphql.RawParams) string {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "the query string is malformed"
	}
	for name, values := range q {
		bit, into := param(params, name)
		switch {
		case bit == 0:
			return unknownParam("query string", name)
		case len(values) > 1:
			return twiceParam("query string", name)
		}
		switch v := values[0]; bit {
		case paramQuery:
			params.Query = v
		case paramOperationName:
			params.OperationName = v
		default:
			if v != "" && !decodeOne(v, into) {
				return "the " + name + " parameter is not a JSON object"
			}
		}
	}
	return ""
}

// decodeOne decodes raw, one JSON value and nothing after it, into v.
func decodeOne(raw string, v any) bool {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(v) != nil {
		return false
	}
	_, err := dec.Token()
	return err == io.EOF
}

// execute runs one operation and writes its response, or, when that would
// be larger than maxResponse bytes (0: no limit), an error in its place.
func (a responder) execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, media string, queriesOnly bool) {
	ctx := r.Context()
	if _, persisted := params.Extensions["persistedQuery"]; params.Query == "" && !persisted {
		a.refuse(w, r, exec, http.StatusBadRequest, "the request has no query")
		return
	}
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusBadRequest
		}
		ctx := graphql.WithOperationContext(ctx, rc)
		// A document that validated may still be refused (a limit, a
		// variable): it counts as its operation. One that did not is
		// parsed again to name it.
		op := operation{name: params.OperationName}
		if rc != nil && rc.Doc != nil {
			op.def = rc.Operation
		} else {
			op = a.invalid(params)
		}
		a.respond(ctx, w, exec, status, exec.DispatchError(ctx, errs), op)
		return
	}
	op := rc.Doc.Operations.ForName(rc.OperationName)
	if op != nil && op.Operation == ast.Subscription {
		a.respond(ctx, w, exec, http.StatusBadRequest,
			exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("a subscription streams: send it with Accept: text/event-stream, or over a WebSocket (graphql-transport-ws)")}),
			operation{def: op, name: params.OperationName})
		return
	}
	if queriesOnly && (op == nil || op.Operation != ast.Query) {
		w.Header().Set("Allow", "POST")
		a.respond(ctx, w, exec, http.StatusMethodNotAllowed,
			exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("only queries may be sent with GET; send mutations with POST")}),
			operation{def: op, name: params.OperationName})
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	a.respond(ctx, w, exec, http.StatusOK, responses(ctx), operation{def: op, name: params.OperationName, ran: true})
}

// negotiate picks the response type from Accept and sets it: the GraphQL
// response type when the client names it first, JSON for JSON or a
// wildcard or no Accept at all. A client that accepts neither gets 406.
func (a responder) negotiate(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) (string, bool) {
	accept := r.Header.Get("Accept")
	media := ""
	if strings.TrimSpace(accept) == "" {
		media = mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		if media != "" {
			break
		}
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case mediaGraphQLResponse:
			media = mediaGraphQLResponse
		case mediaJSON, "*/*", "application/*":
			media = mediaJSON
		}
	}
	if media == "" {
		w.Header().Set("Content-Type", mediaJSON)
		a.refuse(w, r, exec, http.StatusNotAcceptable, "this endpoint answers application/json or application/graphql-response+json only")
		return "", false
	}
	w.Header().Set("Content-Type", media)
	return media, true
}

// refuse answers a request that cannot run with one coded GraphQL error.
func (a responder) refuse(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, message string) {
	a.respond(r.Context(), w, exec, status, exec.DispatchError(r.Context(), gqlerror.List{gqlerror.Errorf("%s", message)}), operation{})
}

// respond writes resp with the status, and records it (metrics, and the
// request's log entry). The response is measured before a byte is written:
// when it is larger than maxResponse (0: no limit), a QUERY_TOO_COMPLEX
// error goes in its place, never a truncated body.
func (a responder) respond(ctx context.Context, w http.ResponseWriter, exec graphql.GraphExecutor, status int, resp *graphql.Response, op operation) {
	if resp == nil {
		resp = &graphql.Response{}
	}
	head, data, tail := envelope(resp)
	if size := len(head) + len(data) + len(tail); a.maxResponse > 0 && size > a.maxResponse {
		resp = exec.DispatchError(ctx, gqlerror.List{responseTooLarge(a.maxResponse, op.ran && op.def != nil && op.def.Operation == ast.Mutation)})
		head, data, tail = envelope(resp)
	}
	a.ops.record(ctx, op, resp)
	w.WriteHeader(status)
	_, _ = w.Write(head)
	_, _ = w.Write(data)
	_, _ = w.Write(tail)
}

var (
	jsonNull = []byte("null")
	closing  = []byte("}\n")
)

// responseTooLarge is the error that replaces a response over the limit.
func responseTooLarge(limit int, mutation bool) *gqlerror.Error {
	msg := fmt.Sprintf("the response would be larger than %d bytes (KEYPLANE_MAX_RESPONSE_BYTES) and was not sent: ask for fewer objects or fields", limit)
	if mutation {
		msg += "; the mutation itself was carried out"
	}
	return tooComplex(msg)
}

// envelope encodes a response in three parts, as encoding/json orders
// graphql.Response: errors first, then data, then the rest. The data,
// which gqlgen has already encoded, is returned as it is, rather than
// being checked and copied again by encoding/json, then copied once more
// into a buffer.
func envelope(resp *graphql.Response) (head, data, tail []byte) {
	head = append(head, '{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			panic(err)
		}
		head = append(head, `"errors":`...)
		head = append(head, errs...)
		head = append(head, ',')
	}
	head = append(head, `"data":`...)
	data = resp.Data
	if data == nil {
		data = jsonNull
	}
	if resp.Label == "" && len(resp.Path) == 0 && resp.HasNext == nil && len(resp.Extensions) == 0 {
		// The common case: nothing follows the data.
		return head, data, closing
	}
	rest, err := json.Marshal(struct {
		Label      string         `json:"label,omitempty"`
		Path       ast.Path       `json:"path,omitempty"`
		HasNext    *bool          `json:"hasNext,omitempty"`
		Extensions map[string]any `json:"extensions,omitempty"`
	}{resp.Label, resp.Path, resp.HasNext, resp.Extensions})
	if err != nil {
		panic(err)
	}
	if len(rest) > len("{}") {
		tail = append(tail, ',')
		tail = append(tail, rest[1:len(rest)-1]...)
	}
	return head, data, append(tail, closing...)
}
