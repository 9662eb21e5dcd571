package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyplane/keyplane/db"
	"github.com/keyplane/keyplane/internal/ids"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/testdb"
)

// The order of lists: every connection takes `order` (OLDEST_FIRST or
// NEWEST_FIRST); the audit log reads newest first by default, the other
// lists oldest first. Cursors name a row, so first/after and last/before
// read the same list in either order, and a walk through the list neither
// skips nor repeats rows while others are inserted.

// ordConn is one connection as the tests page through it.
type ordConn struct {
	name string
	path string // of the connection in the response
	// query returns the operation, taking $first, $after, $last and $before
	// (only $first and $after when forwardOnly); order is "" for the field's
	// default, or a ListOrder value.
	query       func(order string) string
	forwardOnly bool
	def         string // the default order
}

const ordSelection = `{
    totalCount
    nodes { id }
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }`

// ordTeamConn is a connection of Team.
func ordTeamConn(field, def string) ordConn {
	return ordConn{name: field, path: "team." + field, def: def, query: func(order string) string {
		arg := ""
		if order != "" {
			arg = ", order: " + order
		}
		return fmt.Sprintf(`query($first: Int, $after: String, $last: Int, $before: String) {
  team { %s(first: $first, after: $after, last: $last, before: $before%s) %s }
}`, field, arg, ordSelection)
	}}
}

// ordMemberKeys is Member.apiKeys, of the member with the id.
func ordMemberKeys(member string) ordConn {
	return ordConn{name: "Member.apiKeys", path: "node.apiKeys", def: "OLDEST_FIRST", forwardOnly: true, query: func(order string) string {
		arg := ""
		if order != "" {
			arg = ", order: " + order
		}
		return fmt.Sprintf(`query($first: Int, $after: String) {
  node(id: %q) { ... on Member { apiKeys(first: $first, after: $after%s) %s } }
}`, member, arg, ordSelection)
	}}
}

// ordWalk reads a whole list size rows at a time, forward (first, then after
// the endCursor) or backward (last, then before the startCursor), and returns
// its ids in the list's order. Each page must be full unless it is the last
// one read, and say so: hasNextPage (forward) or hasPreviousPage (backward)
// is true exactly while more follow, and the flag of the side the walk came
// from is true exactly past the first page. between, if given, runs after
// each page.
func ordWalk(t *testing.T, e *env, c ordConn, order string, vars map[string]any, size int, backward bool, between func()) []string {
	t.Helper()
	var pages [][]string
	var cursor any
	for i := 0; ; i++ {
		if i > 200 {
			t.Fatalf("%s: still paging after %d pages", c.name, i)
		}
		v := maps.Clone(vars)
		if v == nil {
			v = map[string]any{}
		}
		if backward {
			v["last"] = size
			if cursor != nil {
				v["before"] = cursor
			}
		} else {
			v["first"] = size
			if cursor != nil {
				v["after"] = cursor
			}
		}
		p := readPage(t, e.ok(e.admin, c.query(order), v), c.path)
		more, came := p.hasNext, p.hasPrev
		if backward {
			more, came = p.hasPrev, p.hasNext
		}
		if came != (i > 0) {
			t.Errorf("%s %s, page %d: hasNextPage %v, hasPreviousPage %v", c.name, ordName(order, backward), i+1, p.hasNext, p.hasPrev)
		}
		if len(p.ids) > size || (more && len(p.ids) != size) {
			t.Errorf("%s %s, page %d: %d rows of %d, more: %v", c.name, ordName(order, backward), i+1, len(p.ids), size, more)
		}
		pages = append(pages, p.ids)
		if between != nil {
			between()
		}
		if !more {
			break
		}
		cursor = p.end
		if backward {
			cursor = p.start
		}
	}
	if backward {
		slices.Reverse(pages)
	}
	return slices.Concat(pages...)
}

func ordName(order string, backward bool) string {
	if order == "" {
		order = "default order"
	}
	if backward {
		return order + ", last/before"
	}
	return order + ", first/after"
}

// ordAscending checks that global ids are in strictly ascending order of
// their UUIDv7, which is the order of creation.
func ordAscending(t *testing.T, what string, list []string) {
	t.Helper()
	for i := 1; i < len(list); i++ {
		_, a, err1 := ids.Decode(list[i-1])
		_, b, err2 := ids.Decode(list[i])
		if err1 != nil || err2 != nil || bytes.Compare(a[:], b[:]) >= 0 {
			t.Fatalf("%s: %s before %s, not in order of creation: %v", what, list[i-1], list[i], list)
		}
	}
}

func ordReversed(list []string) []string {
	out := slices.Clone(list)
	slices.Reverse(out)
	return out
}

// ordSeed gives the env's team a few rows of every list, and a member with
// personal keys; it returns the member's id.
func ordSeed(e *env, n int) string {
	e.t.Helper()
	member := ""
	for i := range n {
		e.newKey(e.admin, fmt.Sprintf("order key %d", i))
		e.ok(e.admin, `mutation($in: CreateDeviceInput!) { createDevice(input: $in) { device { id } } }`,
			map[string]any{"in": map[string]any{"name": fmt.Sprintf("device %d", i), "serialNumber": fmt.Sprintf("ORD-%03d", i)}})
		e.ok(e.admin, `mutation { createEnrollmentKey(input: {}) { enrollmentKey { id } } }`, nil)
		m := e.ok(e.admin, `mutation($in: AddMemberInput!) { addMember(input: $in) { member { id } } }`,
			map[string]any{"in": map[string]any{"email": fmt.Sprintf("order%d@example.com", i), "role": "ADMIN"}}).str("addMember.member.id")
		if member == "" {
			member = m
		}
		e.ok(e.admin, createKey, map[string]any{"in": map[string]any{"name": fmt.Sprintf("personal %d", i), "ownerId": member}})
	}
	return member
}

// TestListOrderEveryConnection pages through every connection in both
// orders, both ways, in pages that do and do not divide the list, and reads
// windows between two cursors.
func TestListOrderEveryConnection(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		member := ordSeed(e, 7)
		conns := []ordConn{
			ordTeamConn("auditEvents", "NEWEST_FIRST"),
			ordTeamConn("apiKeys", "OLDEST_FIRST"),
			ordTeamConn("devices", "OLDEST_FIRST"),
			ordTeamConn("members", "OLDEST_FIRST"),
			ordTeamConn("enrollmentKeys", "OLDEST_FIRST"),
			ordMemberKeys(member),
		}
		for _, c := range conns {
			t.Run(c.name, func(t *testing.T) {
				e := e.sub(t)
				all := readPage(t, e.ok(e.admin, c.query("OLDEST_FIRST"), map[string]any{"first": 100}), c.path)
				asc := all.ids
				if len(asc) < 7 || all.hasNext || all.total != len(asc) {
					t.Fatalf("the whole list: %d rows of %d, hasNextPage %v", len(asc), all.total, all.hasNext)
				}
				ordAscending(t, c.name+" OLDEST_FIRST", asc)
				desc := ordReversed(asc)
				newest := readPage(t, e.ok(e.admin, c.query("NEWEST_FIRST"), map[string]any{"first": 100}), c.path)
				if !slices.Equal(newest.ids, desc) || newest.total != all.total {
					t.Fatalf("NEWEST_FIRST lists %v (of %d), want %v (of %d)", newest.ids, newest.total, desc, all.total)
				}
				want := map[string][]string{"OLDEST_FIRST": asc, "NEWEST_FIRST": desc, "": asc}
				if c.def == "NEWEST_FIRST" {
					want[""] = desc
				}
				for _, order := range []string{"", "OLDEST_FIRST", "NEWEST_FIRST"} {
					for _, size := range []int{1, 3, 4, len(asc), 100} {
						for _, backward := range []bool{false, true} {
							if backward && c.forwardOnly {
								continue
							}
							got := ordWalk(t, e, c, order, nil, size, backward, nil)
							if !slices.Equal(got, want[order]) {
								t.Errorf("%s, pages of %d: %v\nwant %v", ordName(order, backward), size, got, want[order])
							}
						}
					}
				}
				if c.forwardOnly {
					return
				}

				// A cursor names a row whatever the order it was read in: the
				// cursors of the oldest-first edges bound windows of the
				// newest-first list.
				cursor := map[string]string{}
				for i, id := range all.ids {
					cursor[id] = all.cursors[i]
				}
				for _, order := range []string{"OLDEST_FIRST", "NEWEST_FIRST"} {
					list := want[order]
					for _, w := range [][2]int{{0, 5}, {1, 2}, {2, 6}, {3, 3}, {0, len(list) - 1}} {
						after, before := list[w[0]], list[w[1]]
						inside := list[w[0]+1 : max(w[0]+1, w[1])]
						// first: 2 reads the window's start; hasNextPage says
						// whether more of the window follows (Relay), and
						// hasPreviousPage that rows precede the after cursor.
						p := readPage(t, e.ok(e.admin, c.query(order), map[string]any{"first": 2, "after": cursor[after], "before": cursor[before]}), c.path)
						head := inside[:min(2, len(inside))]
						if !slices.Equal(p.ids, head) && (len(p.ids) != 0 || len(head) != 0) {
							t.Errorf("%s between rows %d and %d, first 2: %v, want %v", order, w[0], w[1], p.ids, head)
						}
						if p.hasNext != (len(inside) > 2) || !p.hasPrev {
							t.Errorf("%s between rows %d and %d, first 2: hasNextPage %v, hasPreviousPage %v", order, w[0], w[1], p.hasNext, p.hasPrev)
						}
						// last: 2 reads its end, the mirror image.
						p = readPage(t, e.ok(e.admin, c.query(order), map[string]any{"last": 2, "after": cursor[after], "before": cursor[before]}), c.path)
						tail := inside[max(0, len(inside)-2):]
						if !slices.Equal(p.ids, tail) && (len(p.ids) != 0 || len(tail) != 0) {
							t.Errorf("%s between rows %d and %d, last 2: %v, want %v", order, w[0], w[1], p.ids, tail)
						}
						if p.hasPrev != (len(inside) > 2) || !p.hasNext {
							t.Errorf("%s between rows %d and %d, last 2: hasPreviousPage %v, hasNextPage %v", order, w[0], w[1], p.hasPrev, p.hasNext)
						}
						// first: 100 reads all of it.
						p = readPage(t, e.ok(e.admin, c.query(order), map[string]any{"first": 100, "after": cursor[after], "before": cursor[before]}), c.path)
						if !slices.Equal(p.ids, inside) && (len(p.ids) != 0 || len(inside) != 0) {
							t.Errorf("%s between rows %d and %d, first 100: %v, want %v", order, w[0], w[1], p.ids, inside)
						}
					}
				}
			})
		}
	})
}

// TestAuditLogNewestFirstByDefault: without an order, the audit log reads
// newest first, a new event comes first, and the schema says so; the other
// lists default to oldest first, as they always have.
func TestAuditLogNewestFirstByDefault(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		ordSeed(e, 3)
		oldest := e.events(e.admin, nil)
		log := ordTeamConn("auditEvents", "")
		got := readPage(t, e.ok(e.admin, log.query(""), map[string]any{"first": 5}), log.path)
		want := make([]string, 0, 5)
		for _, ev := range slices.Backward(oldest) {
			if len(want) < 5 {
				want = append(want, ev.ID)
			}
		}
		if !slices.Equal(got.ids, want) || !got.hasNext || got.hasPrev {
			t.Fatalf("auditEvents(first: 5) lists %v (hasNext %v, hasPrev %v), want the newest five, newest first: %v", got.ids, got.hasNext, got.hasPrev, want)
		}

		key, _ := e.newKey(e.admin, "the newest")
		first := e.ok(e.admin, `{ team { auditEvents(first: 1) { nodes { id action targetId } } } }`, nil).list("team.auditEvents.nodes")
		if len(first) != 1 || first[0].(map[string]any)["targetId"] != key || first[0].(map[string]any)["action"] != "apiKey.create" {
			t.Fatalf("the first event is %v, want the apiKey.create of %s", first, key)
		}

		// The defaults, as introspection shows them to tools and the Docs pane.
		r := e.ok(e.admin, `{
  team: __type(name: "Team") { fields { name args { name defaultValue type { kind ofType { name } } } } }
  member: __type(name: "Member") { fields { name args { name defaultValue } } }
  order: __type(name: "ListOrder") { description enumValues { name description } }
}`, nil)
		defaults := map[string]any{}
		for _, typ := range []string{"team", "member"} {
			for _, f := range r.list(typ + ".fields") {
				field := f.(map[string]any)
				for _, a := range field["args"].([]any) {
					if arg := a.(map[string]any); arg["name"] == "order" {
						defaults[typ+"."+field["name"].(string)] = arg["defaultValue"]
					}
				}
			}
		}
		wantDefaults := map[string]any{
			"team.auditEvents": "NEWEST_FIRST", "team.apiKeys": "OLDEST_FIRST", "team.devices": "OLDEST_FIRST",
			"team.members": "OLDEST_FIRST", "team.enrollmentKeys": "OLDEST_FIRST", "member.apiKeys": "OLDEST_FIRST",
		}
		if !maps.Equal(defaults, wantDefaults) {
			t.Errorf("order defaults %v, want %v", defaults, wantDefaults)
		}
		if r.str("order.description") == "" || len(r.list("order.enumValues")) != 2 {
			t.Errorf("ListOrder: %v", r.get("order"))
		}
		for _, v := range r.list("order.enumValues") {
			if v.(map[string]any)["description"] == "" {
				t.Errorf("ListOrder value %v has no description", v)
			}
		}

		// order is a ListOrder value; null is not one, and an absent
		// variable leaves the field's default.
		e.fails(e.admin, `{ team { auditEvents(order: SIDEWAYS) { totalCount } } }`, nil, "BAD_USER_INPUT")
		e.fails(e.admin, `{ team { auditEvents(order: null) { totalCount } } }`, nil, "BAD_USER_INPUT")
		const byVariable = `query($o: ListOrder) { team { auditEvents(first: 1, order: $o) { nodes { id } } } }`
		e.fails(e.admin, byVariable, map[string]any{"o": nil}, "BAD_USER_INPUT")
		e.fails(e.admin, byVariable, map[string]any{"o": "newest_first"}, "BAD_USER_INPUT")
		if got := e.ok(e.admin, byVariable, nil).list("team.auditEvents.nodes"); len(got) != 1 || got[0].(map[string]any)["id"] != first[0].(map[string]any)["id"] {
			t.Errorf("with $o absent the log starts with %v, want the newest event %v", got, first[0])
		}
		if got := e.ok(e.admin, byVariable, map[string]any{"o": "OLDEST_FIRST"}).list("team.auditEvents.nodes"); len(got) != 1 || got[0].(map[string]any)["id"] != oldest[0].ID {
			t.Errorf("$o OLDEST_FIRST reads %v first, want %s", got, oldest[0].ID)
		}
	})
}

// TestAuditLogPagingUnderConcurrentInserts walks the log from its newest
// event back to its oldest while events are inserted, both between pages and
// concurrently with them: no event appears twice, every event that existed
// at the first page appears, and the walk stays in order. Newest first with
// first/after and oldest first with last/before are the same walk.
func TestAuditLogPagingUnderConcurrentInserts(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		for i := range 30 {
			e.ok(e.admin, `mutation($n: String!) { updateTeam(input: {name: $n}) { team { id } } }`, map[string]any{"n": fmt.Sprintf("Acme %d", i)})
		}
		log := ordTeamConn("auditEvents", "NEWEST_FIRST")
		for _, walk := range []struct {
			order    string
			backward bool
		}{{"", false}, {"NEWEST_FIRST", false}, {"OLDEST_FIRST", true}} {
			t.Run(ordName(walk.order, walk.backward), func(t *testing.T) {
				e := e.sub(t)
				existed := ordWalk(t, e, log, "OLDEST_FIRST", nil, 100, false, nil)

				// A writer inserts events all along the walk, a few
				// milliseconds apart.
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var written atomic.Int64
				var writeErr atomic.Value
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 60 {
						select {
						case <-stop:
							return
						case <-time.After(3 * time.Millisecond):
						}
						if err := ordPost(e, `mutation($n: String!) { updateTeam(input: {name: $n}) { team { id } } }`, map[string]any{"n": fmt.Sprintf("Concurrent %d", i)}); err != nil {
							writeErr.Store(err)
							return
						}
						written.Add(1)
					}
				}()
				// And a few events are inserted between every two pages.
				between := 0
				insert := func() {
					for range 2 {
						e.newKey(e.admin, fmt.Sprintf("between pages %d", between))
						between++
					}
				}
				seen := ordWalk(t, e, log, walk.order, nil, 4, walk.backward, insert)
				close(stop)
				wg.Wait()
				if err, _ := writeErr.Load().(error); err != nil {
					t.Fatalf("concurrent writer: %v", err)
				}
				t.Logf("walked %d events; %d existed at the start, %d inserted between pages, %d by the concurrent writer", len(seen), len(existed), between, written.Load())

				// The walk reads the log in id order (newest first, or
				// oldest first when its pages are put back in the list's
				// order), each event once.
				if walk.order == "OLDEST_FIRST" {
					ordAscending(t, "the walk", seen)
				} else {
					ordAscending(t, "the walk, reversed", ordReversed(seen))
				}
				at := map[string]int{}
				for i, id := range seen {
					if j, dup := at[id]; dup {
						t.Fatalf("event %s is on the walk twice, at %d and %d", id, j, i)
					}
					at[id] = i
				}
				for _, id := range existed {
					if _, ok := at[id]; !ok {
						t.Errorf("event %s existed before the walk and was skipped", id)
					}
				}
				if between == 0 || len(seen) < len(existed) {
					t.Fatalf("%d pages' worth of inserts, %d events seen of %d", between, len(seen), len(existed))
				}

				// What was inserted meanwhile reads first now.
				now := readPage(t, e.ok(e.admin, log.query(walk.order), map[string]any{"first": 1}), log.path)
				if walk.backward {
					now = readPage(t, e.ok(e.admin, log.query(walk.order), map[string]any{"last": 1}), log.path)
				}
				if len(now.ids) != 1 || slices.Contains(existed, now.ids[0]) {
					t.Errorf("the newest event now is %v, one that existed before the walk", now.ids)
				}
			})
		}
	})
}

// ordPost sends an operation that must succeed, from any goroutine: it
// reports a failure rather than stopping the test.
func ordPost(e *env, query string, vars map[string]any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.admin)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var decoded struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.NewDecoder(res.Body).Decode(&decoded); err != nil || res.StatusCode != http.StatusOK || len(decoded.Errors) > 0 {
		return fmt.Errorf("HTTP %d, %v, %v", res.StatusCode, decoded.Errors, err)
	}
	return nil
}

// TestListOrderStatements: a page costs the same statements in either
// order and either direction — the key and the page — however deep it is.
func TestListOrderStatements(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d db.Dialect) {
		e := newEnv(t, d)
		ordSeed(e, 3) // members with personal keys, for Member.apiKeys
		team := hotTeam(t, e.db, e.admin)
		hotSeed(t, e.db, team, 120)
		events := make([]store.AuditEvent, 150)
		for i := range events {
			events[i] = store.AuditEvent{ID: ids.New(), TeamID: team, Action: "team.update", CreatedAt: store.Now()}
		}
		if err := e.db.Store.InsertAuditEvents(t.Context(), events); err != nil {
			t.Fatal(err)
		}

		statements := func(query string, vars map[string]any) int64 {
			t.Helper()
			before := e.db.Statements()
			r := e.gql(e.admin, query, vars)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("%s: status %d, errors %v", query, r.Status, r.Errors)
			}
			return e.db.Statements() - before
		}
		for _, order := range []string{"NEWEST_FIRST", "OLDEST_FIRST"} {
			for _, field := range []string{"auditEvents", "devices"} {
				deep := map[string]any{}
				for _, end := range []string{"endCursor", "startCursor"} {
					q := fmt.Sprintf(`{ team { %s(first: 100, order: %s) { pageInfo { %s } } } }`, field, order, end)
					deep[end] = e.ok(e.admin, q, nil).str("team." + field + ".pageInfo." + end)
				}
				pages := []struct {
					name  string
					query string
					vars  map[string]any
				}{
					{"first 1", `{ team { %s(first: 1, order: %s) { nodes { id } } } }`, nil},
					{"first 20", `{ team { %s(first: 20, order: %s) { nodes { id } } } }`, nil},
					{"first 100", `{ team { %s(first: 100, order: %s) { nodes { id } } } }`, nil},
					{"first 20 after 100 rows", `query($c: String!) { team { %s(first: 20, after: $c, order: %s) { nodes { id } } } }`, map[string]any{"c": deep["endCursor"]}},
					{"last 20", `{ team { %s(last: 20, order: %s) { nodes { id } } } }`, nil},
					{"last 20 before a row", `query($c: String!) { team { %s(last: 20, before: $c, order: %s) { nodes { id } } } }`, map[string]any{"c": deep["endCursor"]}},
				}
				for _, p := range pages {
					if got := statements(fmt.Sprintf(p.query, field, order), p.vars); got != 2 {
						t.Errorf("%s %s, %s: %d SQL statements, want 2 (the key, the page)", field, order, p.name, got)
					}
				}
				if got := statements(fmt.Sprintf(`{ team { %s(first: 20, order: %s) { totalCount nodes { id } } } }`, field, order), nil); got != 3 {
					t.Errorf("%s %s with totalCount: %d SQL statements, want 3", field, order, got)
				}
			}
			q := fmt.Sprintf(`{ team { devices(first: 100, order: %[1]s) { nodes { id } } apiKeys(first: 100, order: %[1]s) { nodes { id } }
  members(first: 100, order: %[1]s) { nodes { id apiKeys(first: 5, order: %[1]s) { nodes { id } } } } enrollmentKeys(order: %[1]s) { nodes { id } } auditEvents(order: %[1]s) { nodes { id } } } }`, order)
			if got := statements(q, nil); got != 7 {
				t.Errorf("five connections and the members' keys, %s: %d SQL statements, want 7 (the key, one per list)", order, got)
			}
		}
		// Without order, as before it existed: the same count.
		if got := statements(`{ team { devices(first: 100) { nodes { id } } apiKeys(first: 100) { nodes { id } }
  members(first: 100) { nodes { id apiKeys(first: 5) { nodes { id } } } } enrollmentKeys { nodes { id } } auditEvents { nodes { id } } } }`, nil); got != 7 {
			t.Errorf("five connections and the members' keys, default orders: %d SQL statements, want 7", got)
		}
	})
}
