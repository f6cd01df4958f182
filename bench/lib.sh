# Shared pieces of the compare scripts (bench/compare.sh, bench/store-compare.sh,
# bench/tasks-compare.sh). Source it after setting ROOT (the repository root):
#
#   ROOT=$(cd "$(dirname "$0")/.." && pwd)
#   # shellcheck source=bench/lib.sh
#   . "$ROOT/bench/lib.sh"
#
# It sets PEERS_DIR, REPS, DURATION_MS, WARMUP_MS (from the environment or their
# defaults), OUT (bench/results, with logs/ created) and STAMP (UTC time stamp).

PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/bench/peers}
REPS=${REPS:-3}
DURATION_MS=${DURATION_MS:-15000}
WARMUP_MS=${WARMUP_MS:-2000}
OUT=$ROOT/bench/results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/logs"

# Wait (at most 10 min) until no other benchmark runs (no process matches the
# extended regex BUSY_PATTERN, when it is set) and the machine is under 10% busy
# for 10 s. WAIT_QUIET=0 to skip.
wait_quiet() {
  [ "${WAIT_QUIET:-1}" = 1 ] || return 0
  local i a b t k idle busy
  for i in $(seq 1 60); do
    if [ -n "${BUSY_PATTERN:-}" ] && pgrep -f "$BUSY_PATTERN" >/dev/null; then
      echo "== another benchmark is running; waiting (WAIT_QUIET=0 to skip)" >&2
      sleep 10
      continue
    fi
    read -r -a a < /proc/stat; sleep 10; read -r -a b < /proc/stat
    t=0; for k in 1 2 3 4 5 6 7 8; do t=$((t + b[k] - a[k])); done
    idle=$(( (b[4] - a[4]) + (b[5] - a[5]) )); busy=$(( 100 * (t - idle) / (t > 0 ? t : 1) ))
    [ "$busy" -lt 10 ] && return 0
    echo "== machine ${busy}% busy; waiting for it to be quiet (WAIT_QUIET=0 to skip)" >&2
  done
  echo "== still busy after 10 min; running anyway" >&2
}

# npm install in PEERS_DIR unless its node_modules exist.
peer_install() {
  if [ ! -d "$PEERS_DIR/node_modules" ]; then
    echo "== npm install in $PEERS_DIR" >&2
    (cd "$PEERS_DIR" && npm install --no-audit --no-fund)
  fi
}

# peer_keep NAME: copy the peer's results/NAME-latest.json to OUT as NAME-STAMP.json
# and NAME-latest.json.
peer_keep() {
  cp "$PEERS_DIR/results/$1-latest.json" "$OUT/$1-$STAMP.json"
  cp "$PEERS_DIR/results/$1-latest.json" "$OUT/$1-latest.json"
}

# clawnet_runner BENCH: build the release binary and set BIN to it and RUN to the
# command of `clawnet bench BENCH` (the clawnet-bench example BENCH when the
# binary has no such subcommand yet).
clawnet_runner() {
  echo "== cargo build --release -p clawnet" >&2
  (cd "$ROOT" && cargo build --release -p clawnet)
  BIN=$ROOT/target/release/clawnet
  if "$BIN" bench "$1" --help >/dev/null 2>&1; then
    RUN=("$BIN" bench "$1")
  else
    # Before `clawnet bench BENCH` is wired into the binary: the crate's example.
    echo "== 'clawnet bench $1' not available; using the clawnet-bench example" >&2
    (cd "$ROOT" && cargo build --release -p clawnet-bench --example "$1")
    RUN=("$ROOT/target/release/examples/$1")
  fi
}

# table_latest NAME: copy OUT/NAME-STAMP.md (the table just written) to
# OUT/NAME-latest.md.
table_latest() {
  cp "$OUT/$1-$STAMP.md" "$OUT/$1-latest.md"
  echo "== wrote $OUT/$1-latest.md" >&2
}
