#!/usr/bin/env bash
# Which COPY format costs PostgreSQL less for C5's rows: text or binary?
# Server-side COPY from files written by the server itself, so that only the
# server's parse-and-insert work is timed (no client, no network). Rounds
# alternate the two formats; prints each time, the medians and the ratio.
#
# Usage: crates/brigade-bench/copy-format.sh [ROWS] [ROUNDS]   (default 2000000 3)
set -euo pipefail
ROWS=${1:-2000000}
ROUNDS=${2:-3}
DB=${DB:-postgres://postgres@127.0.0.1:5432/test}
DIR=$(mktemp -d /tmp/copy-format.XXXXXX)
chmod 777 "$DIR"
trap 'rm -rf "$DIR"; psql -X -q "$DB" -c "DROP TABLE IF EXISTS cf_src, cf_dst" >/dev/null 2>&1 || true' EXIT
DDL="id BIGINT, user_id BIGINT, amount DOUBLE PRECISION, ratio DOUBLE PRECISION, name TEXT, category TEXT, created_at TIMESTAMP, updated_at TIMESTAMP"
psql -X -q -v ON_ERROR_STOP=1 "$DB" 2>/dev/null <<SQL
DROP TABLE IF EXISTS cf_src, cf_dst;
CREATE TABLE cf_src ($DDL);
CREATE TABLE cf_dst ($DDL);
INSERT INTO cf_src
SELECT i, i * 7919 % 100000, (i % 10000) + (i % 100) / 100.0, (i * 31 % 1000) / 997.0,
       'customer ' || i || ', ' || (ARRAY['books','games','garden','tools','toys','food','music','sport'])[i % 8 + 1],
       (ARRAY['books','games','garden','tools','toys','food','music','sport'])[i / 8 % 8 + 1],
       timestamp '2024-01-01' + (i % 365) * interval '1 day' + (i % 86400) * interval '1 second',
       timestamp '2025-01-01 12:00:00' + (i % 28) * interval '1 day'
FROM generate_series(1::bigint, $ROWS) AS i;
COPY cf_src TO '$DIR/rows.txt';
COPY cf_src TO '$DIR/rows.bin' (FORMAT binary);
SQL
echo "rows: $ROWS; text file $(stat -c %s "$DIR/rows.txt") bytes, binary file $(stat -c %s "$DIR/rows.bin") bytes"
now() { date +%s.%N; }
timed() { # FORMAT-OPTION
    psql -X -q "$DB" -c "TRUNCATE cf_dst" >/dev/null
    local t0 t1
    t0=$(now)
    psql -X -q -v ON_ERROR_STOP=1 "$DB" -c "COPY cf_dst FROM '$1' $2" >/dev/null
    t1=$(now)
    echo "$t1 - $t0" | bc -l
}
text=(); bin=()
for r in $(seq 1 "$ROUNDS"); do
    text+=("$(timed "$DIR/rows.txt" "")")
    bin+=("$(timed "$DIR/rows.bin" "(FORMAT binary)")")
    printf 'round %d: text %.2f s, binary %.2f s\n' "$r" "${text[-1]}" "${bin[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mt=$(median "${text[@]}"); mb=$(median "${bin[@]}")
printf 'median: text %.2f s, binary %.2f s; binary / text = %.2f\n' "$mt" "$mb" "$(echo "$mb / $mt" | bc -l)"
printf 'load average (1 min) at the end: %s\n' "$(cut -d' ' -f1 /proc/loadavg)"
