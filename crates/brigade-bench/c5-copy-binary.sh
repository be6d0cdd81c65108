#!/usr/bin/env bash
# C5 on PostgreSQL: brigade load with binary COPY (the default), with --method copy-text, and
# psql \copy, 2,000,000 rows of C5's 8 columns as CSV, 3 rounds alternating. Run from the repo
# root after cargo build --release -p brigade-cli.
set -euo pipefail
DB=postgres://postgres@127.0.0.1:5432/test
DDL="id BIGINT, user_id BIGINT, amount DOUBLE PRECISION, ratio DOUBLE PRECISION, name TEXT, category TEXT, created_at TIMESTAMP, updated_at TIMESTAMP"
D=$(mktemp -d /tmp/c5b.XXXX); chmod 777 $D
psql -X -q "$DB" 2>/dev/null <<SQL
DROP TABLE IF EXISTS cf_src, c5b;
CREATE TABLE cf_src ($DDL); CREATE TABLE c5b ($DDL);
INSERT INTO cf_src SELECT i, i * 7919 % 100000, (i % 10000) + (i % 100) / 100.0, (i * 31 % 1000) / 997.0,
 'customer ' || i || ', books', 'games', timestamp '2024-01-01' + (i % 86400) * interval '1 second', timestamp '2025-01-01 12:00:00'
FROM generate_series(1::bigint, 2000000) AS i;
COPY cf_src TO '$D/c5.csv' WITH (FORMAT csv, HEADER);
DROP TABLE cf_src;
SQL
ls -la $D/c5.csv
t() { psql -X -q "$DB" -c "TRUNCATE c5b"; local a=$(date +%s.%N); "$@" >/dev/null 2>&1; local b=$(date +%s.%N); echo "$b - $a" | bc -l; }
for r in 1 2 3; do
  x=$(t target/release/brigade load --db $DB --table c5b --method copy -q $D/c5.csv)
  y=$(t target/release/brigade load --db $DB --table c5b --method copy-text -q $D/c5.csv)
  z=$(t psql -X -q $DB -c "\\copy c5b FROM '$D/c5.csv' WITH (FORMAT csv, HEADER)")
  n=$(psql -X -tA $DB -c "SELECT count(*) FROM c5b")
  printf 'round %d: binary %.2f s, text %.2f s, psql \\copy %.2f s (rows %s)\n' $r $x $y $z $n
done
psql -X -q "$DB" -c "DROP TABLE c5b"; rm -rf $D
cut -d' ' -f1 /proc/loadavg
