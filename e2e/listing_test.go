package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/testdb"
)

// listKeysPage reads one page of the team's keys with every pagination
// argument as a variable, so that an unset one is absent.
const listKeysPage = `query($first: Int, $after: String, $last: Int, $before: String) {
  team { apiKeys(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    nodes { id }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } }
}`

// listEventsPage is listKeysPage for the audit log.
const listEventsPage = `query($first: Int, $after: String, $last: Int, $before: String) {
  team { auditEvents(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    nodes { id }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  } }
}`

// lstSame reports whether two lists hold the same strings, in any order.
func lstSame(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func lstViewerID(e *env, key string) string {
	e.t.Helper()
	id := e.ok(key, `{ viewer { id } }`, nil).str("viewer.id")
	if id == "" {
		e.t.Fatal("viewer has no id")
	}
	return id
}

func lstTeamID(e *env, key string) string {
	e.t.Helper()
	id := e.ok(key, `{ team { id } }`, nil).str("team.id")
	if id == "" {
		e.t.Fatal("team has no id")
	}
	return id
}

func TestPaginationForwardAndBackward(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		all := []string{lstViewerID(e, e.admin)}
		for i := range 24 {
			id, _ := e.newKey(e.admin, fmt.Sprintf("key %02d", i))
			all = append(all, id)
		}
		if len(all) != 25 {
			t.Fatalf("have %d keys", len(all))
		}

		// Forward, following endCursor until the last page.
		var forward []string
		var sizes []int
		vars := map[string]any{"first": 10}
		for page := 1; ; page++ {
			if page > 5 {
				t.Fatalf("still paging forward after %d pages: %v", page-1, sizes)
			}
			p := readPage(t, e.ok(e.admin, listKeysPage, vars), "team.apiKeys")
			if p.total != 25 {
				t.Errorf("forward page %d: totalCount %d, want 25", page, p.total)
			}
			if want := page > 1; p.hasPrev != want {
				t.Errorf("forward page %d: hasPreviousPage %v, want %v", page, p.hasPrev, want)
			}
			sizes = append(sizes, len(p.ids))
			forward = append(forward, p.ids...)
			if !p.hasNext {
				break
			}
			vars = map[string]any{"first": 10, "after": p.end}
		}
		if !slices.Equal(sizes, []int{10, 10, 5}) {
			t.Errorf("forward page sizes %v, want [10 10 5]", sizes)
		}
		if !slices.Equal(forward, all) {
			t.Errorf("forward pages list\n%v\nwant every key once, in creation order:\n%v", forward, all)
		}

		// Backward from the end, following startCursor.
		type backPage struct {
			ids              []string
			hasPrev, hasNext bool
		}
		wantBack := []backPage{
			{all[15:25], true, false},
			{all[5:15], true, true},
			{all[0:5], false, true},
		}
		vars = map[string]any{"last": 10}
		for i, want := range wantBack {
			p := readPage(t, e.ok(e.admin, listKeysPage, vars), "team.apiKeys")
			if p.total != 25 {
				t.Errorf("backward page %d: totalCount %d, want 25", i+1, p.total)
			}
			if !slices.Equal(p.ids, want.ids) {
				t.Errorf("backward page %d lists %v, want %v", i+1, p.ids, want.ids)
			}
			if p.hasPrev != want.hasPrev {
				t.Errorf("backward page %d: hasPreviousPage %v, want %v", i+1, p.hasPrev, want.hasPrev)
			}
			if p.hasNext != want.hasNext {
				t.Errorf("backward page %d: hasNextPage %v, want %v", i+1, p.hasNext, want.hasNext)
			}
			if p.start == nil {
				t.Fatalf("backward page %d is empty", i+1)
			}
			vars = map[string]any{"last": 10, "before": p.start}
		}

		// No size: the default page of 20.
		p := readPage(t, e.ok(e.admin, listKeysPage, nil), "team.apiKeys")
		if !slices.Equal(p.ids, all[:20]) || !p.hasNext || p.hasPrev || p.total != 25 {
			t.Errorf("default page: %d ids (want the first 20), hasNext %v, hasPrev %v, total %d", len(p.ids), p.hasNext, p.hasPrev, p.total)
		}

		// first: 0 is an empty page, still counted.
		p = readPage(t, e.ok(e.admin, listKeysPage, map[string]any{"first": 0}), "team.apiKeys")
		if len(p.ids) != 0 || p.start != nil || p.end != nil || p.total != 25 || !p.hasNext {
			t.Errorf("first: 0 gave %d ids, cursors %v/%v, total %d, hasNext %v; want an empty page of 25 with more after", len(p.ids), p.start, p.end, p.total, p.hasNext)
		}
	})
}

func TestPaginationRejectsBadArguments(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		adminID := lstViewerID(e, e.admin)
		wrongLength := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
		wrongVersion := base64.RawURLEncoding.EncodeToString(append([]byte{2}, make([]byte, 16)...))
		cases := []struct {
			name  string
			vars  map[string]any
			field string // "" when only the code is asserted
		}{
			{"first above 100", map[string]any{"first": 101}, "first"},
			{"negative first", map[string]any{"first": -1}, "first"},
			{"last above 100", map[string]any{"last": 101}, "last"},
			{"negative last", map[string]any{"last": -1}, "last"},
			{"first and last", map[string]any{"first": 5, "last": 5}, ""},
			{"garbage after", map[string]any{"after": "garbage"}, "after"},
			{"not base64 before", map[string]any{"before": "!!"}, "before"},
			{"base64 of the wrong length", map[string]any{"after": wrongLength}, "after"},
			{"cursor of an unknown version", map[string]any{"before": wrongVersion}, "before"},
			{"global id as after", map[string]any{"after": adminID}, "after"},
			{"global id as before", map[string]any{"before": adminID}, "before"},
		}
		for _, conn := range []struct{ name, query string }{
			{"apiKeys", listKeysPage},
			{"auditEvents", listEventsPage},
		} {
			for _, c := range cases {
				t.Run(conn.name+"/"+c.name, func(t *testing.T) {
					e := e.sub(t)
					r := e.gql(e.admin, conn.query, c.vars)
					if r.Status != http.StatusOK {
						t.Fatalf("HTTP %d, want 200: %s", r.Status, r.Raw)
					}
					if got := r.get("team." + conn.name); got != nil {
						t.Fatalf("a page was returned: %s", r.Raw)
					}
					if len(r.Errors) == 0 {
						t.Fatalf("no error: %s", r.Raw)
					}
					for _, g := range r.Errors {
						if g.code() == "INTERNAL" {
							t.Fatalf("INTERNAL error: %s", r.Raw)
						}
					}
					if r.code() != "BAD_USER_INPUT" {
						t.Fatalf("code %q, want BAD_USER_INPUT: %s", r.code(), r.Raw)
					}
					if c.field != "" {
						if got := r.Errors[0].Extensions["field"]; got != c.field {
							t.Fatalf("extensions.field %v, want %q: %s", got, c.field, r.Raw)
						}
					}
				})
			}
		}
	})
}

const lstFilterKeys = `query($filter: ApiKeyFilter) {
  team { apiKeys(first: 100, filter: $filter) { totalCount nodes { id name status } } }
}`

func TestApiKeyFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		admin := lstViewerID(e, e.admin)
		create := func(name, description string) string {
			in := map[string]any{"name": name}
			if description != "" {
				in["description"] = description
			}
			return e.ok(e.admin, createKey, map[string]any{"in": in}).str("createApiKey.apiKey.id")
		}
		deployBot := create("Deploy bot", "")
		staging := create("deploy-staging", "CI pipeline")
		billing := create("billing", "")
		release := create("release-tool", "Triggers DEPLOYS")
		percent := create("100%_sure", "")
		underscore := create("under_score", "")
		noUnderscore := create("underXscore", "")
		umlaut := create("Über-Key", "")

		both := create("old-key", "") // revoked, then expired: revocation wins
		for _, id := range []string{billing, both} {
			e.ok(e.admin, `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": id})
		}
		for _, id := range []string{deployBot, both} {
			e.db.Exec(t, "UPDATE api_keys SET expires_at = ? WHERE id = ?", time.Now().UTC().Add(-time.Hour), uuidOf(t, ids.APIKey, id))
		}
		rowsBefore := e.db.Count(t, "api_keys", "")

		cases := []struct {
			name   string
			filter map[string]any
			want   []string
			status string // every listed key must be in this state, when set
		}{
			{"no filter", nil, []string{admin, deployBot, staging, billing, both, release, percent, underscore, noUnderscore, umlaut}, ""},
			{"active", map[string]any{"status": "ACTIVE"}, []string{admin, staging, release, percent, underscore, noUnderscore, umlaut}, "ACTIVE"},
			{"revoked", map[string]any{"status": "REVOKED"}, []string{billing, both}, "REVOKED"},
			{"expired", map[string]any{"status": "EXPIRED"}, []string{deployBot}, "EXPIRED"},
			{"search name or description, any case", map[string]any{"search": "deploy"}, []string{deployBot, staging, release}, ""},
			{"search upper case", map[string]any{"search": "DEPLOY"}, []string{deployBot, staging, release}, ""},
			{"search description only", map[string]any{"search": "pipeline"}, []string{staging}, ""},
			{"search and status", map[string]any{"search": "deploy", "status": "ACTIVE"}, []string{staging, release}, "ACTIVE"},
			{"search expired and status", map[string]any{"search": "deploy", "status": "EXPIRED"}, []string{deployBot}, "EXPIRED"},
			{"search non-ASCII name as written", map[string]any{"search": "Über"}, []string{umlaut}, ""},
			{"search non-ASCII name, other case", map[string]any{"search": "üBER"}, []string{umlaut}, ""},
			{"percent is literal", map[string]any{"search": "%"}, []string{percent}, ""},
			{"underscore is literal", map[string]any{"search": "_"}, []string{percent, underscore}, ""},
			{"underscore matches no other character", map[string]any{"search": "r_s"}, []string{underscore}, ""},
			{"backslash is literal", map[string]any{"search": `\`}, nil, ""},
			{"no match", map[string]any{"search": "nothing like it"}, nil, ""},
			{"SQL text", map[string]any{"search": `'; DROP TABLE api_keys; --`}, nil, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := e.sub(t)
				var vars map[string]any
				if c.filter != nil {
					vars = map[string]any{"filter": c.filter}
				}
				r := e.ok(e.admin, lstFilterKeys, vars)
				nodes := r.list("team.apiKeys.nodes")
				got := pluck(nodes, "id")
				if !lstSame(got, c.want) {
					t.Errorf("listed %v (%v), want %v", got, pluck(nodes, "name"), c.want)
				}
				if total, _ := r.get("team.apiKeys.totalCount").(float64); int(total) != len(c.want) {
					t.Errorf("totalCount %v, want %d", total, len(c.want))
				}
				if c.status != "" {
					for _, st := range pluck(nodes, "status") {
						if st != c.status {
							t.Errorf("a key in state %s listed under %s", st, c.status)
						}
					}
				}
			})
		}

		// The SQL-looking search was only text: the table and its rows remain.
		if n := e.db.Count(t, "api_keys", ""); n != rowsBefore {
			t.Errorf("api_keys holds %d rows after the searches, had %d", n, rowsBefore)
		}
		r := e.ok(e.admin, lstFilterKeys, nil)
		if total, _ := r.get("team.apiKeys.totalCount").(float64); total != 10 {
			t.Errorf("after the searches the team lists %v keys, want 10", total)
		}
	})
}

// lstEventIDs returns the ids of the events, in order.
func lstEventIDs(events []event) []string {
	out := make([]string, len(events))
	for i, ev := range events {
		out[i] = ev.ID
	}
	return out
}

func TestAuditLogFilters(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		admin := lstViewerID(e, e.admin)
		team := lstTeamID(e, e.admin)

		key, _ := e.newKey(e.admin, "audited")
		e.ok(e.admin, `mutation($id: ID!) { updateApiKey(input: {id: $id, name: "audited-2"}) { apiKey { name } } }`, map[string]any{"id": key})
		e.ok(e.admin, `mutation($id: ID!) { rotateApiKey(input: {id: $id}) { secret } }`, map[string]any{"id": key})
		e.ok(e.admin, `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": key})
		body, _ := json.Marshal(map[string]any{"query": `mutation { updateTeam(input: {name: "Acme Corp"}) { team { name } } }`})
		r := e.request(http.MethodPost, "/graphql", strings.NewReader(string(body)), map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + e.admin, "User-Agent": "listing-test/1.0",
		})
		if r.Status != http.StatusOK || len(r.Errors) > 0 || r.str("updateTeam.team.name") != "Acme Corp" {
			t.Fatalf("updateTeam: %d %s", r.Status, r.Raw)
		}

		events := e.events(e.admin, nil)
		type want struct{ action, actor, target string }
		wantAll := []want{
			{"team.create", "", team},
			{"apiKey.create", "", admin},
			{"apiKey.create", admin, key},
			{"apiKey.update", admin, key},
			{"apiKey.rotate", admin, key},
			{"apiKey.revoke", admin, key},
			{"team.update", admin, team},
		}
		if len(events) != len(wantAll) {
			t.Fatalf("the log holds %d events, want %d: %+v", len(events), len(wantAll), events)
		}
		for i, w := range wantAll {
			ev := events[i]
			got := want{ev.Action, ev.Actor, ev.Target}
			if got != w {
				t.Errorf("event %d is %+v, want %+v", i, got, w)
			}
			if !strings.HasPrefix(ev.ID, "evt_") {
				t.Errorf("event %d has id %q", i, ev.ID)
			}
			if w.actor == "" {
				continue // bootstrap: no request behind it
			}
			if ev.IP != "127.0.0.1" {
				t.Errorf("event %d (%s) ip %v, want 127.0.0.1", i, ev.Action, ev.IP)
			}
			if ev.UserAgent == "" {
				t.Errorf("event %d (%s) has no userAgent", i, ev.Action)
			}
		}
		if ua := events[6].UserAgent; ua != "listing-test/1.0" {
			t.Errorf("team.update userAgent %v, want the request's listing-test/1.0", ua)
		}

		// The instant of the rotation splits the log: since takes it, until does not.
		boundary := events[4].CreatedAt
		at, err := time.Parse(time.RFC3339Nano, boundary)
		if err != nil {
			t.Fatalf("createdAt %q: %v", boundary, err)
		}
		var atOrAfter, before []string
		for _, ev := range events {
			ts, err := time.Parse(time.RFC3339Nano, ev.CreatedAt)
			if err != nil {
				t.Fatalf("createdAt %q: %v", ev.CreatedAt, err)
			}
			if ts.Before(at) {
				before = append(before, ev.ID)
			} else {
				atOrAfter = append(atOrAfter, ev.ID)
			}
		}
		if !slices.Contains(atOrAfter, events[4].ID) || !slices.Contains(atOrAfter, events[6].ID) || !slices.Contains(before, events[2].ID) {
			t.Fatalf("createdAt is not in commit order: %+v", events)
		}
		revokeAt := events[5].CreatedAt

		other, _ := e.newKey(e.admin, "idle")
		pick := func(idx ...int) []string {
			out := []string{}
			for _, i := range idx {
				out = append(out, events[i].ID)
			}
			return out
		}
		// The "idle" key's creation is logged too (events[7]); filters below
		// that would match it say so.
		all := e.events(e.admin, nil)
		if len(all) != 8 || all[7].Action != "apiKey.create" || all[7].Target != other {
			t.Fatalf("after creating %s the log is %+v", other, all)
		}
		events = all

		cases := []struct {
			name   string
			filter map[string]any
			want   []string
		}{
			{"action", map[string]any{"action": "apiKey.rotate"}, pick(4)},
			{"action with several events", map[string]any{"action": "apiKey.create"}, pick(1, 2, 7)},
			{"unknown action", map[string]any{"action": "apiKey.explode"}, pick()},
			{"actor", map[string]any{"actorId": admin}, pick(2, 3, 4, 5, 6, 7)},
			{"actor that did nothing", map[string]any{"actorId": other}, pick()},
			{"actor and action", map[string]any{"actorId": admin, "action": "apiKey.create"}, pick(2, 7)},
			{"target key", map[string]any{"targetId": key}, pick(2, 3, 4, 5)},
			{"target team", map[string]any{"targetId": team}, pick(0, 6)},
			{"target and action", map[string]any{"targetId": key, "action": "apiKey.revoke"}, pick(5)},
			{"since is inclusive", map[string]any{"since": boundary}, append(atOrAfter, events[7].ID)},
			{"until is exclusive", map[string]any{"until": boundary}, before},
			{"since and until", map[string]any{"since": boundary, "until": revokeAt}, pick(4)},
			{"empty window", map[string]any{"since": boundary, "until": boundary}, pick()},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := e.sub(t)
				got := e.events(e.admin, c.filter)
				if ids := lstEventIDs(got); !slices.Equal(ids, c.want) {
					t.Errorf("filter %v lists %v, want %v (oldest first)", c.filter, ids, c.want)
				}
			})
		}

		t.Run("malformed actorId", func(t *testing.T) {
			e := e.sub(t)
			for _, bad := range []string{"garbage", team, events[0].ID} {
				r := e.fails(e.admin, auditQuery, map[string]any{"filter": map[string]any{"actorId": bad}}, "BAD_USER_INPUT")
				if got := r.Errors[0].Extensions["field"]; got != "actorId" {
					t.Errorf("actorId %q: extensions.field %v, want actorId", bad, got)
				}
				if r.get("team.auditEvents") != nil {
					t.Errorf("actorId %q: a page was returned: %s", bad, r.Raw)
				}
			}
		})

		t.Run("needs AUDIT_READ", func(t *testing.T) {
			e := e.sub(t)
			_, reader := e.newKey(e.admin, "reader", "API_KEYS_READ")
			r := e.fails(reader, auditQuery, nil, "FORBIDDEN")
			if got := r.Errors[0].Extensions["scope"]; got != "AUDIT_READ" {
				t.Errorf("extensions.scope %v, want AUDIT_READ", got)
			}
			if r.get("team.auditEvents") != nil {
				t.Errorf("the log was returned: %s", r.Raw)
			}
		})
	})
}

func TestTenantIsolation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		other := e.bootstrap("Globex")
		adminA := lstViewerID(e, e.admin)
		adminB := lstViewerID(e, other)
		teamB := lstTeamID(e, other)
		keyA, _ := e.newKey(e.admin, "a-key")
		keyB, secretB := e.newKey(other, "b-key")
		unknown := ids.Encode(ids.APIKey, ids.New())
		eventsB := e.events(other, nil)
		if len(eventsB) == 0 {
			t.Fatal("team B has no audit events")
		}
		eventB := eventsB[len(eventsB)-1].ID

		mutations := []struct{ name, query string }{
			{"updateApiKey", `mutation($id: ID!) { updateApiKey(input: {id: $id, name: "pwned", description: "pwned"}) { apiKey { id name } } }`},
			{"rotateApiKey", `mutation($id: ID!) { rotateApiKey(input: {id: $id}) { apiKey { id } secret } }`},
			{"revokeApiKey", `mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id status } } }`},
		}
		for _, m := range mutations {
			t.Run(m.name, func(t *testing.T) {
				e := e.sub(t)
				foreign := e.fails(e.admin, m.query, map[string]any{"id": keyB}, "NOT_FOUND")
				missing := e.fails(e.admin, m.query, map[string]any{"id": unknown}, "NOT_FOUND")
				if foreign.Status != missing.Status {
					t.Errorf("HTTP %d for a foreign id, %d for an unknown one", foreign.Status, missing.Status)
				}
				if foreign.Errors[0].Message != missing.Errors[0].Message {
					t.Errorf("message %q for a foreign id, %q for an unknown one", foreign.Errors[0].Message, missing.Errors[0].Message)
				}
				if !reflect.DeepEqual(foreign.Errors[0].Extensions, missing.Errors[0].Extensions) {
					t.Errorf("extensions %v for a foreign id, %v for an unknown one", foreign.Errors[0].Extensions, missing.Errors[0].Extensions)
				}
				if foreign.get(m.name) != nil {
					t.Errorf("a payload was returned: %s", foreign.Raw)
				}
			})
		}

		// B's key is untouched: it authenticates, keeps its name, and no
		// event was logged against it but its creation.
		if status, reason := e.authStatus(secretB); status != http.StatusOK {
			t.Fatalf("B's key answers %d (%s) after A's attempts", status, reason)
		}
		r := e.ok(secretB, `{ viewer { id name description status } }`, nil)
		if r.str("viewer.id") != keyB || r.str("viewer.name") != "b-key" || r.get("viewer.description") != nil || r.str("viewer.status") != "ACTIVE" {
			t.Errorf("B's key reads %s", r.Raw)
		}
		r = e.ok(other, `query($id: ID!) { node(id: $id) { ... on ApiKey { id name rotatedAt revokedAt } } }`, map[string]any{"id": keyB})
		if r.str("node.id") != keyB || r.str("node.name") != "b-key" || r.get("node.rotatedAt") != nil || r.get("node.revokedAt") != nil {
			t.Errorf("B reads its key as %s", r.Raw)
		}
		if n := e.db.Count(t, "audit_events", "target_id = ?", keyB); n != 1 {
			t.Errorf("%d audit events target B's key, want 1 (its creation)", n)
		}

		// node and nodes: a foreign object reads as null, without an error.
		for _, c := range []struct{ name, id string }{
			{"foreign key", keyB},
			{"foreign team", teamB},
			{"foreign audit event", eventB},
			{"unknown key", unknown},
		} {
			t.Run("node of "+c.name, func(t *testing.T) {
				e := e.sub(t)
				r := e.ok(e.admin, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": c.id})
				if v, present := r.Data["node"]; !present || v != nil {
					t.Errorf("node(%s) = %s, want null", c.id, r.Raw)
				}
			})
		}
		r = e.ok(e.admin, `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []string{keyA, keyB, unknown}})
		nodes := r.list("nodes")
		if len(nodes) != 3 {
			t.Fatalf("nodes returned %d entries: %s", len(nodes), r.Raw)
		}
		if first, _ := nodes[0].(map[string]any); first == nil || first["id"] != keyA {
			t.Errorf("nodes[0] = %v, want A's key %s", nodes[0], keyA)
		}
		if nodes[1] != nil || nodes[2] != nil {
			t.Errorf("nodes[1:] = %v, want [null null]", nodes[1:])
		}

		// Lists of A hold none of B's objects.
		r = e.ok(e.admin, lstFilterKeys, nil)
		if got := pluck(r.list("team.apiKeys.nodes"), "id"); !lstSame(got, []string{adminA, keyA}) {
			t.Errorf("A lists keys %v, want %v", got, []string{adminA, keyA})
		}
		bObjects := map[string]bool{adminB: true, keyB: true, teamB: true}
		for _, ev := range eventsB {
			bObjects[ev.ID] = true
		}
		eventsA := e.events(e.admin, nil)
		if len(eventsA) != 3 { // team.create, apiKey.create (bootstrap), apiKey.create
			t.Errorf("A's log holds %d events, want 3: %+v", len(eventsA), eventsA)
		}
		for _, ev := range eventsA {
			if bObjects[ev.ID] || bObjects[ev.Target] || bObjects[ev.Actor] {
				t.Errorf("A's log shows B's event %+v", ev)
			}
		}
		if got := e.events(e.admin, map[string]any{"actorId": adminB}); len(got) != 0 {
			t.Errorf("A's log filtered on B's admin key lists %+v", got)
		}

		// Each key's viewer is itself.
		if got := lstViewerID(e, secretB); got != keyB {
			t.Errorf("viewer with B's key is %s, want %s", got, keyB)
		}
	})
}

func TestNodeScopesAndMalformedIds(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		team := lstTeamID(e, e.admin)
		adminID := lstViewerID(e, e.admin)
		event := e.events(e.admin, nil)[0].ID
		own, devices := e.newKey(e.admin, "devices-only", "DEVICES_READ")
		const node = `query($id: ID!) { node(id: $id) { id ... on Team { name } } }`

		// The scope depends on the id's type alone, so FORBIDDEN says nothing
		// about whether the object exists.
		for _, c := range []struct{ name, id, scope string }{
			{"own key", own, "API_KEYS_READ"},
			{"another key", adminID, "API_KEYS_READ"},
			{"unknown key", ids.Encode(ids.APIKey, ids.New()), "API_KEYS_READ"},
			{"audit event", event, "AUDIT_READ"},
		} {
			t.Run("forbidden "+c.name, func(t *testing.T) {
				e := e.sub(t)
				r := e.fails(devices, node, map[string]any{"id": c.id}, "FORBIDDEN")
				if got := r.Errors[0].Extensions["scope"]; got != c.scope {
					t.Errorf("extensions.scope %v, want %s", got, c.scope)
				}
				if r.get("node.id") != nil {
					t.Errorf("the object was returned: %s", r.Raw)
				}
			})
		}

		t.Run("team needs no scope", func(t *testing.T) {
			e := e.sub(t)
			r := e.ok(devices, node, map[string]any{"id": team})
			if r.str("node.id") != team || r.str("node.name") != "Acme" {
				t.Errorf("node(team) = %s", r.Raw)
			}
		})

		t.Run("unknown device reads as null", func(t *testing.T) {
			e := e.sub(t)
			r := e.ok(devices, node, map[string]any{"id": ids.Encode(ids.Device, ids.New())})
			if v, present := r.Data["node"]; !present || v != nil {
				t.Errorf("node(unknown device) = %s, want null", r.Raw)
			}
		})

		for _, c := range []struct{ name, id string }{
			{"garbage", "garbage"},
			{"empty", ""},
			{"unknown prefix", "zzz_" + strings.TrimPrefix(own, "key_")},
			{"bad character", own[:len(own)-1] + "!"},
			{"truncated", own[:len(own)-1]},
		} {
			t.Run("malformed "+c.name, func(t *testing.T) {
				e := e.sub(t)
				r := e.fails(devices, node, map[string]any{"id": c.id}, "BAD_USER_INPUT")
				if r.get("node.id") != nil {
					t.Errorf("an object was returned: %s", r.Raw)
				}
			})
		}

		const nodes = `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`
		many := func(n int) []string {
			out := make([]string, n)
			for i := range out {
				out[i] = ids.Encode(ids.Device, ids.New())
			}
			return out
		}
		t.Run("nodes takes 100 ids", func(t *testing.T) {
			e := e.sub(t)
			r := e.ok(devices, nodes, map[string]any{"ids": many(100)})
			list := r.list("nodes")
			if len(list) != 100 {
				t.Fatalf("nodes returned %d entries, want 100", len(list))
			}
			for i, n := range list {
				if n != nil {
					t.Fatalf("nodes[%d] = %v, want null", i, n)
				}
			}
		})
		t.Run("nodes refuses 101 ids", func(t *testing.T) {
			e := e.sub(t)
			r := e.fails(devices, nodes, map[string]any{"ids": many(101)}, "BAD_USER_INPUT")
			if got := r.Errors[0].Extensions["field"]; got != "ids" {
				t.Errorf("extensions.field %v, want ids", got)
			}
			if r.list("nodes") != nil {
				t.Errorf("a list was returned: %s", r.Raw)
			}
		})
		t.Run("nodes with a malformed id", func(t *testing.T) {
			e := e.sub(t)
			e.fails(devices, nodes, map[string]any{"ids": []string{team, "garbage"}}, "BAD_USER_INPUT")
		})
	})
}
