#!/usr/bin/env bash
# Browser tests of the web dashboard against a real hub (target/debug/clawnet
# serve, memory store) and a real `clawnet worker` child process.
#
#   bash e2e/run.sh
#
# Needs: cargo, Node 20+, Debian's chromium at /usr/bin/chromium (or
# CHROMIUM=/path). Screenshots and logs go to artifacts/dashboard/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$ROOT/e2e"
OUT="$ROOT/artifacts/dashboard"
BIN="$ROOT/target/debug/clawnet"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
START=$(date +%s)

PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  echo "e2e: finished in $(( $(date +%s) - START )) s (status $status)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ -x "$CHROMIUM" ] || { echo "e2e: no chromium at $CHROMIUM (apt-get install -y chromium)" >&2; exit 1; }

echo "e2e: building the hub"
(cd "$ROOT" && cargo build -p clawnet)

if [ ! -d "$E2E/node_modules/playwright-core" ]; then
  echo "e2e: npm ci"
  (cd "$E2E" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

rm -rf "$OUT"
mkdir -p "$OUT"

PORT="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
URL="http://127.0.0.1:$PORT"
MASTER="cn_$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"

echo "e2e: starting the hub on $URL"
CLAWNET_MASTER_TOKEN="$MASTER" "$BIN" serve --listen "127.0.0.1:$PORT" --store memory \
  >"$OUT/hub.log" 2>&1 &
PIDS+=($!)
HUB_PID=$!

for _ in $(seq 1 200); do
  if curl -fsS "$URL/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$HUB_PID" 2>/dev/null; then echo "e2e: the hub exited" >&2; cat "$OUT/hub.log" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null

# Agents (worker, bob, carol: a worker-role person), room alpha.
E2E_URL="$URL" E2E_MASTER="$MASTER" node "$E2E/setup.mjs" >"$OUT/agents.json"
tok() { node -e 'const a=require(process.argv[1]);console.log(a[process.argv[2]])' "$OUT/agents.json" "$1"; }

echo "e2e: starting clawnet worker (@worker)"
# The command echoes its payload after a second, and fails on "fail-me".
CLAWNET_URL="$URL" CLAWNET_TOKEN="$(tok worker)" "$BIN" worker --timeout 60 \
  --exec 'in=$(cat); case "$in" in *fail-me*) echo "boom: asked to fail" >&2; exit 3;; esac; sleep 1; printf "%s" "$in"' \
  >"$OUT/worker.log" 2>&1 &
PIDS+=($!)

export E2E_BIN="$BIN" E2E_URL="$URL" E2E_MASTER="$MASTER" E2E_BOB="$(tok bob)" E2E_CAROL="$(tok carol)" E2E_OUT="$OUT"
echo "e2e: running the browser tests"
(cd "$E2E" && node --test --test-reporter=spec --test-concurrency=1 --test-timeout=180000 dashboard.test.mjs)
rm -f "$OUT/agents.json"
