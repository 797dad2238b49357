#!/usr/bin/env bash
# What a watching browser costs: watches a 20,000,000-row TSQR (release large-svd, 64 MiB,
# chunks of 2,000 rows: 10,000 panels, the stream's 3,000-rectangle cap reached) in Chromium
# with the tests' playwright script, and prints the page's render times (ms per update).
#
#   bash benches/dashboard_render.sh [LARGE_SVD] [CHROMIUM] [PLAYWRIGHT_NODE_MODULES]
#
# Defaults: target/release/large-svd, /usr/bin/chromium, .ci/node/node_modules (what .ci/run
# installs). The page records each render's time in window.outcoreRenderTimes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/large-svd}
CHROMIUM=${2:-/usr/bin/chromium}
MODULES=${3:-.ci/node/node_modules}
LOG=$(mktemp)
OUT=$(mktemp)
trap 'rm -f "$LOG" "$OUT"' EXIT
"$BIN" tsqr --rows 20000000 --chunk-rows 2000 --memory-limit 64MiB --dashboard 127.0.0.1:0 \
    --dashboard-linger 30 2>"$LOG" >/dev/null &
PID=$!
URL=""
for _ in $(seq 300); do
    URL=$(grep -o "http://[^ ]*" "$LOG" | head -1 || true)
    [ -n "$URL" ] && break
    sleep 0.1
done
NODE_PATH="$MODULES" node crates/outcore-cli/tests/browser/live.cjs "$URL" "$CHROMIUM" >"$OUT"
kill -INT "$PID"
wait "$PID" 2>/dev/null || true
python3 - "$OUT" <<'PY'
import json, statistics, sys
seen = json.load(open(sys.argv[1]))
r = sorted(seen["render_ms"])
print(f"{len(r)} renders of {seen['final']['rects']} rectangles: median {statistics.median(r):.1f} ms, "
      f"p90 {r[int(0.9 * len(r))]:.1f} ms, max {r[-1]:.1f} ms")
PY
