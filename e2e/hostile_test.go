package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The hostile-input suite of the hardening issue: raw HTTP requests built
// to break the server, each answered with an exact status and code, none
// with a 5xx, and none changing a single row.

// Operations with every input as a variable, so that a case can send any
// JSON value where the schema wants one type.
const (
	hoCreateKey     = `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { secret apiKey { id name } } }`
	hoUpdateKey     = `mutation($in: UpdateApiKeyInput!) { updateApiKey(input: $in) { apiKey { id name } } }`
	hoRotateKey     = `mutation($in: RotateApiKeyInput!) { rotateApiKey(input: $in) { secret apiKey { id } } }`
	hoRevokeKey     = `mutation($in: RevokeApiKeyInput!) { revokeApiKey(input: $in) { apiKey { id status } } }`
	hoUpdateTeam    = `mutation($in: UpdateTeamInput!) { updateTeam(input: $in) { team { id name } } }`
	hoCreateDevice  = `mutation($in: CreateDeviceInput!) { createDevice(input: $in) { token device { id } } }`
	hoCreateDevices = `mutation($in: CreateDevicesInput!) { createDevices(input: $in) { devices { id } } }`
	hoUpdateDevice  = `mutation($in: UpdateDeviceInput!) { updateDevice(input: $in) { device { id name } } }`
	hoRotateDevice  = `mutation($in: RotateDeviceTokenInput!) { rotateDeviceToken(input: $in) { token device { id } } }`
	hoRevokeDevice  = `mutation($in: RevokeDeviceInput!) { revokeDevice(input: $in) { device { id status } } }`
	hoCreateEnr     = `mutation($in: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $in) { secret enrollmentKey { id } } }`
	hoRevokeEnr     = `mutation($in: RevokeEnrollmentKeyInput!) { revokeEnrollmentKey(input: $in) { enrollmentKey { id revokedAt } } }`
	hoEnroll        = `mutation($in: EnrollDeviceInput!) { enrollDevice(input: $in) { token device { id } } }`
	hoHeartbeat     = `mutation($in: DeviceHeartbeatInput!) { deviceHeartbeat(input: $in) { device { id } } }`
	hoAddMember     = `mutation($in: AddMemberInput!) { addMember(input: $in) { member { id } } }`
	hoUpdateMember  = `mutation($in: UpdateMemberInput!) { updateMember(input: $in) { member { id name } } }`
	hoRemoveMember  = `mutation($in: RemoveMemberInput!) { removeMember(input: $in) { member { id } } }`
	hoNode          = `query($id: ID!) { node(id: $id) { id } }`
	hoNodes         = `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`
	hoKeys          = `query($first: Int, $last: Int, $after: String, $filter: ApiKeyFilter) {
  team { apiKeys(first: $first, last: $last, after: $after, filter: $filter) { totalCount nodes { id } } }
}`
	hoDevices = `query($filter: DeviceFilter) { team { devices(filter: $filter) { totalCount nodes { id } } } }`
	hoAudit   = `query($filter: AuditEventFilter) { team { auditEvents(filter: $filter) { totalCount } } }`
	// hoRename would rename the team if it ran: a refused credential must
	// run nothing.
	hoRename = `mutation { updateTeam(input: {name: "pwned"}) { team { name } } }`
)

// hoTables are the tables whose every row the suite compares around a case.
var hoTables = []string{"teams", "api_keys", "devices", "members", "enrollment_keys", "audit_events"}

// hoSnapshot is every row of every table, one string per row, by id.
type hoSnapshot map[string][]string

// hoReader opens a second connection pool on the test's database, to read
// whole rows without going through the server.
func hoReader(t *testing.T, e *env) *sql.DB {
	t.Helper()
	d, err := db.Open(context.Background(), e.db.URL, db.Pool{MaxOpen: 1})
	if err != nil {
		t.Fatalf("open a reader on the test database: %v", err)
	}
	sqlDB, err := d.Gorm.DB()
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return sqlDB
}

// hoSnap reads a deterministic digest of the database: every column of
// every row of each table, ordered by id. Secret hashes, versions, use
// counts and every timestamp are in it, so any write shows.
func hoSnap(t *testing.T, r *sql.DB) hoSnapshot {
	t.Helper()
	out := hoSnapshot{}
	for _, table := range hoTables {
		rows, err := r.Query("SELECT * FROM " + table + " ORDER BY id")
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		list := []string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("snapshot %s: %v", table, err)
			}
			var b strings.Builder
			for i, v := range vals {
				if i > 0 {
					b.WriteString(" | ")
				}
				b.WriteString(cols[i] + "=")
				switch v := v.(type) {
				case nil:
					b.WriteString("NULL")
				case []byte:
					b.WriteString(hex.EncodeToString(v))
				case time.Time:
					b.WriteString(v.UTC().Format(time.RFC3339Nano))
				default:
					fmt.Fprintf(&b, "%v", v)
				}
			}
			list = append(list, b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("snapshot %s: %v", table, err)
		}
		_ = rows.Close()
		out[table] = list
	}
	return out
}

// hoDiff describes how two snapshots differ, or returns "".
func hoDiff(before, after hoSnapshot) string {
	var b strings.Builder
	for _, table := range hoTables {
		was, now := before[table], after[table]
		if slices.Equal(was, now) {
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %d rows before, %d after", table, len(was), len(now))
		for _, row := range now {
			if !slices.Contains(was, row) {
				fmt.Fprintf(&b, "\n    + %s", row)
			}
		}
		for _, row := range was {
			if !slices.Contains(now, row) {
				fmt.Fprintf(&b, "\n    - %s", row)
			}
		}
	}
	return b.String()
}

// hoDo sends a raw request with full control over repeated headers; a
// header set to "" is not sent at all.
func hoDo(t *testing.T, e *env, method, path string, body io.Reader, header http.Header) *response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			if v != "" {
				req.Header.Add(k, v)
			}
		}
	}
	return e.do(t, req)
}

// hoCase is one hostile request and exactly how it must be answered.
type hoCase struct {
	name   string
	method string // POST unless set
	path   string // /graphql unless set
	key    string // sent as Authorization: Bearer; "" sends none
	query  string
	vars   map[string]any
	body   func() io.Reader  // the raw body, instead of query and vars
	header map[string]string // set over the defaults; "" removes one
	extra  http.Header       // added after, for repeated headers

	status int
	code   string // the first error's extensions.code; "" means no error at all
	field  string // the first error's extensions.field, when set
	reason string // the first error's extensions.reason, when set
	msg    string // a piece of the first error's message, when set
	check  func(t *testing.T, r *response)
}

func (tc hoCase) run(t *testing.T, e *env) *response {
	t.Helper()
	method, path := tc.method, tc.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/graphql"
	}
	header := http.Header{}
	if method == http.MethodPost || method == http.MethodPut {
		header.Set("Content-Type", "application/json")
	}
	if tc.key != "" {
		header.Set("Authorization", "Bearer "+tc.key)
	}
	for k, v := range tc.header {
		if v == "" {
			header.Del(k)
		} else {
			header.Set(k, v)
		}
	}
	for k, vs := range tc.extra {
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	var body io.Reader
	switch {
	case tc.body != nil:
		body = tc.body()
	case tc.query != "" && method != http.MethodGet:
		raw, err := json.Marshal(map[string]any{"query": tc.query, "variables": tc.vars})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		body = bytes.NewReader(raw)
	}
	return hoDo(t, e, method, path, body, header)
}

// hoIn wraps an input object as the $in variable.
func hoIn(in map[string]any) map[string]any { return map[string]any{"in": in} }

// hoGET returns /graphql with the operation and its variables in the query string.
func hoGET(query string, vars map[string]any) string {
	v := url.Values{}
	v.Set("query", query)
	if vars != nil {
		raw, _ := json.Marshal(vars)
		v.Set("variables", string(raw))
	}
	return "/graphql?" + v.Encode()
}

// hoRaw returns a constant raw body.
func hoRaw(s string) func() io.Reader {
	return func() io.Reader { return strings.NewReader(s) }
}

// hoNested returns { viewer { createdBy { … { id } } } } whose deepest
// field sits depth levels down.
func hoNested(depth int) string {
	return "{ viewer " + strings.Repeat("{ createdBy ", depth-2) + "{ id }" + strings.Repeat(" }", depth-2) + " }"
}

// hoNestedByFragments reaches the same depth through a chain of named
// fragments, each adding one level.
func hoNestedByFragments(depth int) string {
	n := depth - 2
	var b strings.Builder
	b.WriteString("query { viewer { ...F1 } }")
	for i := 1; i <= n; i++ {
		if i < n {
			fmt.Fprintf(&b, " fragment F%d on ApiKey { createdBy { ...F%d } }", i, i+1)
		} else {
			fmt.Fprintf(&b, " fragment F%d on ApiKey { createdBy { id } }", i)
		}
	}
	return b.String()
}

// hoNestedInline reaches the depth through inline fragments.
func hoNestedInline(depth int) string {
	return "{ viewer " + strings.Repeat("{ ... on ApiKey { createdBy ", depth-2) + "{ id }" + strings.Repeat(" } }", depth-2) + " }"
}

// hoAliases returns a query of n aliased __typename fields.
func hoAliases(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	return b.String() + " }"
}

// hoNulls checks that a nodes answer holds n nulls and no error.
func hoNulls(path string, n int) func(t *testing.T, r *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		got, ok := r.get(path).([]any)
		if !ok || len(got) != n {
			t.Fatalf("%s: want a list of %d nulls, got %s", path, n, r.Raw)
		}
		for i, v := range got {
			if v != nil {
				t.Errorf("%s[%d]: want null, got %v", path, i, v)
			}
		}
	}
}

// hoNull checks that a field answers null, present in the data.
func hoNull(path string) func(t *testing.T, r *response) {
	return func(t *testing.T, r *response) {
		t.Helper()
		if r.Data == nil {
			t.Fatalf("want data with %s null, got %s", path, r.Raw)
		}
		if _, present := r.Data[path]; !present || r.Data[path] != nil {
			t.Errorf("want %s: null, got %s", path, r.Raw)
		}
	}
}

func TestHostileInputs(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)

		// Acme, the caller's team.
		me := e.ok(e.admin, `{ viewer { id } team { id } }`, nil)
		adminID, acmeTeamID := me.str("viewer.id"), me.str("team.id")
		victimID, _ := e.newKey(e.admin, "victim") // the target of rotations
		revokedID, revoked := e.newKey(e.admin, "revoked")
		e.ok(e.admin, hoRevokeKey, hoIn(map[string]any{"id": revokedID}))
		expiredID, expired := e.newKey(e.admin, "expired")
		e.db.Exec(t, "UPDATE api_keys SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Hour), uuidOf(t, ids.APIKey, expiredID).String())
		_, devicesRead := e.newKey(e.admin, "devices read", "DEVICES_READ")
		r := e.ok(e.admin, hoCreateDevice, hoIn(map[string]any{"name": "camera", "serialNumber": "SN-1", "tags": []string{"line1"}}))
		deviceID, deviceToken := r.str("createDevice.device.id"), r.str("createDevice.token")
		r = e.ok(e.admin, hoCreateDevice, hoIn(map[string]any{"name": "old camera", "serialNumber": "SN-0"}))
		revokedDeviceID, revokedDeviceToken := r.str("createDevice.device.id"), r.str("createDevice.token")
		e.ok(e.admin, hoRevokeDevice, hoIn(map[string]any{"id": revokedDeviceID}))
		memberID := e.ok(e.admin, hoAddMember, hoIn(map[string]any{"email": "ada@example.com", "name": "Ada", "role": "VIEWER"})).str("addMember.member.id")
		r = e.ok(e.admin, hoCreateEnr, hoIn(map[string]any{"description": "line 1", "reusable": true, "maxUses": 10}))
		enrID, enrSecret := r.str("createEnrollmentKey.enrollmentKey.id"), r.str("createEnrollmentKey.secret")
		r = e.ok(e.admin, hoCreateEnr, hoIn(map[string]any{"description": "old"}))
		revokedEnrID, revokedEnrSecret := r.str("createEnrollmentKey.enrollmentKey.id"), r.str("createEnrollmentKey.secret")
		e.ok(e.admin, hoRevokeEnr, hoIn(map[string]any{"id": revokedEnrID}))

		// Globex, the other team.
		globex := e.bootstrap("Globex")
		gme := e.ok(globex, `{ viewer { id } team { id } }`, nil)
		globexAdminID, globexTeamID := gme.str("viewer.id"), gme.str("team.id")
		globexKeyID, _ := e.newKey(globex, "globex key")
		globexDeviceID := e.ok(globex, hoCreateDevice, hoIn(map[string]any{"name": "globex camera", "serialNumber": "SN-1"})).str("createDevice.device.id")
		globexMemberID := e.ok(globex, hoAddMember, hoIn(map[string]any{"email": "ada@example.com", "role": "ADMIN"})).str("addMember.member.id")
		globexEnrID := e.ok(globex, hoCreateEnr, hoIn(map[string]any{"description": "globex"})).str("createEnrollmentKey.enrollmentKey.id")
		globexEvents := e.ok(globex, `{ team { auditEvents(first: 1) { nodes { id } } } }`, nil).list("team.auditEvents.nodes")
		if len(globexEvents) != 1 {
			t.Fatalf("Globex has no audit event")
		}
		globexEventID := globexEvents[0].(map[string]any)["id"].(string)
		for _, id := range []string{adminID, acmeTeamID, victimID, deviceID, memberID, enrID, globexAdminID, globexTeamID, globexKeyID, globexDeviceID, globexMemberID, globexEnrID, globexEventID} {
			if id == "" {
				t.Fatalf("setup: an id is empty")
			}
		}

		// Well-formed ids of nothing at all.
		unknownKeyID := ids.Encode(ids.APIKey, ids.New())

		// Credential shapes built from the real admin key.
		admin := e.admin
		badChecksum := admin[:len(admin)-1] + flip(admin[len(admin)-1])
		wrongPrefix := "kx_" + admin[len("kp_"):]
		half := len(admin) / 2

		long := func(n int, c string) string { return strings.Repeat(c, n) }
		cidrs := make([]string, 51)
		for i := range cidrs {
			cidrs[i] = fmt.Sprintf("10.%d.0.0/16", i)
		}
		tags51 := make([]string, 51)
		for i := range tags51 {
			tags51[i] = fmt.Sprintf("t%d", i)
		}
		specs1001 := make([]map[string]any, 1001)
		for i := range specs1001 {
			specs1001[i] = map[string]any{"name": "d", "serialNumber": fmt.Sprintf("B-%d", i)}
		}
		ids101 := make([]string, 101)
		for i := range ids101 {
			ids101[i] = adminID
		}
		const (
			deepLimit  = "the limit is 12"
			introLimit = "from __schema or __type; the limit is 16"
			aliasLimit = "the limit is 30"
			costLimit  = "10000"
			tokenLimit = "5000"
		)
		gqlResponse := map[string]string{"Accept": "application/graphql-response+json"}
		costly := `{ team { members(first: 100) { nodes { apiKeys(first: 100) { nodes { id } } } } } }`
		var wideCost strings.Builder
		wideCost.WriteString("{ team {")
		for i := range 25 {
			fmt.Fprintf(&wideCost, " k%d: apiKeys(first: 100) { edges { node { createdBy { owner { id } } } } }", i)
		}
		wideCost.WriteString(" } }")
		var spreadAliases strings.Builder
		spreadAliases.WriteString("query { team { ...T } t2: team { ...T } } fragment T on Team {")
		for i := range 15 {
			fmt.Fprintf(&spreadAliases, " n%d: name", i)
		}
		spreadAliases.WriteString(" }")
		manyTokens := "{ " + strings.Repeat("__typename ", 5001) + "}"

		cases := []hoCase{
			// ---- Malformed and oversized bodies ----
			{name: "body not JSON", key: admin, body: hoRaw(`query { team { name } }`), status: 400, code: "BAD_USER_INPUT"},
			{name: "truncated JSON", key: admin, body: hoRaw(`{"query": "{ team { name }`), status: 400, code: "BAD_USER_INPUT"},
			{name: "batched array", key: admin, body: hoRaw(`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`), status: 400, code: "BAD_USER_INPUT", msg: "batch"},
			{name: "batched array after whitespace", key: admin, body: hoRaw(" \r\n\t[{\"query\":\"{ __typename }\"}]"), status: 400, code: "BAD_USER_INPUT", msg: "batch"},
			{name: "batched mutations", key: admin, body: hoRaw(`[{"query":` + quote(hoRename) + `}]`), status: 400, code: "BAD_USER_INPUT", msg: "batch"},
			{name: "JSON string", key: admin, body: hoRaw(`"{ team { name } }"`), status: 400, code: "BAD_USER_INPUT"},
			{name: "JSON number", key: admin, body: hoRaw(`42`), status: 400, code: "BAD_USER_INPUT"},
			{name: "JSON null", key: admin, body: hoRaw(`null`), status: 400, code: "BAD_USER_INPUT"},
			{name: "empty body", key: admin, body: hoRaw(``), status: 400, code: "BAD_USER_INPUT"},
			{name: "empty object (no query)", key: admin, body: hoRaw(`{}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "query misspelt", key: admin, body: hoRaw(`{"qeury":"{ __typename }"}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "query of type number", key: admin, body: hoRaw(`{"query":42}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "query of type object", key: admin, body: hoRaw(`{"query":{"team":"name"}}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "variables of type string", key: admin, body: hoRaw(`{"query":"{ __typename }","variables":"{}"}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "variables of type array", key: admin, body: hoRaw(`{"query":"{ __typename }","variables":[1,2]}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "operationName of type number", key: admin, body: hoRaw(`{"query":"{ __typename }","operationName":7}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "extensions of type string", key: admin, body: hoRaw(`{"query":"{ __typename }","extensions":"x"}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "two JSON objects", key: admin, body: hoRaw(`{"query":"{ __typename }"}{"query":"{ __typename }"}`), status: 400, code: "BAD_USER_INPUT"},
			{name: "trailing garbage", key: admin, body: hoRaw(`{"query":"{ __typename }"} garbage`), status: 400, code: "BAD_USER_INPUT"},
			{name: "byte order mark", key: admin, body: hoRaw("\xef\xbb\xbf{\"query\":\"{ __typename }\"}"), status: 400, code: "BAD_USER_INPUT"},
			{name: "body of 1 MiB + 1", key: admin, body: func() io.Reader { return bytes.NewReader(padded(t, 1<<20+1)) }, status: 413, code: "BAD_USER_INPUT"},
			{name: "chunked body of 1 MiB + 1", key: admin, body: func() io.Reader { return io.MultiReader(bytes.NewReader(padded(t, 1<<20+1))) }, status: 413, code: "BAD_USER_INPUT"},
			{name: "Content-Type text/plain", key: admin, query: hoRename, header: map[string]string{"Content-Type": "text/plain"}, status: 415, code: "BAD_USER_INPUT"},
			{name: "Content-Type multipart", key: admin, body: hoRaw("--b\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\"query\":\"{ __typename }\"}\r\n--b--\r\n"),
				header: map[string]string{"Content-Type": "multipart/form-data; boundary=b"}, status: 415, code: "BAD_USER_INPUT"},
			{name: "Content-Type form", key: admin, body: hoRaw(`query=%7B__typename%7D`), header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, code: "BAD_USER_INPUT"},
			{name: "Content-Type application/graphql", key: admin, body: hoRaw(`{ __typename }`), header: map[string]string{"Content-Type": "application/graphql"}, status: 415, code: "BAD_USER_INPUT"},
			{name: "no Content-Type", key: admin, query: hoRename, header: map[string]string{"Content-Type": ""}, status: 415, code: "BAD_USER_INPUT"},
			{name: "Accept text/html", key: admin, query: `{ team { name } }`, header: map[string]string{"Accept": "text/html"}, status: 406, code: "BAD_USER_INPUT"},
			{name: "Accept application/xml", key: admin, query: hoRename, header: map[string]string{"Accept": "application/xml"}, status: 406, code: "BAD_USER_INPUT"},
			{name: "PUT", method: http.MethodPut, key: admin, query: hoRename, status: 405, code: "BAD_USER_INPUT"},
			{name: "DELETE", method: http.MethodDelete, key: admin, status: 405, code: "BAD_USER_INPUT"},
			{name: "OPTIONS", method: http.MethodOptions, status: 204, code: ""},
			{name: "mutation over GET", method: http.MethodGet, path: hoGET(hoRename, nil), key: admin, status: 405, code: "BAD_USER_INPUT"},
			{name: "mutation picked by operationName over GET", method: http.MethodGet, key: admin,
				path: hoGET(`query A { __typename } mutation B { updateTeam(input: {name: "pwned"}) { team { name } } }`, nil) + "&operationName=B", status: 405, code: "BAD_USER_INPUT"},
			{name: "GET without a query", method: http.MethodGet, path: "/graphql", key: admin, status: 400, code: "BAD_USER_INPUT"},
			{name: "GET with variables not JSON", method: http.MethodGet, path: "/graphql?query=%7B__typename%7D&variables=%7Bnope", key: admin, status: 400, code: "BAD_USER_INPUT"},
			{name: "operationName of no operation", key: admin, body: hoRaw(`{"query":"query A { __typename }","operationName":"B"}`), status: 200, code: "BAD_USER_INPUT"},
			{name: "two operations and no operationName", key: admin, query: `query A { __typename } mutation B { updateTeam(input: {name: "pwned"}) { team { name } } }`, status: 200, code: "BAD_USER_INPUT"},
			{name: "syntax error", key: admin, query: `{ team { name `, status: 200, code: "BAD_USER_INPUT"},
			{name: "syntax error as graphql-response+json", key: admin, query: `{ team { name `, header: gqlResponse, status: 400, code: "BAD_USER_INPUT"},
			{name: "invalid UTF-8 in the document", key: admin, body: hoRaw("{\"query\":\"{ te\xffam { name } }\"}"), status: 200, code: "BAD_USER_INPUT"},
			{name: "unknown field", key: admin, query: `{ team { name secretHash } }`, status: 200, code: "BAD_USER_INPUT"},
			{name: "unknown field as graphql-response+json", key: admin, query: `{ team { name secretHash } }`, header: gqlResponse, status: 400, code: "BAD_USER_INPUT"},
			{name: "subscription", key: admin, query: `subscription { team { name } }`, status: 200, code: "BAD_USER_INPUT"},
			{name: "required variable missing", key: admin, query: hoCreateKey, status: 200, code: "BAD_USER_INPUT"},
			{name: "unknown input field (mass assignment)", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "teamId": globexTeamID}), status: 200, code: "BAD_USER_INPUT"},
			{name: "input not an object", key: admin, query: hoCreateKey, vars: map[string]any{"in": "name"}, status: 200, code: "BAD_USER_INPUT"},

			// ---- Wrongly typed inputs ----
			{name: "createApiKey name a number", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": 42}), status: 200, code: "BAD_USER_INPUT"},
			{name: "createApiKey name null", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": nil}), status: 200, code: "BAD_USER_INPUT"},
			{name: "createApiKey scopes unknown", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "scopes": []string{"ROOT"}}), status: 200, code: "BAD_USER_INPUT"},
			{name: "createApiKey scopes in lower case", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "scopes": []string{"api_keys_read"}}), status: 200, code: "BAD_USER_INPUT"},
			{name: "createApiKey expiresAt not a date", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "expiresAt": "not a date"}), status: 200, code: "BAD_USER_INPUT", field: "expiresAt"},
			{name: "createApiKey expiresAt a number", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "expiresAt": 1767225600}), status: 200, code: "BAD_USER_INPUT", field: "expiresAt"},
			{name: "rotateApiKey gracePeriodSeconds a string", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": victimID, "gracePeriodSeconds": "60"}), status: 200, code: "BAD_USER_INPUT"},
			{name: "rotateApiKey gracePeriodSeconds 1e20", key: admin, body: hoRaw(`{"query":` + quote(hoRotateKey) + `,"variables":{"in":{"id":"` + victimID + `","gracePeriodSeconds":1e20}}}`), status: 200, code: "BAD_USER_INPUT"},
			{name: "rotateApiKey gracePeriodSeconds 2147483648", key: admin, body: hoRaw(`{"query":` + quote(hoRotateKey) + `,"variables":{"in":{"id":"` + victimID + `","gracePeriodSeconds":2147483648}}}`), status: 200, code: "BAD_USER_INPUT"},
			// 2^55 + 3600: not a GraphQL Int (32 bits), and times a second it
			// wraps around int64 to exactly one hour.
			{name: "rotateApiKey gracePeriodSeconds 2^55+3600", key: admin, body: hoRaw(`{"query":` + quote(hoRotateKey) + `,"variables":{"in":{"id":"` + victimID + `","gracePeriodSeconds":36028797018967568}}}`), status: 200, code: "BAD_USER_INPUT"},
			{name: "rotateApiKey gracePeriodSeconds -1", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": victimID, "gracePeriodSeconds": -1}), status: 200, code: "BAD_USER_INPUT", field: "gracePeriodSeconds"},
			{name: "rotateApiKey gracePeriodSeconds 604801", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": victimID, "gracePeriodSeconds": 604801}), status: 200, code: "BAD_USER_INPUT", field: "gracePeriodSeconds"},
			{name: "first a string", key: admin, query: hoKeys, vars: map[string]any{"first": "10"}, status: 200, code: "BAD_USER_INPUT"},
			{name: "first a float", key: admin, query: hoKeys, vars: map[string]any{"first": 2.5}, status: 200, code: "BAD_USER_INPUT"},
			{name: "first 101", key: admin, query: hoKeys, vars: map[string]any{"first": 101}, status: 200, code: "BAD_USER_INPUT", field: "first"},
			{name: "first -1", key: admin, query: hoKeys, vars: map[string]any{"first": -1}, status: 200, code: "BAD_USER_INPUT", field: "first"},
			{name: "first 1000 as a literal", key: admin, query: `{ team { apiKeys(first: 1000) { totalCount } } }`, status: 200, code: "BAD_USER_INPUT", field: "first"},
			{name: "first and last", key: admin, query: hoKeys, vars: map[string]any{"first": 1, "last": 1}, status: 200, code: "BAD_USER_INPUT", field: "last"},
			{name: "after a forged cursor", key: admin, query: hoKeys, vars: map[string]any{"after": "' OR 1=1 --"}, status: 200, code: "BAD_USER_INPUT", field: "after"},
			{name: "filter status in lower case", key: admin, query: hoKeys, vars: map[string]any{"filter": map[string]any{"status": "active"}}, status: 200, code: "BAD_USER_INPUT"},
			{name: "devices filter status in lower case", key: admin, query: hoDevices, vars: map[string]any{"filter": map[string]any{"status": "online"}}, status: 200, code: "BAD_USER_INPUT"},
			{name: "createDevices devices null", key: admin, query: hoCreateDevices, vars: hoIn(map[string]any{"devices": nil}), status: 200, code: "BAD_USER_INPUT"},
			{name: "createDevices devices empty", key: admin, query: hoCreateDevices, vars: hoIn(map[string]any{"devices": []any{}}), status: 200, code: "BAD_USER_INPUT", field: "devices"},
			{name: "createDevices 1001 devices", key: admin, query: hoCreateDevices, vars: hoIn(map[string]any{"devices": specs1001}), status: 200, code: "BAD_USER_INPUT", field: "devices"},
			{name: "createEnrollmentKey maxUses -1", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"reusable": true, "maxUses": -1}), status: 200, code: "BAD_USER_INPUT", field: "maxUses"},
			{name: "createEnrollmentKey maxUses 1000001", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"reusable": true, "maxUses": 1000001}), status: 200, code: "BAD_USER_INPUT", field: "maxUses"},
			{name: "createEnrollmentKey maxUses 5 not reusable", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"maxUses": 5}), status: 200, code: "BAD_USER_INPUT", field: "maxUses"},
			{name: "createEnrollmentKey reusable a string", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"reusable": "true"}), status: 200, code: "BAD_USER_INPUT"},
			{name: "addMember role unknown", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "eve@example.com", "role": "SUPERUSER"}), status: 200, code: "BAD_USER_INPUT"},
			{name: "addMember role in lower case", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "eve@example.com", "role": "owner"}), status: 200, code: "BAD_USER_INPUT"},
			{name: "updateMember status in lower case", key: admin, query: hoUpdateMember, vars: hoIn(map[string]any{"id": memberID, "status": "active"}), status: 200, code: "BAD_USER_INPUT"},
			{name: "nodes of 101 ids", key: admin, query: hoNodes, vars: map[string]any{"ids": ids101}, status: 200, code: "BAD_USER_INPUT", field: "ids"},

			// ---- Over-limit text ----
			{name: "createApiKey name of 201", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": long(201, "é")}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createApiKey description of 2001", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "description": long(2001, "d")}), status: 200, code: "BAD_USER_INPUT", field: "description"},
			{name: "createApiKey 51 allowedCidrs", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "allowedCidrs": cidrs}), status: 200, code: "BAD_USER_INPUT", field: "allowedCidrs"},
			{name: "createApiKey allowedCidrs SQL", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "allowedCidrs": []string{"0.0.0.0/0'; --"}}), status: 200, code: "BAD_USER_INPUT", field: "allowedCidrs"},
			{name: "updateApiKey name of 201", key: admin, query: hoUpdateKey, vars: hoIn(map[string]any{"id": victimID, "name": long(201, "n")}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "updateTeam name of 201", key: admin, query: hoUpdateTeam, vars: hoIn(map[string]any{"name": long(201, "🔑")}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createDevice 51 tags", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X-1", "tags": tags51}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "createDevice tag of 65", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X-1", "tags": []string{long(65, "t")}}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "createDevice tag with a comma", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X-1", "tags": []string{"a,b"}}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "createDevice serial of 201", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": long(201, "s")}), status: 200, code: "BAD_USER_INPUT", field: "serialNumber"},
			{name: "createDevice model of 201", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X-1", "model": long(201, "m")}), status: 200, code: "BAD_USER_INPUT", field: "model"},
			{name: "createDevices name of 201 in the batch", key: admin, query: hoCreateDevices, vars: hoIn(map[string]any{"devices": []any{
				map[string]any{"name": "ok", "serialNumber": "B-1"}, map[string]any{"name": long(201, "n"), "serialNumber": "B-2"},
			}}), status: 200, code: "BAD_USER_INPUT", field: "devices.1.name"},
			{name: "updateDevice 51 tags", key: admin, query: hoUpdateDevice, vars: hoIn(map[string]any{"id": deviceID, "tags": tags51}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "addMember email of 255", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": long(243, "a") + "@example.com", "role": "VIEWER"}), status: 200, code: "BAD_USER_INPUT", field: "email"},
			{name: "addMember name of 201", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "eve@example.com", "name": long(201, "n"), "role": "VIEWER"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "addMember email with a display name", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "Eve <eve@example.com>", "role": "VIEWER"}), status: 200, code: "BAD_USER_INPUT", field: "email"},
			{name: "deviceHeartbeat firmwareVersion of 201", key: deviceToken, query: hoHeartbeat, vars: hoIn(map[string]any{"firmwareVersion": long(201, "1")}), status: 200, code: "BAD_USER_INPUT", field: "firmwareVersion"},
			{name: "createEnrollmentKey description of 2001", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"description": long(2001, "d")}), status: 200, code: "BAD_USER_INPUT", field: "description"},
			{name: "createEnrollmentKey 51 tags", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"tags": tags51}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "enrollDevice serial of 201 with a live key", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": enrSecret, "serialNumber": long(201, "s")}), status: 200, code: "BAD_USER_INPUT", field: "serialNumber"},
			{name: "devices filter tag with a comma", key: admin, query: hoDevices, vars: map[string]any{"filter": map[string]any{"tag": "line1,line2"}}, status: 200, code: "BAD_USER_INPUT", field: "filter.tag"},

			// ---- Control characters ----
			{name: "createApiKey name with NUL", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "a\x00b"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createApiKey name with ESC", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "\x1b[31mred"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createApiKey name blank", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": " \u3000 "}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createApiKey description with NUL", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "description": "a\x00b"}), status: 200, code: "BAD_USER_INPUT", field: "description"},
			{name: "updateTeam name with CR", key: admin, query: hoUpdateTeam, vars: hoIn(map[string]any{"name": "Acme\rInc"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "updateDevice name with DEL", key: admin, query: hoUpdateDevice, vars: hoIn(map[string]any{"id": deviceID, "name": "cam\x7f"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createDevice serial with a tab", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X\t1"}), status: 200, code: "BAD_USER_INPUT", field: "serialNumber"},
			{name: "createDevice tag with BEL", key: admin, query: hoCreateDevice, vars: hoIn(map[string]any{"name": "x", "serialNumber": "X-1", "tags": []string{"ding\a"}}), status: 200, code: "BAD_USER_INPUT", field: "tags"},
			{name: "addMember name with NEL (C1)", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "eve@example.com", "name": "Eve\u0085", "role": "VIEWER"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "addMember email with NUL", key: admin, query: hoAddMember, vars: hoIn(map[string]any{"email": "eve\x00@example.com", "role": "VIEWER"}), status: 200, code: "BAD_USER_INPUT", field: "email"},
			{name: "updateMember name with a newline", key: admin, query: hoUpdateMember, vars: hoIn(map[string]any{"id": memberID, "name": "Ada\nAdmin"}), status: 200, code: "BAD_USER_INPUT", field: "name"},
			{name: "createEnrollmentKey description with ESC", key: admin, query: hoCreateEnr, vars: hoIn(map[string]any{"description": "\x1b]0;pwned\x07"}), status: 200, code: "BAD_USER_INPUT", field: "description"},
			{name: "deviceHeartbeat firmwareVersion with a newline", key: deviceToken, query: hoHeartbeat, vars: hoIn(map[string]any{"firmwareVersion": "1.0\n2.0"}), status: 200, code: "BAD_USER_INPUT", field: "firmwareVersion"},

			// ---- Foreign-team ids on every mutation that takes one ----
			{name: "updateApiKey foreign", key: admin, query: hoUpdateKey, vars: hoIn(map[string]any{"id": globexKeyID, "name": "mine now"}), status: 200, code: "NOT_FOUND"},
			{name: "rotateApiKey foreign", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": globexKeyID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeApiKey foreign", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": globexKeyID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeApiKey foreign team's admin", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": globexAdminID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeApiKey from the other side", key: globex, query: hoRevokeKey, vars: hoIn(map[string]any{"id": adminID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeApiKey unknown", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": unknownKeyID}), status: 200, code: "NOT_FOUND"},
			{name: "updateDevice foreign", key: admin, query: hoUpdateDevice, vars: hoIn(map[string]any{"id": globexDeviceID, "name": "mine now"}), status: 200, code: "NOT_FOUND"},
			{name: "rotateDeviceToken foreign", key: admin, query: hoRotateDevice, vars: hoIn(map[string]any{"id": globexDeviceID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeDevice foreign", key: admin, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": globexDeviceID}), status: 200, code: "NOT_FOUND"},
			{name: "revokeEnrollmentKey foreign", key: admin, query: hoRevokeEnr, vars: hoIn(map[string]any{"id": globexEnrID}), status: 200, code: "NOT_FOUND"},
			{name: "updateMember foreign", key: admin, query: hoUpdateMember, vars: hoIn(map[string]any{"id": globexMemberID, "role": "VIEWER"}), status: 200, code: "NOT_FOUND"},
			{name: "removeMember foreign", key: admin, query: hoRemoveMember, vars: hoIn(map[string]any{"id": globexMemberID}), status: 200, code: "NOT_FOUND"},
			{name: "createApiKey ownerId foreign", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "ownerId": globexMemberID}), status: 200, code: "NOT_FOUND"},
			{name: "node foreign key", key: admin, query: hoNode, vars: map[string]any{"id": globexKeyID}, status: 200, code: "", check: hoNull("node")},
			{name: "node foreign team", key: admin, query: hoNode, vars: map[string]any{"id": globexTeamID}, status: 200, code: "", check: hoNull("node")},
			{name: "node foreign audit event", key: admin, query: hoNode, vars: map[string]any{"id": globexEventID}, status: 200, code: "", check: hoNull("node")},
			{name: "nodes foreign of every type", key: admin, query: hoNodes,
				vars:   map[string]any{"ids": []string{globexTeamID, globexAdminID, globexKeyID, globexDeviceID, globexMemberID, globexEnrID, globexEventID}},
				status: 200, code: "", check: hoNulls("nodes", 7)},
			{name: "other team's key reads node of ours", key: globex, query: hoNode, vars: map[string]any{"id": adminID}, status: 200, code: "", check: hoNull("node")},

			// ---- Ids of the wrong type, and garbage ids ----
			{name: "updateApiKey a mem_ id", key: admin, query: hoUpdateKey, vars: hoIn(map[string]any{"id": memberID, "name": "x"}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "rotateApiKey a team_ id", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": acmeTeamID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeApiKey a dev_ id", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": deviceID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "updateDevice a key_ id", key: admin, query: hoUpdateDevice, vars: hoIn(map[string]any{"id": victimID, "name": "x"}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "rotateDeviceToken an enr_ id", key: admin, query: hoRotateDevice, vars: hoIn(map[string]any{"id": enrID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeDevice a mem_ id", key: admin, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": memberID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeEnrollmentKey a dev_ id", key: admin, query: hoRevokeEnr, vars: hoIn(map[string]any{"id": deviceID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "updateMember a key_ id", key: admin, query: hoUpdateMember, vars: hoIn(map[string]any{"id": victimID, "name": "x"}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "removeMember a dev_ id", key: admin, query: hoRemoveMember, vars: hoIn(map[string]any{"id": deviceID}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "createApiKey ownerId a key_ id", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "ownerId": victimID}), status: 200, code: "BAD_USER_INPUT", field: "ownerId"},
			{name: "revokeApiKey SQL as id", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": "key_' OR '1'='1"}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeApiKey empty id", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": ""}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeApiKey raw UUID", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": uuidOf(t, ids.APIKey, victimID).String()}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeApiKey id past 128 bits", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": "key_zzzzzzzzzzzzzzzzzzzzzz"}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeDevice id of 10 KB", key: admin, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": "dev_" + long(10000, "A")}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "revokeApiKey id a number", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": 12345}), status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "node garbage id", key: admin, query: hoNode, vars: map[string]any{"id": "<script>"}, status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "node unknown type prefix", key: admin, query: hoNode, vars: map[string]any{"id": "usr_" + adminID[len("key_"):]}, status: 200, code: "BAD_USER_INPUT", field: "id"},
			{name: "audit filter actorId a mem_ id", key: admin, query: hoAudit, vars: map[string]any{"filter": map[string]any{"actorId": memberID}}, status: 200, code: "BAD_USER_INPUT", field: "actorId"},

			// ---- Credential shapes ----
			{name: "Bearer with a wrong prefix", key: wrongPrefix, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer with a wrong checksum", key: badChecksum, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer one character too long", key: admin + "A", query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer one character too short", key: admin[:len(admin)-1], query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer lower-cased", key: strings.ToLower(admin), query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer upper-cased", key: strings.ToUpper(admin), query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer with a space inside", key: admin[:half] + " " + admin[half:], query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer with a tab inside", key: admin[:half] + "\t" + admin[half:], query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer followed by junk", key: admin + " junk", query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer of 8 KB", key: "kp_" + long(8000, "A"), query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer a JWT", key: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.", query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer SQL", key: "' OR '1'='1", query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer an enrollment key", key: enrSecret, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "X-API-Key an enrollment key", header: map[string]string{"X-API-Key": enrSecret}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer a revoked key", key: revoked, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "REVOKED"},
			{name: "Bearer an expired key", key: expired, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "EXPIRED"},
			{name: "Bearer a revoked device token", key: revokedDeviceToken, query: hoHeartbeat, vars: hoIn(map[string]any{"firmwareVersion": "9"}), status: 401, code: "UNAUTHENTICATED", reason: "REVOKED"},
			{name: "revoked key over GET", method: http.MethodGet, path: hoGET(`{ team { name } }`, nil), key: revoked, status: 401, code: "UNAUTHENTICATED", reason: "REVOKED"},
			{name: "bad key with a malformed body", key: badChecksum, body: hoRaw(`{"query":`), status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Authorization Basic", header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Authorization Token scheme", header: map[string]string{"Authorization": "Token " + admin}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Authorization bare key, no scheme", header: map[string]string{"Authorization": admin}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "Bearer with no token", header: map[string]string{"Authorization": "Bearer"}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "X-API-Key garbage", header: map[string]string{"X-API-Key": "garbage"}, query: hoRename, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "two Authorization headers", query: `{ viewer { id } }`,
				extra: http.Header{"Authorization": {"Bearer " + admin, "Bearer garbage"}}, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "X-API-Key split across two headers", query: `{ viewer { id } }`,
				extra: http.Header{"X-Api-Key": {admin[:half], admin[half:]}}, status: 401, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "device token reads team", key: deviceToken, query: `{ team { name } }`, status: 200, code: "FORBIDDEN"},
			{name: "device token creates a key", key: deviceToken, query: hoCreateKey, vars: hoIn(map[string]any{"name": "from a device"}), status: 200, code: "FORBIDDEN"},
			{name: "device token revokes itself", key: deviceToken, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": deviceID}), status: 200, code: "FORBIDDEN"},
			{name: "API key sends a heartbeat", key: admin, query: hoHeartbeat, vars: hoIn(map[string]any{"firmwareVersion": "9"}), status: 200, code: "FORBIDDEN"},
			{name: "read-only key revokes a device", key: devicesRead, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": deviceID}), status: 200, code: "FORBIDDEN",
				check: func(t *testing.T, r *response) {
					if got := r.Errors[0].Extensions["scope"]; got != "DEVICES_WRITE" {
						t.Errorf("scope %v, want DEVICES_WRITE", got)
					}
				}},
			{name: "read-only key reads a key by node", key: devicesRead, query: hoNode, vars: map[string]any{"id": adminID}, status: 200, code: "FORBIDDEN"},
			{name: "read-only key creates a key with more scopes", key: devicesRead, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "scopes": []string{"DEVICES_WRITE"}}), status: 200, code: "FORBIDDEN"},
			{name: "personal key beyond the owner's role", key: admin, query: hoCreateKey, vars: hoIn(map[string]any{"name": "x", "ownerId": memberID, "scopes": []string{"API_KEYS_WRITE"}}), status: 200, code: "BAD_USER_INPUT", field: "scopes"},
			{name: "no credential, a mutation", query: hoRename, status: 200, code: "UNAUTHENTICATED"},
			{name: "enrollDevice with garbage", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": "kpe_garbage", "serialNumber": "E-1"}), status: 200, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "enrollDevice with an API key", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": admin, "serialNumber": "E-1"}), status: 200, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "enrollDevice with a device token", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": deviceToken, "serialNumber": "E-1"}), status: 200, code: "UNAUTHENTICATED", reason: "INVALID"},
			{name: "enrollDevice with a revoked key", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": revokedEnrSecret, "serialNumber": "E-1"}), status: 200, code: "UNAUTHENTICATED", reason: "REVOKED"},
			{name: "enrollDevice with a wrong checksum", query: hoEnroll, vars: hoIn(map[string]any{"enrollmentKey": enrSecret[:len(enrSecret)-1] + flip(enrSecret[len(enrSecret)-1]), "serialNumber": "E-1"}), status: 200, code: "UNAUTHENTICATED", reason: "INVALID"},

			// ---- Deep, wide and aliased queries ----
			{name: "depth 12 is allowed", key: admin, query: hoNested(12), status: 200, code: ""},
			{name: "depth 13", key: admin, query: hoNested(13), status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "depth 13 through named fragments", key: admin, query: hoNestedByFragments(13), status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "depth 13 through inline fragments", key: admin, query: hoNestedInline(13), status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			// Introspection is measured from __schema or __type against a
			// bound of its own, 16, and counts one level of the data graph.
			{name: "introspection 13 deep is allowed", query: `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }`,
				status: 200, code: ""},
			{name: "introspection 16 deep is allowed", key: admin, query: `{ __type(name: "Team") { ` + strings.Repeat("ofType { ", 14) + "name" + strings.Repeat(" }", 14) + ` } }`,
				status: 200, code: ""},
			{name: "introspection 17 deep", key: admin, query: `{ __type(name: "Team") { ` + strings.Repeat("ofType { ", 15) + "name" + strings.Repeat(" }", 15) + ` } }`,
				status: 200, code: "QUERY_TOO_COMPLEX", msg: introLimit},
			{name: "ofType 50 deep", key: admin, query: `{ __schema { types { ` + strings.Repeat("ofType { ", 50) + "name" + strings.Repeat(" }", 50) + ` } } }`,
				status: 200, code: "QUERY_TOO_COMPLEX", msg: introLimit},
			{name: "depth 13 beside introspection", key: admin, query: "{ __schema { queryType { name } } " + strings.TrimPrefix(hoNested(13), "{"),
				status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "depth 100", key: admin, query: hoNested(100), status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "depth 13 as graphql-response+json", key: admin, query: hoNested(13), header: gqlResponse, status: 400, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "depth 13 over GET", method: http.MethodGet, path: hoGET(hoNested(13), nil), key: admin, status: 200, code: "QUERY_TOO_COMPLEX", msg: deepLimit},
			{name: "30 aliases are allowed", key: admin, query: hoAliases(30), status: 200, code: ""},
			{name: "31 aliases", key: admin, query: hoAliases(31), status: 200, code: "QUERY_TOO_COMPLEX", msg: aliasLimit},
			{name: "31 aliases through a fragment spread twice", key: admin, query: spreadAliases.String(), status: 200, code: "QUERY_TOO_COMPLEX", msg: aliasLimit},
			{name: "cost of nested connections", key: admin, query: costly, status: 200, code: "QUERY_TOO_COMPLEX", msg: costLimit},
			{name: "cost of nested connections with last", key: admin, query: strings.Replace(costly, "members(first: 100)", "members(last: 100)", 1), status: 200, code: "QUERY_TOO_COMPLEX", msg: costLimit},
			{name: "cost with first as a variable", key: admin, query: `query($n: Int) { team { members(first: $n) { nodes { apiKeys(first: $n) { nodes { id } } } } } }`,
				vars: map[string]any{"n": 100}, status: 200, code: "QUERY_TOO_COMPLEX", msg: costLimit},
			{name: "cost of 25 aliased connections", key: admin, query: wideCost.String(), status: 200, code: "QUERY_TOO_COMPLEX", msg: costLimit},
			{name: "cost as graphql-response+json", key: admin, query: costly, header: gqlResponse, status: 400, code: "QUERY_TOO_COMPLEX", msg: costLimit},
			{name: "more than 5000 tokens", key: admin, query: manyTokens, status: 200, code: "QUERY_TOO_COMPLEX", msg: tokenLimit},
			{name: "more than 5000 tokens as graphql-response+json", key: admin, query: manyTokens, header: gqlResponse, status: 400, code: "QUERY_TOO_COMPLEX", msg: tokenLimit},
			{name: "fragment cycle", key: admin, query: `{ viewer { ...A } } fragment A on ApiKey { createdBy { ...B } } fragment B on ApiKey { createdBy { ...A } }`, status: 200, code: "BAD_USER_INPUT"},
			{name: "fragment spreading itself", key: admin, query: `{ viewer { ...A } } fragment A on ApiKey { id createdBy { ...A } }`, status: 200, code: "BAD_USER_INPUT"},
			{name: "directive repeated", key: admin, query: `{ team { name @skip(if: false) @skip(if: false) } }`, status: 200, code: "BAD_USER_INPUT"},

			// ---- Repeats that change nothing ----
			{name: "revoke a revoked key again", key: admin, query: hoRevokeKey, vars: hoIn(map[string]any{"id": revokedID}), status: 200, code: ""},
			{name: "revoke a revoked device again", key: admin, query: hoRevokeDevice, vars: hoIn(map[string]any{"id": revokedDeviceID}), status: 200, code: ""},
			{name: "revoke a revoked enrollment key again", key: admin, query: hoRevokeEnr, vars: hoIn(map[string]any{"id": revokedEnrID}), status: 200, code: ""},
			{name: "rotate a revoked key", key: admin, query: hoRotateKey, vars: hoIn(map[string]any{"id": revokedID}), status: 200, code: "FAILED_PRECONDITION"},
			{name: "rotate a revoked device", key: admin, query: hoRotateDevice, vars: hoIn(map[string]any{"id": revokedDeviceID}), status: 200, code: "FAILED_PRECONDITION"},
		}
		if len(cases) < 70 {
			t.Fatalf("only %d cases", len(cases))
		}
		t.Logf("%d hostile cases on %s", len(cases), d)

		reader := hoReader(t, e)
		seen := map[string]bool{}
		for _, tc := range cases {
			if seen[tc.name] {
				t.Fatalf("two cases are named %q", tc.name)
			}
			seen[tc.name] = true
			t.Run(tc.name, func(t *testing.T) {
				before := hoSnap(t, reader)
				r := tc.run(t, e)
				after := hoSnap(t, reader)
				t.Logf("answered %d: %.300s", r.Status, r.Raw)
				if diff := hoDiff(before, after); diff != "" {
					t.Errorf("the database changed:%s", diff)
				}

				if r.Status >= 500 {
					t.Errorf("a 5xx: %d: %.500s", r.Status, r.Raw)
				}
				if r.Status != tc.status {
					t.Errorf("status %d, want %d: %.500s", r.Status, tc.status, r.Raw)
				}
				for _, ge := range r.Errors {
					if ge.code() == "" || ge.code() == "INTERNAL" {
						t.Errorf("an error with code %q: %.500s", ge.code(), r.Raw)
					}
				}
				if tc.code == "" {
					if len(r.Errors) > 0 {
						t.Errorf("want no error, got %.500s", r.Raw)
					}
				} else {
					if len(r.Errors) == 0 {
						t.Fatalf("want %s, got no error: %.500s", tc.code, r.Raw)
					}
					if got := r.code(); got != tc.code {
						t.Errorf("code %q, want %q: %.500s", got, tc.code, r.Raw)
					}
				}
				first := gqlError{}
				if len(r.Errors) > 0 {
					first = r.Errors[0]
				}
				if tc.field != "" && first.Extensions["field"] != tc.field {
					t.Errorf("field %v, want %q: %.500s", first.Extensions["field"], tc.field, r.Raw)
				}
				if tc.reason != "" && first.Extensions["reason"] != tc.reason {
					t.Errorf("reason %v, want %q: %.500s", first.Extensions["reason"], tc.reason, r.Raw)
				}
				if tc.msg != "" && !strings.Contains(first.Message, tc.msg) {
					t.Errorf("message %q does not say %q", first.Message, tc.msg)
				}
				if r.Status == http.StatusUnauthorized {
					if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
						t.Errorf("WWW-Authenticate %q", got)
					}
					if r.Data != nil {
						t.Errorf("a refused credential executed something: %.500s", r.Raw)
					}
				}
				if tc.check != nil {
					tc.check(t, r)
				}
			})
		}

		// The server still answers, and the team is as it was.
		if got := e.ok(e.admin, `{ team { name } }`, nil).str("team.name"); got != "Acme" {
			t.Errorf("team name %q after the suite, want Acme", got)
		}
	})
}

// hoOddNames are names that must be stored and read back exactly as sent.
var hoOddNames = []string{
	`'; DROP TABLE api_keys; --`,
	`Robert"); DELETE FROM teams;--`,
	`' OR '1'='1`,
	"名前🔑",
	"\u202e",
	"%_\\",
	`<script>alert(1)</script>`,
	"null",
	"👩‍💻 zero\u200bwidth",
	"$1 ${x} {{7*7}}",
}

func TestOddTextIsStoredVerbatim(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		const nodeQ = `query($id: ID!) { node(id: $id) { id ... on ApiKey { name description } ... on Device { name serialNumber tags } ... on Member { email memberName: name } } }`
		const searchQ = `query($s: String) { team { apiKeys(first: 100, filter: {search: $s}) { totalCount nodes { id name } } } }`

		keys := map[string]string{} // id → name
		for _, name := range hoOddNames {
			r := e.ok(e.admin, hoCreateKey, hoIn(map[string]any{"name": name}))
			id := r.str("createApiKey.apiKey.id")
			if got := r.str("createApiKey.apiKey.name"); got != name {
				t.Errorf("createApiKey %q answered the name %q", name, got)
			}
			keys[id] = name
		}
		const desc = "a\tb\r\nc\n'; DROP TABLE audit_events; --"
		descID := e.ok(e.admin, hoCreateKey, hoIn(map[string]any{"name": "with a description", "description": desc})).str("createApiKey.apiKey.id")

		for id, name := range keys {
			r := e.ok(e.admin, nodeQ, map[string]any{"id": id})
			if got := r.str("node.name"); got != name {
				t.Errorf("key %s read back as %q, want %q", id, got, name)
			}
			// Search finds exactly that key: LIKE wildcards and quotes in
			// the text are text.
			r = e.ok(e.admin, searchQ, map[string]any{"s": name})
			nodes := r.list("team.apiKeys.nodes")
			if len(nodes) != 1 || nodes[0].(map[string]any)["id"] != id {
				t.Errorf("search %q found %s, want only %s", name, r.Raw, id)
			}
		}
		if got := e.ok(e.admin, nodeQ, map[string]any{"id": descID}).str("node.description"); got != desc {
			t.Errorf("description read back as %q, want %q", got, desc)
		}
		if n := e.ok(e.admin, searchQ, map[string]any{"s": "%"}).get("team.apiKeys.totalCount"); n != float64(1) {
			t.Errorf("search %% counts %v keys, want 1", n)
		}
		// "_" is in `api_keys`, in "%_\\" and in the description's `audit_events`.
		if n := e.ok(e.admin, searchQ, map[string]any{"s": "_"}).get("team.apiKeys.totalCount"); n != float64(3) {
			t.Errorf("search _ counts %v keys, want 3", n)
		}
		if n := e.ok(e.admin, searchQ, map[string]any{"s": "drop table"}).get("team.apiKeys.totalCount"); n != float64(2) {
			t.Errorf("search 'drop table' counts %v keys, want 2 (a name and a description)", n)
		}

		// A device with odd text everywhere, and tags that look like
		// patterns: a tag filter matches the tag exactly.
		tags := []string{"'; --", "%", "名前", "_"}
		r := e.ok(e.admin, hoCreateDevice, hoIn(map[string]any{"name": `Robert"); DELETE FROM devices;--`, "serialNumber": "%_\\'\"", "tags": tags}))
		devID := r.str("createDevice.device.id")
		e.ok(e.admin, hoCreateDevice, hoIn(map[string]any{"name": "plain", "serialNumber": "PLAIN-1", "tags": []string{"plain"}}))
		r = e.ok(e.admin, nodeQ, map[string]any{"id": devID})
		if r.str("node.name") != `Robert"); DELETE FROM devices;--` || r.str("node.serialNumber") != "%_\\'\"" || !slices.Equal(strs(r.get("node.tags")), tags) {
			t.Errorf("device read back as %s", r.Raw)
		}
		for _, tag := range tags {
			r := e.ok(e.admin, hoDevices, map[string]any{"filter": map[string]any{"tag": tag}})
			nodes := r.list("team.devices.nodes")
			if len(nodes) != 1 || nodes[0].(map[string]any)["id"] != devID {
				t.Errorf("tag %q found %s, want only %s", tag, r.Raw, devID)
			}
		}
		for _, s := range []string{"%_\\", "delete from devices"} {
			r := e.ok(e.admin, hoDevices, map[string]any{"filter": map[string]any{"search": s}})
			nodes := r.list("team.devices.nodes")
			if len(nodes) != 1 || nodes[0].(map[string]any)["id"] != devID {
				t.Errorf("device search %q found %s, want only %s", s, r.Raw, devID)
			}
		}

		// Members with odd names and emails that validate accepts.
		members := map[string][2]string{}
		for _, m := range [][2]string{
			{"o'brien+keys@example.com", `Robert'); DROP TABLE members;--`},
			{"😀@example.com", "名前 \u202e"},
			{"a%b_c@example.com", "%_\\"},
		} {
			id := e.ok(e.admin, hoAddMember, hoIn(map[string]any{"email": m[0], "name": m[1], "role": "VIEWER"})).str("addMember.member.id")
			members[id] = m
		}
		for id, m := range members {
			r := e.ok(e.admin, nodeQ, map[string]any{"id": id})
			if r.str("node.email") != m[0] || r.str("node.memberName") != m[1] {
				t.Errorf("member read back as %s, want %q %q", r.Raw, m[0], m[1])
			}
			r = e.ok(e.admin, `query($s: String) { team { members(filter: {search: $s}) { nodes { id } } } }`, map[string]any{"s": m[0]})
			nodes := r.list("team.members.nodes")
			if len(nodes) != 1 || nodes[0].(map[string]any)["id"] != id {
				t.Errorf("member search %q found %s, want only %s", m[0], r.Raw, id)
			}
		}

		// The team itself, renamed to SQL.
		const teamName = `Acme'; DROP TABLE teams; --`
		if got := e.ok(e.admin, hoUpdateTeam, hoIn(map[string]any{"name": teamName})).str("updateTeam.team.name"); got != teamName {
			t.Errorf("updateTeam answered %q", got)
		}
		if got := e.ok(e.admin, `{ team { name } }`, nil).str("team.name"); got != teamName {
			t.Errorf("team read back as %q", got)
		}

		// Every table is intact, with exactly the rows the API made: the
		// bootstrap's team and key (and their two events), then the keys,
		// devices, members and the rename above, one event each.
		for table, want := range map[string]int64{
			"teams": 1, "api_keys": int64(1 + len(hoOddNames) + 1), "devices": 2, "members": 3, "enrollment_keys": 0,
			"audit_events": int64(2 + len(hoOddNames) + 1 + 2 + 3 + 1),
		} {
			if got := e.db.Count(t, table, ""); got != want {
				t.Errorf("%s holds %d rows, want %d", table, got, want)
			}
		}
	})
}
