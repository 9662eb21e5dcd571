#!/usr/bin/env bash
# The load run of the performance issue: Keyplane against a bare net/http +
# pgx baseline doing the same work, side by side, on this machine.
#
#   bench/run.sh
#   DEVICES=1000000 KEYS=100000 bench/run.sh      # the big run
#
# It installs wrk if missing (apt-get), builds keyplane, the baseline, the
# seeder and the chart maker, recreates the PostgreSQL database
# keyplane_bench on 127.0.0.1:5432 (user postgres, trust auth), seeds one
# team, starts both servers on loopback, checks that they give the same
# answer, then runs wrk against each in turn (A B A B A B), a deep-page
# check on Keyplane and a concurrency sweep on both. It prints every run and
# the Keyplane/baseline ratios, and writes bench/results/latest.csv,
# latest.md and chart.svg. It sends traffic only to 127.0.0.1, stops the
# servers when it ends, and leaves the database for inspection.
#
# Settings (environment):
#   DEVICES=10000        devices in the team
#   KEYS=1               API keys in the team (the one used included)
#   PAIRS=3              A B pairs (the issue asks for at least 3)
#   DURATION=10s         each paired run and each deep-page run
#   CONNECTIONS=32       wrk connections of those runs
#   THREADS=2            wrk threads (at most the connections)
#   WARMUP=3s            an unmeasured run against each server first
#   DURATION_SWEEP=5s    each run of the sweep
#   SWEEP="1 8 32 128"   connections of the sweep
#   DEEP_ROW=9500        the deep page starts after this row
#   KEYPLANE_PORT=8089, BASELINE_PORT=8090, BENCH_DB=keyplane_bench
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RESULTS=$BENCH/results

DEVICES=${DEVICES:-10000}
KEYS=${KEYS:-1}
PAIRS=${PAIRS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3s}
DURATION_SWEEP=${DURATION_SWEEP:-5s}
SWEEP=${SWEEP:-1 8 32 128}
DEEP_ROW=${DEEP_ROW:-9500}
KEYPLANE_PORT=${KEYPLANE_PORT:-8089}
BASELINE_PORT=${BASELINE_PORT:-8090}
BENCH_DB=${BENCH_DB:-keyplane_bench}

HOST=127.0.0.1
KP_URL=http://$HOST:$KEYPLANE_PORT/graphql
BL_URL=http://$HOST:$BASELINE_PORT/graphql
DB_URL="postgres://postgres@$HOST:5432/$BENCH_DB?sslmode=disable"
QUERY='{"query":"query { team { devices(first: 20) { nodes { id name } } } }"}'
export PGHOST=$HOST PGPORT=5432 PGUSER=postgres

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

say() { printf '\n== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for v in DEVICES KEYS PAIRS CONNECTIONS THREADS DEEP_ROW KEYPLANE_PORT BASELINE_PORT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v} is not a whole number"
done
for v in KEYS PAIRS CONNECTIONS THREADS; do
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
(( PAIRS >= 3 )) || echo "bench: note: PAIRS=$PAIRS; the issue asks for at least 3 pairs" >&2

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

for port in "$KEYPLANE_PORT" "$BASELINE_PORT"; do
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    die "something already listens on $HOST:$port; stop it or set KEYPLANE_PORT / BASELINE_PORT"
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
  go build -o "$TMP/baseline" ./bench/baseline
  go build -o "$TMP/seed" ./bench/seed
  go build -o "$TMP/chart" ./bench/chart
)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown ]] && [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  COMMIT="$COMMIT (with uncommitted changes)"
fi
echo "built keyplane $COMMIT, baseline, seed, chart"

# --- database ----------------------------------------------------------------

say "database $BENCH_DB: $DEVICES devices, $KEYS keys"
PGOPTIONS='-c client_min_messages=warning' \
  psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null
psql -q -X -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $BENCH_DB" >/dev/null
KEY=$(DATABASE_URL=$DB_URL "$TMP/seed" -devices "$DEVICES" -keys "$KEYS")
[[ $KEY == kp_* ]] || die "the seeder printed no key"
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$BENCH_DB" -c "$1"; }
[[ $(sql "SELECT count(*) FROM teams") == 1 ]] || die "expected one team in $BENCH_DB"

# --- servers -----------------------------------------------------------------

say "servers"
# Results of an earlier run go; the servers' logs are kept with the new ones.
rm -rf "$RESULTS/wrk" "$RESULTS"/latest.* "$RESULTS"/*.log "$RESULTS/chart.svg"
mkdir -p "$RESULTS/wrk"
env -u REDIS_URL -u KEYPLANE_TRUSTED_PROXIES \
  DATABASE_URL="$DB_URL" LISTEN_ADDR="$HOST:$KEYPLANE_PORT" \
  KEYPLANE_RATE_LIMIT_RPS=0 KEYPLANE_AUTH_FAILURE_RPS=0 LOG_LEVEL=error \
  "$TMP/keyplane" serve >"$RESULTS/keyplane.log" 2>&1 &
KP_PID=$!
PIDS+=("$KP_PID")
DATABASE_URL="$DB_URL" BASELINE_ADDR="$HOST:$BASELINE_PORT" "$TMP/baseline" >"$RESULTS/baseline.log" 2>&1 &
BL_PID=$!
PIDS+=("$BL_PID")

# post URL [AUTH] [BODY]: POST a query; the body goes to $TMP/body, the
# status to stdout.
post() {
  curl -s -o "$TMP/body" -w '%{http_code}' --max-time 10 -X POST "$1" \
    -H "Authorization: ${2:-Bearer $KEY}" -H 'Content-Type: application/json' -d "${3:-$QUERY}" || true
}

wait_for() { # name pid url log
  local status
  for _ in $(seq 1 120); do
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2; die "$1 exited"; }
    status=$(post "$3")
    [[ $status == 200 ]] && { echo "$1 answers on $3 (pid $2)"; return; }
    sleep 0.25
  done
  cat "$4" >&2
  die "$1 did not answer 200 on $3 within 30 s (last status $status)"
}
wait_for keyplane "$KP_PID" "$KP_URL" "$RESULTS/keyplane.log"
wait_for baseline "$BL_PID" "$BL_URL" "$RESULTS/baseline.log"

# The two must give the same answer, or the comparison means nothing.
same_answer() { # what keyplane-url baseline-url body
  local kp bl
  [[ $(post "$2" "" "$4") == 200 ]] || { cat "$TMP/body" >&2; die "$1: keyplane did not answer 200"; }
  kp=$(jq -cS . "$TMP/body")
  [[ $(post "$3" "" "$4") == 200 ]] || { cat "$TMP/body" >&2; die "$1: baseline did not answer 200"; }
  bl=$(jq -cS . "$TMP/body")
  [[ $kp == "$bl" ]] || { printf 'keyplane: %s\nbaseline: %s\n' "$kp" "$bl" >&2; die "$1: the servers answer differently"; }
  [[ $(jq '.data.team.devices.nodes | length' <<<"$kp") == 20 ]] || die "$1: expected 20 devices, got $kp"
  echo "$1: same 20 devices from both ($(jq -r '.data.team.devices.nodes[0].name' <<<"$kp") …)"
}
same_answer "first page" "$KP_URL" "$BL_URL" "$QUERY"
bad_key="${KEY%?}$([[ ${KEY: -1} == A ]] && echo B || echo A)"
for s in keyplane:"$KP_URL" baseline:"$BL_URL"; do
  status=$(post "${s#*:}" "Bearer $bad_key")
  [[ $status == 401 ]] || die "${s%%:*} answered $status, not 401, to a wrong key"
done
echo "a wrong key: 401 from both"

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
sample_rss "$KP_PID" "$TMP/rss.keyplane" &
PIDS+=("$!")
sample_rss "$BL_PID" "$TMP/rss.baseline" &
PIDS+=("$!")

# --- wrk ---------------------------------------------------------------------

CSV=$RESULTS/latest.csv
echo "phase,server,connections,threads,seconds,requests,rps,p50_ms,p99_ms,max_ms,non2xx,errors" >"$CSV"
RUN=0
BAD_RUNS=0     # runs with more than 1% non-2xx answers: their numbers mean nothing
NON2XX_TOTAL=0

# bench PHASE SERVER CONNS DURATION [AFTER]: one wrk run, recorded in the
# CSV; sets R_rps, R_p50_ms, R_p99_ms (and the other RESULT fields).
bench() {
  local phase=$1 server=$2 conns=$3 duration=$4 after=${5:-} url threads out line
  url=$KP_URL
  [[ $server == baseline ]] && url=$BL_URL
  threads=$(( THREADS < conns ? THREADS : conns ))
  RUN=$((RUN + 1))
  out=$(printf '%s/wrk/%02d-%s-%s-c%d.txt' "$RESULTS" "$RUN" "$phase" "$server" "$conns")
  KEY=$KEY AFTER=$after wrk -t "$threads" -c "$conns" -d "$duration" --latency \
    -s "$BENCH/post.lua" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  line=$(grep -m1 '^RESULT ' "$out") || { cat "$out" >&2; die "wrk printed no RESULT line"; }
  # RESULT requests= seconds= rps= p50_ms= p99_ms= max_ms= non2xx= errors=
  read -r _ R_requests R_seconds R_rps R_p50_ms R_p99_ms R_max_ms R_non2xx R_errors \
    <<<"$(sed -E 's/ [a-z0-9_]+=/ /g' <<<"$line")"
  echo "$phase,$server,$conns,$threads,$R_seconds,$R_requests,$R_rps,$R_p50_ms,$R_p99_ms,$R_max_ms,$R_non2xx,$R_errors" >>"$CSV"
  printf '  %-10s %-8s c=%-3d %9.1f req/s   p50 %7.2f ms   p99 %7.2f ms' \
    "$phase" "$server" "$conns" "$R_rps" "$R_p50_ms" "$R_p99_ms"
  if (( R_non2xx > 0 || R_errors > 0 )); then
    printf '   !! %d non-2xx, %d socket errors' "$R_non2xx" "$R_errors"
  fi
  printf '\n'
  NON2XX_TOTAL=$((NON2XX_TOTAL + R_non2xx))
  (( R_non2xx * 100 <= R_requests )) || BAD_RUNS=$((BAD_RUNS + 1))
  kill -0 "$KP_PID" 2>/dev/null || { tail -n 50 "$RESULTS/keyplane.log" >&2; die "keyplane exited"; }
  kill -0 "$BL_PID" 2>/dev/null || { tail -n 50 "$RESULTS/baseline.log" >&2; die "the baseline exited"; }
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.3f", a / b }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "warm-up ($WARMUP each, not recorded)"
for url in "$KP_URL" "$BL_URL"; do
  KEY=$KEY wrk -t "$(( THREADS < CONNECTIONS ? THREADS : CONNECTIONS ))" -c "$CONNECTIONS" -d "$WARMUP" -s "$BENCH/post.lua" "$url" >/dev/null
done
echo "done"

say "side by side: $PAIRS pairs, $DURATION each, $CONNECTIONS connections, $THREADS threads"
PAIR_ROWS=()
TPUT_RATIOS=
P99_RATIOS=
for i in $(seq 1 "$PAIRS"); do
  bench "pair$i" keyplane "$CONNECTIONS" "$DURATION"
  kp_rps=$R_rps kp_p50=$R_p50_ms kp_p99=$R_p99_ms
  bench "pair$i" baseline "$CONNECTIONS" "$DURATION"
  t=$(ratio "$kp_rps" "$R_rps")
  p=$(ratio "$kp_p99" "$R_p99_ms")
  TPUT_RATIOS+=" $t"
  P99_RATIOS+=" $p"
  printf '  pair %d: throughput keyplane/baseline %s, p99 keyplane/baseline %s\n' "$i" "$t" "$p"
  PAIR_ROWS+=("| $i | $kp_rps | $R_rps | $t | $kp_p50 | $R_p50_ms | $kp_p99 | $R_p99_ms | $p |")
done
MED_TPUT=$(median <<<"$TPUT_RATIOS")
MED_P99=$(median <<<"$P99_RATIOS")
printf '  median: throughput ratio %s, p99 ratio %s\n' "$MED_TPUT" "$MED_P99"

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
  same_answer "page after row $DEEP_ROW_USED" "$KP_URL" "$BL_URL?after=$CURSOR" "$DEEP_QUERY"
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
  bench sweep keyplane "$c" "$DURATION_SWEEP"
  kp_rps=$R_rps kp_p99=$R_p99_ms
  bench sweep baseline "$c" "$DURATION_SWEEP"
  SWEEP_ROWS+=("| $c | $kp_rps | $R_rps | $(ratio "$kp_rps" "$R_rps") | $kp_p99 | $R_p99_ms | $(ratio "$kp_p99" "$R_p99_ms") |")
done

RSS_KP=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss.keyplane" 2>/dev/null || echo "?")
RSS_BL=$(awk '{ printf "%.1f", $1 / 1024 }' "$TMP/rss.baseline" 2>/dev/null || echo "?")
say "memory"
echo "  keyplane max RSS ${RSS_KP} MiB (baseline ${RSS_BL} MiB), sampled every 0.2 s over the whole run"

# --- report ------------------------------------------------------------------

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

"$TMP/chart" -in "$CSV" -out "$RESULTS/chart.svg" -subtitle "$MACHINE · PostgreSQL $PGVER · $DEVICES devices · ${DURATION_SWEEP} per point · $DATE"

{
  echo "# Keyplane load run, $DATE"
  echo
  echo "- **Machine:** $MACHINE, Linux $(uname -r); load average (1, 5, 15 min) at the start $LOAD_START"
  echo "- **Software:** Keyplane $COMMIT; $GOVER; PostgreSQL $PGVER; wrk $WRKVER"
  echo "- **Data:** one team; devices: $DEVICES; API keys: $KEYS"
  echo "- **Request:** \`query { team { devices(first: 20) { nodes { id name } } } }\` with a Bearer key, POST over loopback"
  echo "- **Servers:** Keyplane (gqlgen + GORM, rate limits off, LOG_LEVEL=error) and the baseline (\`bench/baseline\`: net/http + pgx, same credential check, same keyset query, same JSON); both pools 20 connections"
  echo "- **wrk:** $THREADS threads, $CONNECTIONS connections, $DURATION per run, after a $WARMUP warm-up of each; runs alternate Keyplane, baseline"
  echo
  echo "## Side by side"
  echo
  echo "| pair | Keyplane req/s | baseline req/s | throughput ratio | Keyplane p50 ms | baseline p50 ms | Keyplane p99 ms | baseline p99 ms | p99 ratio |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${PAIR_ROWS[@]}"
  echo "| **median** | | | **$MED_TPUT** | | | | | **$MED_P99** |"
  echo
  echo "## Targets of the issue"
  echo
  echo "| target | measured | |"
  echo "| --- | ---: | --- |"
  echo "| throughput ≥ 0.8 × the baseline (median of pairs) | $MED_TPUT | $(verdict "$MED_TPUT" ">=" 0.8) |"
  echo "| p99 ≤ 2 × the baseline's (median of pairs) | $MED_P99 | $(verdict "$MED_P99" "<=" 2) |"
  if [[ -n $DEEP_DONE ]]; then
    echo "| page after row $DEEP_ROW_USED ≤ 1.2 × the first page (p50) | $DEEP_P50 | $(verdict "$DEEP_P50" "<=" 1.2) |"
  fi
  if [[ $RSS_KP != "?" ]]; then
    echo "| Keyplane RSS ≤ 150 MiB (max over the run) | $RSS_KP MiB | $(verdict "$RSS_KP" "<=" 150) |"
  fi
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
  echo "Largest resident set over the whole run, sampled every 0.2 s: Keyplane **$RSS_KP MiB**, baseline $RSS_BL MiB."
  echo
  echo "## Concurrency sweep ($DURATION_SWEEP per point)"
  echo
  echo "| connections | Keyplane req/s | baseline req/s | throughput ratio | Keyplane p99 ms | baseline p99 ms | p99 ratio |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${SWEEP_ROWS[@]}"
  echo
  echo "![Throughput and p99 against connections](chart.svg)"
  echo
  echo "Reproduce: \`DEVICES=$DEVICES KEYS=$KEYS PAIRS=$PAIRS DURATION=$DURATION CONNECTIONS=$CONNECTIONS bench/run.sh\`. Every run is in \`latest.csv\`; wrk's own output in \`wrk/\`."
  if (( NON2XX_TOTAL > 0 )); then
    echo
    echo "**Warning:** $NON2XX_TOTAL non-2xx response(s) in all; $BAD_RUNS run(s) had more than 1% and are not valid. See the \`non2xx\` column of \`latest.csv\` and the servers' logs."
  fi
} >"$RESULTS/latest.md"

say "results"
echo "  machine: $MACHINE"
printf '  median keyplane/baseline: throughput %s (target ≥ 0.8), p99 %s (target ≤ 2)\n' "$MED_TPUT" "$MED_P99"
if [[ -n $DEEP_DONE ]]; then
  printf '  deep/first p50: %s (target ≤ 1.2)\n' "$DEEP_P50"
fi
printf '  keyplane max RSS: %s MiB (target ≤ 150)\n' "$RSS_KP"
echo "  wrote $RESULTS/latest.csv, latest.md, chart.svg (wrk's output in wrk/, the servers' logs beside)"
if (( NON2XX_TOTAL > 0 )); then
  echo "  warning: $NON2XX_TOTAL non-2xx response(s) in all (the non2xx column of latest.csv); the servers' errors, but those of requests that wrk cut off when a run ended:"
  cat "$RESULTS/keyplane.log" "$RESULTS/baseline.log" | grep -v -e 'context canceled' -e 'serving on' |
    tail -n 20 | sed 's/^/    /' || true
fi
if (( BAD_RUNS > 0 )); then
  die "$BAD_RUNS run(s) had more than 1% non-2xx responses: their numbers are not valid"
fi
