#!/usr/bin/env bash
# Run the BullMQ peer benchmark (Redis AOF everysec by default), BullMQ end to end
# (bench/bullmq-e2e: producer and worker at once, closed loop) and `clawnet bench tasks`
# with the same repetitions, windows, worker concurrencies and open-loop rate, then print a
# side-by-side table of the medians.
#
#   bench/tasks-compare.sh                                                # REPS=3 (~15 min)
#   REPS=1 DURATION_MS=3000 WARMUP_MS=1000 DRAIN_TOTAL=20000 bench/tasks-compare.sh   # smoke (~4 min)
#
# Env: REPS=3 DURATION_MS=15000 WARMUP_MS=2000 MODES=aof (bullmq/run.js: volatile,aof)
#      CONCURRENCIES=1,10,50 (BullMQ worker concurrency = clawnet per-connection concurrency)
#      DRAIN_TOTAL=100000 DRAIN_MAX_MS=15000 RATE=500 LIVE_CONCURRENCY=10 ADD_CONCURRENCY=50
#      MULTI_WORKERS=1 (0 skips BullMQ's 2-process run)
#      WORKERS=20 DISPATCHERS=4 BACKENDS=sqlite (sqlite,sqlite-full,memory)
#      SCENARIOS=closed,drain,open
#      PEERS_DIR=../shared/bench/peers  SKIP_PEER=1 (reuse bench/results/bullmq-latest.json)
#      SKIP_CLAWNET=1 (reuse bench/results/clawnet-tasks-latest.json)
#      NOISE_RETRIES=2  WAIT_QUIET=1 (wait up to 10 min for the machine to be < 10% busy)
#      CLAWNET_BENCH_ARGS="..." (extra flags for `clawnet bench tasks`, e.g. --inflight 400)
# Results: bench/results/{bullmq,clawnet-tasks}-latest.json, tasks-compare-latest.md, logs/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
MODES=${MODES:-aof}
CONCURRENCIES=${CONCURRENCIES:-1,10,50}
DRAIN_TOTAL=${DRAIN_TOTAL:-100000}
DRAIN_MAX_MS=${DRAIN_MAX_MS:-15000}
RATE=${RATE:-500}
LIVE_CONCURRENCY=${LIVE_CONCURRENCY:-10}
ADD_CONCURRENCY=${ADD_CONCURRENCY:-50}
WORKERS=${WORKERS:-20}
DISPATCHERS=${DISPATCHERS:-4}
BACKENDS=${BACKENDS:-sqlite}
SCENARIOS=${SCENARIOS:-closed,drain,open}

echo "== config: REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS MODES=$MODES CONCURRENCIES=$CONCURRENCIES DRAIN_TOTAL=$DRAIN_TOTAL RATE=$RATE WORKERS=$WORKERS BACKENDS=$BACKENDS SCENARIOS=$SCENARIOS" >&2

# Other benchmarks wait_quiet (bench/lib.sh) waits for.
BUSY_PATTERN='bench/compare\.sh|bench/store-compare\.sh|socketio/run\.js|bullmq/run\.js|nats/run\.js|examples/(chat|store|tasks)( |$)|clawnet bench (chat|store|tasks)'

# --- BullMQ peer -------------------------------------------------------------
if [ "${SKIP_PEER:-0}" != 1 ]; then
  peer_install
  wait_quiet
  echo "== BullMQ peer (node bullmq/run.js, MODES=$MODES)" >&2
  (cd "$PEERS_DIR" && REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS MODES=$MODES \
      CONCURRENCIES=$CONCURRENCIES DRAIN_TOTAL=$DRAIN_TOTAL DRAIN_MAX_MS=$DRAIN_MAX_MS RATE=$RATE \
      LIVE_CONCURRENCY=$LIVE_CONCURRENCY ADD_CONCURRENCY=$ADD_CONCURRENCY \
      MULTI_WORKERS=${MULTI_WORKERS:-1} node bullmq/run.js) 2>&1 | tee "$OUT/logs/bullmq-run-$STAMP.log"
  peer_keep bullmq
  # BullMQ end to end (producer and worker at once): not in the peer suite, so ours.
  wait_quiet
  echo "== BullMQ end to end, closed loop (node bench/bullmq-e2e/run.js)" >&2
  PEERS_DIR=$PEERS_DIR REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS MODE=${MODES##*,} \
      CONCURRENCIES=$CONCURRENCIES WORKERS=$WORKERS OUT="$OUT/bullmq-e2e-$STAMP.json" \
      node "$ROOT/bench/bullmq-e2e/run.js" 2>&1 | tee "$OUT/logs/bullmq-e2e-run-$STAMP.log"
  cp "$OUT/bullmq-e2e-$STAMP.json" "$OUT/bullmq-e2e-latest.json"
fi

# --- clawnet -----------------------------------------------------------------
if [ "${SKIP_CLAWNET:-0}" != 1 ]; then
  clawnet_runner tasks
  wait_quiet
  echo "== clawnet bench tasks" >&2
  # shellcheck disable=SC2086
  "${RUN[@]}" --hub-bin "$BIN" --backends "$BACKENDS" --scenarios "$SCENARIOS" --reps "$REPS" \
      --duration-ms "$DURATION_MS" --warmup-ms "$WARMUP_MS" --workers "$WORKERS" \
      --dispatchers "$DISPATCHERS" --concurrency "$CONCURRENCIES" --rate "$RATE" \
      --open-concurrency "$LIVE_CONCURRENCY" --drain-total "$DRAIN_TOTAL" \
      --drain-max-ms "$DRAIN_MAX_MS" --prefill-inflight "$ADD_CONCURRENCY" \
      --log-dir "$OUT/logs/tasks" --noise-retries "${NOISE_RETRIES:-2}" ${CLAWNET_BENCH_ARGS:-} \
      > "$OUT/clawnet-tasks-$STAMP.json" 2> >(tee "$OUT/logs/clawnet-tasks-run-$STAMP.log" >&2)
  cp "$OUT/clawnet-tasks-$STAMP.json" "$OUT/clawnet-tasks-latest.json"
fi

# --- table -------------------------------------------------------------------
MODE=${MODES##*,}   # the last mode run (aof by default)
python3 "$ROOT/bench/tasks_compare.py" "$OUT/bullmq-latest.json" "$OUT/clawnet-tasks-latest.json" "$MODE" \
  "$OUT/bullmq-e2e-latest.json" \
  | tee "$OUT/tasks-compare-$STAMP.md"
table_latest tasks-compare
