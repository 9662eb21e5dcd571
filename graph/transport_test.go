package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestEnvelopeMatchesEncodingJSON checks that a response written around its
// data, without encoding the data again, is byte for byte what encoding/json
// wrote for the whole response (for data with no character it escapes as
// HTML: those now pass as gqlgen wrote them).
func TestEnvelopeMatchesEncodingJSON(t *testing.T) {
	yes := true
	for _, resp := range []*graphql.Response{
		{},
		{Data: json.RawMessage(`{"team":{"name":"Acme","tags":["a","b"],"n":1.5,"none":null}}`)},
		{Errors: gqlerror.List{{Message: "boom", Path: ast.Path{ast.PathName("team"), ast.PathIndex(3)}, Extensions: map[string]any{"code": "INTERNAL", "requestId": "r1"}}}},
		{Errors: gqlerror.List{{Message: "a"}, {Message: "b", Locations: []gqlerror.Location{{Line: 1, Column: 2}}}}, Data: json.RawMessage(`{"x":null}`)},
		{Data: json.RawMessage(`null`), Extensions: map[string]any{"b": 1, "a": []int{2}}},
		{Data: json.RawMessage(`{}`), Label: "l", Path: ast.Path{ast.PathName("p")}, HasNext: &yes},
		{Errors: gqlerror.List{{Message: "<b>&</b>"}}},
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(resp); err != nil {
			t.Fatal(err)
		}
		head, data, tail := envelope(resp)
		got := append(append(append([]byte{}, head...), data...), tail...)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("envelope wrote\n%s\nencoding/json wrote\n%s", got, want.Bytes())
		}
	}
}

// TestDecodeBody covers the strict body in-process: four members, spelt
// exactly, each once, one object and nothing after it.
func TestDecodeBody(t *testing.T) {
	for _, tc := range []struct {
		body    string
		problem string // a piece of the refusal, "" when the body is accepted
	}{
		{`{"query":"{ a }"}`, ""},
		{` {"query":"{ a }","operationName":"A","variables":{"x":1},"extensions":{"e":{"E":1}}} `, ""},
		{`{"query":null,"operationName":null,"variables":null,"extensions":null}`, ""},
		{`{}`, ""}, // no query: execute refuses it
		{`{"query":"{ a }","QUERY":"mutation { b }"}`, "another case"},
		{`{"Query":"mutation { b }","query":"{ a }"}`, "another case"},
		{`{"query":"{ a }","query":"mutation { b }"}`, "more than once"},
		{`{"query":"{ a }","\u0071uery":"mutation { b }"}`, "more than once"},
		{`{"query":"{ a }","headers":{}}`, "other than"},
		{`{"query":"{ a }","variableſ":{}}`, "another case"},
		{`[{"query":"{ a }"}]`, "batched"},
		{"\t[", "batched"},
		{`{"query":"{ a }"}}`, "not one JSON object"},
		{`{"query":"{ a }"} {}`, "not one JSON object"},
		{`{"query":"{ a }",}`, "not one JSON object"},
		{`{"query":1}`, "not one JSON object"},
		{`{"variables":[]}`, "not one JSON object"},
		{`{"query":"{ a }"`, "not one JSON object"},
		{``, "not one JSON object"},
		{`null`, "not one JSON object"},
		{"\xef\xbb\xbf{}", "not one JSON object"},
	} {
		var params graphql.RawParams
		problem := decodeBody(strings.NewReader(tc.body), &params)
		if (problem == "") != (tc.problem == "") || !strings.Contains(problem, tc.problem) {
			t.Errorf("%q: refused with %q, want %q", tc.body, problem, tc.problem)
		}
	}
	var params graphql.RawParams
	body := `{"query":"q","operationName":"o","variables":{"n":12345678901234567890},"extensions":{"persistedQuery":{}}}`
	if problem := decodeBody(strings.NewReader(body), &params); problem != "" {
		t.Fatal(problem)
	}
	if params.Query != "q" || params.OperationName != "o" || params.Variables["n"] != json.Number("12345678901234567890") || params.Extensions["persistedQuery"] == nil {
		t.Fatalf("decoded %+v", params)
	}
}

// BenchmarkDecodeBody measures the body read of the hot path; with
// -benchmem, B/op shows what the body costs beyond its own size.
func BenchmarkDecodeBody(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		query := `{ viewer { id } }` + strings.Repeat(" ", max(0, size-40))
		body := []byte(`{"query":` + strings.TrimSpace(mustJSON(query)) + `,"variables":{}}`)
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var params graphql.RawParams
				if problem := decodeBody(bytes.NewReader(body), &params); problem != "" {
					b.Fatal(problem)
				}
			}
		})
	}
}

// BenchmarkRespond measures writing a response of 1 MiB of data.
func BenchmarkRespond(b *testing.B) {
	data := json.RawMessage(`{"s":` + mustJSON(strings.Repeat("a", 1<<20)) + `}`)
	resp := &graphql.Response{Data: data}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		head, data, tail := envelope(resp)
		var w countingWriter
		_, _ = w.Write(head)
		_, _ = w.Write(data)
		_, _ = w.Write(tail)
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

func mustJSON(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
