package graph

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
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
type postTransport struct{}

// getTransport serves GET, for queries only: GET must be safe, so that a link
// or a prefetch can never change anything. The operation is checked after
// the query is resolved, so a mutation named by a persisted-query hash is
// refused too.
type getTransport struct{}

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

func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := negotiate(w, r, exec)
	if !ok {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		refuse(w, r, exec, http.StatusBadRequest, "the request body could not be read")
		return
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		refuse(w, r, exec, http.StatusBadRequest, "batched operations are not supported: send one operation per request")
		return
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		refuse(w, r, exec, http.StatusBadRequest, "the request body is not one JSON object with a query")
		return
	}
	params := &graphql.RawParams{Headers: r.Header, ReadTime: graphql.TraceTiming{Start: graphql.Now()}}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil || dec.More() {
		refuse(w, r, exec, http.StatusBadRequest, "the request body is not one JSON object with a query")
		return
	}
	params.ReadTime.End = graphql.Now()
	execute(w, r, exec, params, media, false)
}

func (getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media, ok := negotiate(w, r, exec)
	if !ok {
		return
	}
	q := r.URL.Query()
	params := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName"), Headers: r.Header}
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	for name, into := range map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if raw := q.Get(name); raw != "" {
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(into); err != nil {
				refuse(w, r, exec, http.StatusBadRequest, "the "+name+" parameter is not a JSON object")
				return
			}
		}
	}
	execute(w, r, exec, params, media, true)
}

// execute runs one operation and writes its response.
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, media string, queriesOnly bool) {
	ctx := r.Context()
	if _, persisted := params.Extensions["persistedQuery"]; params.Query == "" && !persisted {
		refuse(w, r, exec, http.StatusBadRequest, "the request has no query")
		return
	}
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if media == mediaGraphQLResponse && errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusBadRequest
		}
		w.WriteHeader(status)
		write(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	if op := rc.Doc.Operations.ForName(rc.OperationName); queriesOnly && (op == nil || op.Operation != ast.Query) {
		w.Header().Set("Allow", "POST")
		refuse(w, r, exec, http.StatusMethodNotAllowed, "only queries may be sent with GET; send mutations with POST")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	write(w, responses(ctx))
}

// negotiate picks the response type from Accept and sets it: the GraphQL
// response type when the client names it first, JSON for JSON or a
// wildcard or no Accept at all. A client that accepts neither gets 406.
func negotiate(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) (string, bool) {
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
		refuse(w, r, exec, http.StatusNotAcceptable, "this endpoint answers application/json or application/graphql-response+json only")
		return "", false
	}
	w.Header().Set("Content-Type", media)
	return media, true
}

// refuse answers a request that cannot run with one coded GraphQL error.
func refuse(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, status int, message string) {
	w.WriteHeader(status)
	write(w, exec.DispatchError(r.Context(), gqlerror.List{gqlerror.Errorf("%s", message)}))
}

func write(w http.ResponseWriter, resp *graphql.Response) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(resp); err != nil {
		panic(err)
	}
	_, _ = w.Write(buf.Bytes())
}
