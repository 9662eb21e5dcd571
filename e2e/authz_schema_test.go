package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The schema-driven test of the read rule: every field that returns a Node
// type (directly, in a list or in a connection) is reached, by the
// shortest path the key may take, with a key lacking that type's read
// scope, and must answer null with FORBIDDEN naming the scope. The fields
// come from schema.graphqls, so a field added later is tested without
// anyone adding a case.

// readScope is the scope that reading each Node type needs. A Node type
// missing here fails the test: say what reading it needs first.
var readScope = map[string]string{
	"Team":          "",
	"ApiKey":        "API_KEYS_READ",
	"Device":        "DEVICES_READ",
	"EnrollmentKey": "DEVICES_READ",
	"Member":        "MEMBERS_READ",
	"AuditEvent":    "AUDIT_READ",
}

// idPrefix is how each Node type's ids begin, to find its values in a body.
var idPrefix = map[string]string{
	"ApiKey": `"key_`, "Device": `"dev_`, "EnrollmentKey": `"enr_`, "Member": `"mem_`, "AuditEvent": `"evt_`,
}

// writeOf is the WRITE scope that implies each READ scope.
var writeOf = map[string]string{
	"API_KEYS_READ": "API_KEYS_WRITE", "DEVICES_READ": "DEVICES_WRITE", "MEMBERS_READ": "MEMBERS_WRITE",
}

// ownObject lists the fields that return the caller's own object, which it
// may read whatever its scopes; every other Node field needs its type's scope.
var ownObject = map[string]string{
	"Query.viewer":                  "the calling key itself",
	"EnrollDevicePayload.device":    "the device that just enrolled, answering its own enrollment",
	"DeviceHeartbeatPayload.device": "the device that sent the heartbeat",
}

var allScopes = []string{"API_KEYS_READ", "API_KEYS_WRITE", "DEVICES_READ", "DEVICES_WRITE", "MEMBERS_READ", "MEMBERS_WRITE", "AUDIT_READ"}

// without returns every scope but s and the WRITE scope that implies it.
func without(s string) []string {
	var out []string
	for _, sc := range allScopes {
		if sc != s && sc != writeOf[s] {
			out = append(out, sc)
		}
	}
	return out
}

func loadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	src, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// target is what a field yields: a Node type, directly or through a
// connection (a type with a nodes field of Node type).
type target struct {
	node       string // the Node type, "" when the field yields none
	connection bool
}

func targetOf(schema *ast.Schema, f *ast.FieldDefinition) target {
	name := f.Type.Name()
	def := schema.Types[name]
	if isNode(def) {
		return target{node: name}
	}
	if def.Kind == ast.Object {
		if nodes := def.Fields.ForName("nodes"); nodes != nil && isNode(schema.Types[nodes.Type.Name()]) {
			return target{node: nodes.Type.Name(), connection: true}
		}
	}
	return target{}
}

func isNode(def *ast.Definition) bool {
	return def != nil && (def.Name == "Node" || slices.Contains(def.Interfaces, "Node"))
}

// requires lists the scopes a field's @auth names.
func requires(f *ast.FieldDefinition) []string {
	var out []string
	if d := f.Directives.ForName("auth"); d != nil {
		if a := d.Arguments.ForName("requires"); a != nil {
			for _, c := range a.Value.Children {
				out = append(out, c.Value.Raw)
			}
		}
	}
	return out
}

// step is one field on the way from Query to the field under test.
type step struct {
	parent string
	field  *ast.FieldDefinition
}

// pathTo finds the shortest path from Query to an object of type want that
// a key holding scopes may take: every field on it is one the key may read.
// Query.viewer (the key's own object) is taken only when no other path
// exists, since it leads to one key where a list leads to all of them.
func pathTo(schema *ast.Schema, want string, scopes []string) ([]step, bool) {
	for _, viaViewer := range []bool{false, true} {
		type item struct {
			typ  string
			path []step
		}
		seen := map[string]bool{"Query": true}
		queue := []item{{typ: "Query"}}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			if cur.typ == want {
				return cur.path, true
			}
			for _, f := range schema.Types[cur.typ].Fields {
				next := f.Type.Name()
				def := schema.Types[next]
				if def == nil || def.Kind != ast.Object || seen[next] || hasRequiredArg(f) {
					continue
				}
				if cur.typ == "Query" && f.Name == "viewer" && !viaViewer {
					continue
				}
				if !mayRead(schema, cur.typ, f, scopes) {
					continue
				}
				seen[next] = true
				path := append(slices.Clip(cur.path), step{cur.typ, f})
				queue = append(queue, item{next, path})
			}
		}
	}
	return nil, false
}

// mayRead says whether a key holding scopes may read field f of parent.
func mayRead(schema *ast.Schema, parent string, f *ast.FieldDefinition, scopes []string) bool {
	for _, s := range requires(f) {
		if !slices.Contains(scopes, s) {
			return false
		}
	}
	if _, own := ownObject[parent+"."+f.Name]; own {
		return true
	}
	tg := targetOf(schema, f)
	need := readScope[tg.node]
	return tg.node == "" || need == "" || slices.Contains(scopes, need)
}

func hasRequiredArg(f *ast.FieldDefinition) bool {
	for _, a := range f.Arguments {
		if a.Type.NonNull && a.DefaultValue == nil {
			return true
		}
	}
	return false
}

// queryFor writes the query that follows path and then selects field f,
// asking for the id of what it yields. Only __typename is selected on the
// way, so the only ids in the answer are those of the field under test.
func queryFor(path []step, f *ast.FieldDefinition, tg target) string {
	inner := "{ __typename id }"
	if tg.connection {
		inner = "{ nodes { __typename id } }"
	}
	q := f.Name + " " + inner
	for i := len(path) - 1; i >= 0; i-- {
		q = path[i].field.Name + " { __typename " + q + " }"
	}
	return "{ " + q + " }"
}

// authzFixture fills a team with one object of every kind, each pointing to
// the others, so that every edge has something to show.
type authzFixture struct {
	e     *env
	owner string            // an OWNER member, who owns the keys the test uses
	ids   map[string]string // a global id of each Node type
}

func newAuthzFixture(e *env) *authzFixture {
	t := e.t
	f := &authzFixture{e: e, ids: map[string]string{}}
	f.owner = e.ok(e.admin, `mutation { addMember(input: {email: "o@example.com", role: OWNER}) { member { id } } }`, nil).str("addMember.member.id")
	f.ids["Member"] = f.owner
	f.ids["ApiKey"], _ = f.key(nil)
	r := e.ok(e.admin, `mutation { createDevice(input: {name: "d", serialNumber: "SN-1"}) { device { id } } }`, nil)
	f.ids["Device"] = r.str("createDevice.device.id")
	r = e.ok(e.admin, `mutation { createEnrollmentKey(input: {reusable: true}) { secret enrollmentKey { id } } }`, nil)
	f.ids["EnrollmentKey"] = r.str("createEnrollmentKey.enrollmentKey.id")
	// An enrolled device is an audit event's actorDevice.
	e.ok("", `mutation($k: String!) { enrollDevice(input: {enrollmentKey: $k, serialNumber: "SN-2"}) { device { id } } }`,
		map[string]any{"k": r.str("createEnrollmentKey.secret")})
	r = e.ok(e.admin, `{ team { id auditEvents(last: 1) { nodes { id } } } }`, nil)
	f.ids["AuditEvent"] = r.list("team.auditEvents.nodes")[0].(map[string]any)["id"].(string)
	f.ids["Team"] = r.str("team.id")
	if len(f.ids) != len(readScope) {
		t.Fatalf("the fixture lacks an object of some Node type: %v", f.ids)
	}
	return f
}

// key makes a personal key of the fixture's owner, created by the admin
// key, so that its owner and createdBy edges point somewhere; nil scopes
// make a key holding every scope.
func (f *authzFixture) key(scopes []string) (id, secret string) {
	in := map[string]any{"name": "k", "ownerId": f.owner}
	if scopes != nil {
		in["scopes"] = scopes
	}
	r := f.e.ok(f.e.admin, createKey, map[string]any{"in": in})
	return r.str("createApiKey.apiKey.id"), r.str("createApiKey.secret")
}

// forbiddenAt reports whether the response refuses a field named field with
// FORBIDDEN naming scope.
func forbiddenAt(r *response, field, scope string) bool {
	for _, e := range r.Errors {
		if e.code() == "FORBIDDEN" && e.Extensions["scope"] == scope && len(e.Path) > 0 {
			for _, p := range e.Path {
				if p == field {
					return true
				}
			}
		}
	}
	return false
}

func TestEveryNodeFieldNeedsItsTypesReadScope(t *testing.T) {
	schema := loadSchema(t)
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		f := newAuthzFixture(e)
		_, full := f.key(nil)
		lacking := map[string]string{}
		for _, s := range readScope {
			if s != "" && lacking[s] == "" {
				_, lacking[s] = f.key(without(s))
			}
		}
		var reached, ownFields, unreachable, payloads int
		for _, def := range schema.Types {
			if def.Kind != ast.Object || strings.HasPrefix(def.Name, "__") {
				continue
			}
			for _, field := range def.Fields {
				tg := targetOf(schema, field)
				if tg.node == "" {
					continue
				}
				name := def.Name + "." + field.Name
				if _, own := ownObject[name]; own {
					ownFields++
					continue
				}
				if tg.node == "Node" {
					continue // node and nodes: TestNodeNeedsTheReadScopeOfTheIdsType
				}
				need, known := readScope[tg.node]
				if !known {
					t.Fatalf("%s returns %s, a Node type with no read scope in readScope", name, tg.node)
				}
				if need == "" {
					continue // Team: any key of the team reads it
				}
				if strings.HasSuffix(def.Name, "Payload") {
					// A mutation's payload: the mutation itself needs a
					// WRITE scope, which must imply the read scope.
					payloads++
					checkPayload(t, schema, def.Name, name, need)
					continue
				}
				path, ok := pathTo(schema, def.Name, without(need))
				if !ok {
					// No field a key without the scope may read leads to
					// this type: the field that leads there is tested.
					unreachable++
					continue
				}
				reached++
				query := queryFor(path, field, tg)
				t.Run(name, func(t *testing.T) {
					control := e.ok(full, query, nil)
					if !strings.Contains(string(control.Raw), idPrefix[tg.node]) {
						t.Fatalf("the fixture shows no %s through %s, so the refusal would prove nothing: %s", tg.node, query, control.Raw)
					}
					r := e.gql(lacking[need], query, nil)
					if r.Status != 200 || !forbiddenAt(r, field.Name, need) {
						t.Fatalf("%s without %s: want FORBIDDEN naming %s at %s, got %d: %s", query, need, need, field.Name, r.Status, r.Raw)
					}
					if strings.Contains(string(r.Raw), idPrefix[tg.node]) {
						t.Fatalf("%s without %s shows a %s: %s", query, need, tg.node, r.Raw)
					}
				})
			}
		}
		t.Logf("Node fields: %d reached and refused, %d only behind a refused field, %d in mutation payloads, %d the caller's own",
			reached, unreachable, payloads, ownFields)
		if reached < 8 {
			t.Fatalf("only %d fields reached: the walk is broken", reached)
		}
	})
}

// checkPayload finds the mutation returning payload and checks that its
// @auth asks for the read scope, or the WRITE scope implying it.
func checkPayload(t *testing.T, schema *ast.Schema, payload, name, need string) {
	t.Helper()
	found := false
	for _, m := range schema.Mutation.Fields {
		if m.Type.Name() != payload {
			continue
		}
		found = true
		req := requires(m)
		if !slices.Contains(req, need) && !slices.Contains(req, writeOf[need]) {
			t.Errorf("%s is reached through %s, whose @auth %v does not include %s", name, m.Name, req, need)
		}
	}
	if !found {
		t.Errorf("%s: no mutation returns %s, so nothing was checked", name, payload)
	}
}

func TestNodeNeedsTheReadScopeOfTheIdsType(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		f := newAuthzFixture(e)
		_, full := f.key(nil)
		for typ, need := range readScope {
			id := f.ids[typ]
			one := `query($id: ID!) { node(id: $id) { __typename id } }`
			many := `query($id: ID!) { nodes(ids: [$id]) { __typename id } }`
			for _, q := range []string{one, many} {
				if r := e.ok(full, q, map[string]any{"id": id}); !strings.Contains(string(r.Raw), id) {
					t.Fatalf("%s: the full key does not read %s: %s", typ, id, r.Raw)
				}
				if need == "" {
					continue
				}
				_, key := f.key(without(need))
				r := e.gql(key, q, map[string]any{"id": id})
				field := strings.Fields(strings.SplitN(q, "{", 3)[1])[0]
				field = field[:strings.IndexByte(field, '(')]
				if !forbiddenAt(r, field, need) || strings.Contains(string(r.Raw), id) {
					t.Fatalf("%s %s without %s: want FORBIDDEN naming it and no object, got %s", field, typ, need, r.Raw)
				}
			}
		}
	})
}
