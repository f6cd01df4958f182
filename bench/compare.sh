#!/usr/bin/env bash
# Run the Socket.IO peer benchmark and `clawnet bench chat` with the same
# repetitions and windows, then print a side-by-side table of the medians.
#
#   bench/compare.sh                      # REPS=3, 2 s warm-up + 15 s windows (~12 min)
#   REPS=1 DURATION_MS=3000 WARMUP_MS=1000 bench/compare.sh   # smoke test
#
# Env: REPS=3 DURATION_MS=15000 WARMUP_MS=2000 N=20 WINDOW=32 RATE=2000 IDLE_N=1000
#      PEERS_DIR=../shared/bench/peers  SKIP_PEER=1 (reuse bench/results/socketio-latest.json)
#      SKIP_CLAWNET=1 (reuse bench/results/clawnet-latest.json)
#      NOISE_RETRIES=2 (clawnet repeats a repetition disturbed by other processes, up to 2 times;
#      the Socket.IO script has no such retry: see the noise rows of the table)
#      WAIT_QUIET=1 (before each run, wait up to 10 min for the machine to be < 10% busy; 0 = don't)
#      BIG_QUEUE=65536 (closed loop rerun with this ws.outbound_queue; 0 = skip)
#      CLAWNET_BENCH_ARGS="..." (extra flags for `clawnet bench chat`, e.g. --hub-set ws.outbound_queue=4096)
# Results: bench/results/{socketio,clawnet}-latest.json, compare-latest.md, logs/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
N=${N:-20}
WINDOW=${WINDOW:-32}
RATE=${RATE:-2000}
IDLE_N=${IDLE_N:-1000}

echo "== config: REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS N=$N WINDOW=$WINDOW RATE=$RATE IDLE_N=$IDLE_N" >&2

# wait_quiet (bench/lib.sh) waits for the machine only: a build or test run of someone
# else must not land in the figures.
BUSY_PATTERN=

# --- Socket.IO peer ---------------------------------------------------------
if [ "${SKIP_PEER:-0}" != 1 ]; then
  peer_install
  # The peer's RATES must include RATE (its open-loop scenario key is open<RATE>).
  PEER_RATES=${RATES:-500,$RATE}
  case ",$PEER_RATES," in *",$RATE,"*) ;; *) PEER_RATES="$PEER_RATES,$RATE" ;; esac
  wait_quiet
  echo "== Socket.IO peer (node socketio/run.js, RATES=$PEER_RATES)" >&2
  (cd "$PEERS_DIR" && REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS N=$N WINDOW=$WINDOW \
      IDLE_N=$IDLE_N RATES=$PEER_RATES node socketio/run.js) 2>&1 | tee "$OUT/logs/socketio-run-$STAMP.log"
  peer_keep socketio
fi

# --- clawnet ----------------------------------------------------------------
if [ "${SKIP_CLAWNET:-0}" != 1 ]; then
  clawnet_runner chat
  wait_quiet
  echo "== clawnet bench chat" >&2
  # shellcheck disable=SC2086
  "${RUN[@]}" --hub-bin "$BIN" --reps "$REPS" --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" \
      --agents "$N" --window "$WINDOW" --rate "$RATE" --idle-connections "$IDLE_N" \
      --log-dir "$OUT/logs" --noise-retries "${NOISE_RETRIES:-2}" ${CLAWNET_BENCH_ARGS:-} \
      > "$OUT/clawnet-$STAMP.json" 2> >(tee "$OUT/logs/clawnet-run-$STAMP.log" >&2)
  cp "$OUT/clawnet-$STAMP.json" "$OUT/clawnet-latest.json"
  if [ "${BIG_QUEUE:-65536}" != 0 ]; then
    # Closed loop again with a larger per-connection outbound queue: with the hub's
    # default ws.outbound_queue it may cut readers that fall behind as slow consumers.
    wait_quiet
    echo "== clawnet bench chat, closed loop with ws.outbound_queue=${BIG_QUEUE:-65536}" >&2
    # shellcheck disable=SC2086
    "${RUN[@]}" --hub-bin "$BIN" --reps "$REPS" --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" \
        --agents "$N" --window "$WINDOW" --scenarios closed_loop --hub-set "ws.outbound_queue=${BIG_QUEUE:-65536}" \
        --log-dir "$OUT/logs/bigqueue" --noise-retries "${NOISE_RETRIES:-2}" ${CLAWNET_BENCH_ARGS:-} \
        > "$OUT/clawnet-bigqueue-$STAMP.json" 2> >(tee "$OUT/logs/clawnet-bigqueue-run-$STAMP.log" >&2)
    cp "$OUT/clawnet-bigqueue-$STAMP.json" "$OUT/clawnet-bigqueue-latest.json"
  else
    rm -f "$OUT/clawnet-bigqueue-latest.json"
  fi
fi

# --- table --------------------------------------------------------------------
VARIANT=()
if [ -f "$OUT/clawnet-bigqueue-latest.json" ]; then VARIANT=("$OUT/clawnet-bigqueue-latest.json"); fi
python3 "$ROOT/bench/compare.py" "$OUT/socketio-latest.json" "$OUT/clawnet-latest.json" "$RATE" "${VARIANT[@]}" \
  | tee "$OUT/compare-$STAMP.md"
table_latest compare
