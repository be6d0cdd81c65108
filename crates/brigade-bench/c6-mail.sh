#!/usr/bin/env bash
# Scenario C6: N messages to a local aiosmtpd sink, `brigade mail` against
# mailmerge (PyPI; sequential, a new connection per message) and a Python
# smtplib loop on one connection. Peers alternate within each round; medians
# of ROUNDS rounds. Each run gets a fresh sink; the sink counts what it
# accepted (checked against N) and reports its own CPU time, so the table
# says when the sink, not the client, is the bottleneck.
#
# Not run by CI. Needs: Debian's python3-aiosmtpd (/usr/bin/python3), GNU time
# (/usr/bin/time), a release build (cargo build --release -p brigade-cli), and
# mailmerge in a venv:
#   python3 -m venv /tmp/c6venv && /tmp/c6venv/bin/pip install mailmerge
#
# Usage: crates/brigade-bench/c6-mail.sh [N] [BRIGADE_BINARY]
#   env: ROUNDS (3), MAILMERGE (/tmp/c6venv/bin/mailmerge), MM_N (mailmerge's
#   message count, N by default: it is slow), JOBS ("1 4 8": brigade -j values)
set -uo pipefail

N=${1:-10000}
BIN=${2:-${CARGO_TARGET_DIR:-target}/release/brigade}
ROUNDS=${ROUNDS:-3}
MAILMERGE=${MAILMERGE:-/tmp/c6venv/bin/mailmerge}
MM_N=${MM_N:-$N}
JOBS=${JOBS:-"1 4 8"}
HERE=$(cd "$(dirname "$0")" && pwd)
SINK="$HERE/../brigade-cli/tests/mail_support/smtp_sink.py"
WORK=$(mktemp -d /tmp/brigade-c6.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "no brigade binary at $BIN" >&2; exit 2; }
/usr/bin/python3 -c 'import aiosmtpd' || { echo "needs python3-aiosmtpd" >&2; exit 2; }
[ -x "$MAILMERGE" ] || { echo "needs mailmerge at $MAILMERGE (see the header)" >&2; exit 2; }

# Recipients and the same small text message for every tool.
/usr/bin/python3 - "$WORK" "$N" <<'EOF'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/to.csv", "w") as f:
    f.write("email,name,code\n")
    for i in range(n):
        f.write(f"user{i}@example.org,User {i},{i * 7}\n")
body = "Dear {{ name }},\n\nyour code is {{ code }}.\n\nThe shop\n"
with open(f"{work}/brigade.txt", "w") as f:
    f.write("Subject: Hello {{ name }}\nFrom: Shop <shop@example.com>\n\n" + body)
with open(f"{work}/mailmerge.txt", "w") as f:
    f.write("TO: {{ email }}\nSUBJECT: Hello {{ name }}\nFROM: Shop <shop@example.com>\n\n" + body)
EOF
head -n $((MM_N + 1)) "$WORK/to.csv" > "$WORK/to-mm.csv"

cat > "$WORK/smtplib_loop.py" <<'EOF'
import csv, smtplib, sys
from email.message import EmailMessage
port, path = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port)
for row in csv.DictReader(open(path)):
    m = EmailMessage()
    m["From"] = "Shop <shop@example.com>"
    m["To"] = row["email"]
    m["Subject"] = f"Hello {row['name']}"
    m.set_content(f"Dear {row['name']},\n\nyour code is {row['code']}.\n\nThe shop\n")
    s.send_message(m)
s.quit()
EOF

# Starts a sink (PROCS processes sharing the port); sets PORT and SINK_PID.
start_sink() {
    local procs=$1 i
    rm -f "$WORK"/count* "$WORK/port"
    /usr/bin/python3 "$SINK" --count-only --out "$WORK/count" --processes "$procs" > "$WORK/port" &
    SINK_PID=$!
    for i in $(seq 1 200); do
        grep -q '^PORT' "$WORK/port" 2>/dev/null && break
        sleep 0.05
    done
    PORT=$(awk '/^PORT/ { print $2 }' "$WORK/port")
    [ -n "$PORT" ] || { echo "the sink did not start" >&2; exit 2; }
}

# CPU seconds used so far by the sink and its children (utime + stime + cutime + cstime).
sink_cpu() {
    local total=0 p
    for p in $SINK_PID $(pgrep -P "$SINK_PID" || true); do
        total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{ print t + ($14 + $15) / hz }' "/proc/$p/stat" 2>/dev/null || echo "$total")
    done
    echo "$total"
}

# Stops the sink (it writes its count on SIGTERM); sets GOT.
stop_sink() {
    kill -TERM "$SINK_PID"
    wait "$SINK_PID" 2>/dev/null
    GOT=$(cat "$WORK"/count.* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
}

# run NAME EXPECTED PROCS COMMAND...: one timed run; appends "name secs msgs/s rss_mib sink_cpu_share" to results.
run() {
    local name=$1 expect=$2 procs=$3
    shift 3
    start_sink "$procs"
    set -- "${@//PORT/$PORT}"
    local cpu0 start end secs cpu1 got rss
    cpu0=$(sink_cpu)
    start=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { echo "$name failed:" >&2; tail -5 "$WORK/err" >&2; }
    [ -s "$WORK/time" ] || echo 0 > "$WORK/time"
    end=$(date +%s.%N)
    cpu1=$(sink_cpu)
    stop_sink
    got=$GOT
    rss=$(tail -1 "$WORK/time")
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
    [ "$got" = "$expect" ] || echo "WARNING: $name: the sink got $got messages, expected $expect" >&2
    awk -v n="$name" -v s="$secs" -v m="$got" -v r="$rss" -v c0="$cpu0" -v c1="$cpu1" \
        'BEGIN { printf "%s %.3f %.1f %.1f %.2f\n", n, s, m / s, r / 1024, (c1 - c0) / s }' >> "$WORK/results"
}

echo "C6: $N messages (mailmerge: $MM_N), $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
    for j in $JOBS; do
        run "brigade-j$j" "$N" 1 "$BIN" mail --smtp "smtp://127.0.0.1:PORT" --to "$WORK/to.csv" \
            --template "$WORK/brigade.txt" --status "$WORK/st-$r-$j.jsonl" -j "$j" -q
    done
    # The same with the sink spread over 2 processes (SO_REUSEPORT): is the sink the limit?
    run "brigade-j8-sink2" "$N" 2 "$BIN" mail --smtp "smtp://127.0.0.1:PORT" --to "$WORK/to.csv" \
        --template "$WORK/brigade.txt" --status "$WORK/st-$r-s2.jsonl" -j 8 -q
    run "smtplib-loop" "$N" 1 /usr/bin/python3 "$WORK/smtplib_loop.py" PORT "$WORK/to.csv"
    # mailmerge reads the port from its config file: written once the sink has one.
    run "mailmerge" "$MM_N" 1 bash -c 'printf "[smtp_server]\nhost = 127.0.0.1\nport = %s\nratelimit = 0\n" "$1" > "$2" && shift 2 && exec "$@"' \
        _ PORT "$WORK/mm.conf" "$MAILMERGE" --no-dry-run --no-limit --output-format raw \
        --template "$WORK/mailmerge.txt" --database "$WORK/to-mm.csv" --config "$WORK/mm.conf"
done
echo
printf '%-18s %10s %12s %12s %14s %16s\n' tool "median s" "msgs/s" "range msgs/s" "peak RSS MiB" "sink CPU/wall"
awk '{ print $1 }' "$WORK/results" | sort -u | while read -r t; do
    grep "^$t " "$WORK/results" | sort -k3 -n | awk -v t="$t" '
        { s[NR] = $2; m[NR] = $3; r[NR] = $4; c[NR] = $5 }
        END { k = int((NR + 1) / 2); printf "%-18s %10.2f %12.0f %5.0f-%-6.0f %14.1f %16.2f\n", t, s[k], m[k], m[1], m[NR], r[k], c[k] }'
done | tee "$WORK/table"
bm=$(awk '$1 == "brigade-j8" { print $3 }' "$WORK/table")
for peer in smtplib-loop mailmerge; do
    pm=$(awk -v p="$peer" '$1 == p { print $3 }' "$WORK/table")
    [ -n "$pm" ] && [ "$pm" != 0 ] && awk -v b="$bm" -v p="$pm" -v n="$peer" 'BEGIN { printf "brigade -j8 / %s: %.1fx\n", n, b / p }'
done
