#!/usr/bin/env bash
# Benchmark S6, one run, side by side on the same PostgreSQL:
#   1. brigade-postgres: 2 worker processes (crates/brigade-postgres/examples/s6_bench.rs)
#   2. a hand-written single-query SKIP LOCKED loop, 2 processes (same example)
#   3. graphile-worker from npm, 2 `graphile-worker --once` processes, unbatched
# Each pushes N no-op jobs first, then times the 2 processes working them off.
#
#   crates/brigade-bench/s6.sh            # N=100000, 3 rounds of brigade
#   N=20000 ROUNDS=1 crates/brigade-bench/s6.sh
#
# Needs: cargo, psql, node + npm (graphile-worker is installed into $GW_DIR,
# default a temporary folder; skipped with a message if npm cannot install it).
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
N=${N:-100000}
ROUNDS=${ROUNDS:-3}

echo "== S6 on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(psql -X "$URL" -tAc 'SHOW synchronous_commit') synchronous_commit"
cargo build --release -q -p brigade-postgres --example s6_bench
target/release/examples/s6_bench run "$URL" "$N" "$ROUNDS"

GW=${GW_DIR:-$(mktemp -d)}
if ! [ -x "$GW/node_modules/.bin/graphile-worker" ]; then
    (cd "$GW" && npm init -y >/dev/null && npm install --silent graphile-worker@0.17 >/dev/null) || {
        echo "S6 graphile-worker: skipped (npm could not install graphile-worker)"
        exit 0
    }
fi
mkdir -p "$GW/tasks"
echo 'module.exports = async () => {};' >"$GW/tasks/noop.js"
psql -X -q "$URL" -c 'DROP SCHEMA IF EXISTS graphile_worker CASCADE' 2>/dev/null
(cd "$GW" && node_modules/.bin/graphile-worker -c "$URL" --schema-only >/dev/null 2>&1)
t0=$(date +%s.%N)
psql -X -q "$URL" -c "SELECT graphile_worker.add_jobs(array(
    SELECT ROW('noop', json_build_object('i', i), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
    FROM generate_series(1, $N) i))" >/dev/null
t1=$(date +%s.%N)
(cd "$GW" && for _ in 1 2; do node_modules/.bin/graphile-worker -c "$URL" --once -j 10 >/dev/null 2>&1 & done; wait)
t2=$(date +%s.%N)
left=$(psql -X -tA "$URL" -c 'SELECT count(*) FROM graphile_worker._private_jobs')
[ "$left" = 0 ] || { echo "graphile-worker left $left jobs" >&2; exit 1; }
awk -v n="$N" -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
    printf "S6 graphile-worker 0.17: %d no-op jobs, 2 processes -j 10: %.0f jobs/s; push %.0f jobs/s\n", n, n / (c - b), n / (b - a) }'
psql -X -q "$URL" -c 'DROP SCHEMA graphile_worker CASCADE' 2>/dev/null
