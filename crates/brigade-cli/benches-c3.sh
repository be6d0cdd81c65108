#!/usr/bin/env bash
# Scenario C3: N generated 3000x2000 JPEGs to 800x600 at quality 80,
# `brigade images` against ImageMagick `convert` driven by `xargs -P $(nproc)`.
# Prints images per second and peak RSS for each, side by side.
# Not run by CI. Needs: imagemagick, GNU time (/usr/bin/time), a release build
# (cargo build --release -p brigade-cli).
#
# Usage: crates/brigade-cli/benches-c3.sh [N] [BRIGADE_BINARY]
set -euo pipefail

N=${1:-500}
BIN=${2:-${CARGO_TARGET_DIR:-target}/release/brigade}
P=$(nproc)
WORK=$(mktemp -d /tmp/brigade-c3.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

command -v convert >/dev/null || { echo "needs ImageMagick's convert" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no brigade binary at $BIN" >&2; exit 2; }

# A few distinct photo-like sources (fractal plasma plus noise), copied round-robin.
mkdir -p "$WORK/in"
for k in 0 1 2 3 4; do
    convert -seed "$k" -size 3000x2000 plasma:fractal -attenuate 0.3 +noise Gaussian \
        -quality 90 "$WORK/src$k.jpg"
done
for i in $(seq 0 $((N - 1))); do
    cp "$WORK/src$((i % 5)).jpg" "$WORK/in/$(printf 'img%04d.jpg' "$i")"
done
echo "C3: $N x 3000x2000 JPEG ($(du -sh "$WORK/in" | cut -f1)) -> fit 800x600, quality 80, $P cores"

# Warm the page cache for both.
cat "$WORK/in"/*.jpg >/dev/null

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s }'; }

# brigade: one process, $P workers (the default), peak RSS from GNU time.
start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$WORK/b.time" \
    "$BIN" images "$WORK/in" --out "$WORK/out-b" --max 800x600 --quality 80 --json \
    >"$WORK/b.json"
end=$(date +%s.%N)
b_secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
b_rss_kb=$(cat "$WORK/b.time")
b_count=$(find "$WORK/out-b" -name '*.jpg' | wc -l)

mkdir -p "$WORK/out-m"
# ImageMagick: one convert per image, $P at a time. GNU time's maximum RSS for
# the xargs tree is the largest single process; $P of them run at once.
start=$(date +%s.%N)
(cd "$WORK/in" && ls ./*.jpg | /usr/bin/time -f '%M' -o "$WORK/m.time" \
    xargs -P "$P" -I{} convert {} -auto-orient -resize 800x600 -quality 80 "$WORK/out-m/{}" \
    2>/dev/null) || true
end=$(date +%s.%N)
m_secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
m_rss_kb=$(cat "$WORK/m.time")
m_count=$(find "$WORK/out-m" -name '*.jpg' | wc -l)

printf '%-28s %8s %8s %10s %22s\n' tool images seconds images/s "peak RSS"
printf '%-28s %8d %8.1f %10s %22s\n' "brigade images -j $P" "$b_count" "$b_secs" \
    "$(rate "$b_count" "$b_secs")" "$((b_rss_kb / 1024)) MiB (whole run)"
printf '%-28s %8d %8.1f %10s %22s\n' "xargs -P $P convert" "$m_count" "$m_secs" \
    "$(rate "$m_count" "$m_secs")" "$((m_rss_kb / 1024)) MiB x $P processes"
echo "brigade's own report (VmHWM): $(grep -o '"peak_rss_bytes":[0-9]*' "$WORK/b.json")"
echo "output sizes: brigade $(du -sh "$WORK/out-b" | cut -f1), convert $(du -sh "$WORK/out-m" | cut -f1)"
