#!/usr/bin/env bash
# Benchmark C4: `brigade fetch` vs `xargs -P curl`, GNU parallel with curl and
# aria2c, on 20,000 URLs against a local server that answers each after 50 ms,
# at concurrency 1,000 (ideal: 20,000 / 1,000 x 50 ms = 1.0 s).
#
#   crates/brigade-bench/fetch-c4.sh [ROUNDS]     (from the repository root)
#
# Builds the release `brigade` and `slow-http`, runs each tool ROUNDS times
# (3 by default; the peers once each when ROUNDS is 1), prints wall times,
# brigade's peak RSS (GNU time's %M) and every run's count of successes.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=20000
J=1000
cargo build --release -q -p brigade-cli -p brigade-bench
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
target/release/slow-http 0 50 > "$tmp/server.out" &
server=$!
for _ in $(seq 1 100); do grep -q ready "$tmp/server.out" 2>/dev/null && break; sleep 0.05; done
port=$(awk '/ready/ {print $2}' "$tmp/server.out")
seq 1 $N | sed "s|^|http://127.0.0.1:$port/item/|" > "$tmp/urls"

now() { date +%s.%N; }
run() { # NAME COMMAND...: prints the wall time
    local name=$1; shift
    local t0 t1
    t0=$(now); "$@"; t1=$(now)
    printf '%s %.3f\n' "$name" "$(echo "$t1 - $t0" | bc)"
}

echo "C4: $N URLs, 50 ms each, concurrency $J (ideal 1.0 s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
    /usr/bin/time -f '%M' -o "$tmp/rss" \
        target/release/brigade fetch -q -j $J --per-host $J -a "$tmp/urls" > "$tmp/out.jsonl" 2>"$tmp/err" &
    t0=$(now); wait $!; t1=$(now)
    ok=$(grep -c '"status_code":200' "$tmp/out.jsonl" || true)
    printf 'round %d brigade fetch: %.3f s, peak RSS %d KiB, %d/%d answered 200\n' \
        "$r" "$(echo "$t1 - $t0" | bc)" "$(tail -1 "$tmp/rss")" "$ok" $N
done
peer_rounds=$ROUNDS
for r in $(seq 1 "$peer_rounds"); do
    # One curl per URL (the usual way), and N/J URLs per curl (one connection
    # reused: the peers' best case, still 1,000 at once).
    # (C4_SKIP_ONE_PER_URL=1 skips the first: on 2 busy cores it takes minutes.)
    if [ -z "${C4_SKIP_ONE_PER_URL:-}" ]; then
        run "round $r xargs -P $J -n 1 curl:" sh -c "xargs -P $J -n 1 curl -s < '$tmp/urls' > /dev/null"
    fi
    run "round $r xargs -P $J -n $((N / J)) curl:" sh -c "xargs -P $J -n $((N / J)) curl -s < '$tmp/urls' > /dev/null"
    run "round $r parallel -j $J -N $((N / J)) curl:" sh -c "parallel -j $J -X -N $((N / J)) curl -s {} < '$tmp/urls' > /dev/null"
    if command -v aria2c >/dev/null; then
        rm -rf "$tmp/dl"; mkdir "$tmp/dl"
        run "round $r aria2c -j $J:" aria2c -q -i "$tmp/urls" -j $J -d "$tmp/dl" \
            --allow-overwrite=true --auto-file-renaming=false --max-connection-per-server=16 \
            --console-log-level=error --summary-interval=0
        printf '  aria2c saved %d files\n' "$(ls "$tmp/dl" | wc -l)"
    else
        echo "round $r aria2c: not installed (apt-get install aria2)"
    fi
done
