#!/usr/bin/env bash
# Run the NATS peer benchmark (for its JetStream file-storage scenarios) and
# `clawnet bench store` (SQLite, SQLite synchronous=full, PostgreSQL) with the same
# repetitions and windows, then print a side-by-side table of the medians.
#
#   bench/store-compare.sh                                      # REPS=3, 2 s + 15 s windows (~20 min)
#   REPS=1 DURATION_MS=3000 WARMUP_MS=1000 bench/store-compare.sh   # smoke test (~4 min)
#
# Env: REPS=3 DURATION_MS=15000 WARMUP_MS=2000 SENDERS=20 WINDOW=2
#      RATES=<half of JetStream's median acked/s from this run>,half  (open-loop rates for
#        `clawnet bench store --rate`; `half` = half of each backend's own closed-loop median)
#      BACKENDS=sqlite,sqlite-full,postgres
#      CLAWNET_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test (a fresh schema per run)
#      PEERS_DIR=../shared/bench/peers  SKIP_PEER=1 (reuse bench/results/nats-latest.json)
#      SKIP_CLAWNET=1 (reuse bench/results/clawnet-store-latest.json)
#      NATS_SUB_PROCS=1 (nats/run.js cannot run JetStream alone: its core-fanout and core-latency
#        scenarios always run too; SUB_PROCS=1 drops the 2-process fanout run, the rest stays)
#      NOISE_RETRIES=2  WAIT_QUIET=1 (wait up to 10 min for the machine to be < 10% busy)
#      CLAWNET_BENCH_ARGS="..." (extra flags for `clawnet bench store`)
# Results: bench/results/{nats,clawnet-store}-latest.json, store-compare-latest.md, logs/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
SENDERS=${SENDERS:-20}
WINDOW=${WINDOW:-2}
BACKENDS=${BACKENDS:-sqlite,sqlite-full,postgres}

echo "== config: REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS SENDERS=$SENDERS WINDOW=$WINDOW BACKENDS=$BACKENDS" >&2

# Other benchmarks wait_quiet (bench/lib.sh) waits for.
BUSY_PATTERN='bench/compare\.sh|socketio/run\.js|bullmq/run\.js|examples/chat|clawnet bench chat'

# --- NATS JetStream peer -----------------------------------------------------
if [ "${SKIP_PEER:-0}" != 1 ]; then
  peer_install
  wait_quiet
  echo "== NATS peer (node nats/run.js, SUB_PROCS=${NATS_SUB_PROCS:-1}; JetStream with 1 and 2 publisher processes)" >&2
  (cd "$PEERS_DIR" && REPS=$REPS DURATION_MS=$DURATION_MS WARMUP_MS=$WARMUP_MS \
      SUB_PROCS=${NATS_SUB_PROCS:-1} node nats/run.js) 2>&1 | tee "$OUT/logs/nats-run-$STAMP.log"
  peer_keep nats
fi

# Half of JetStream's median acked publishes/s (best publisher configuration): the rate at
# which the target asks for ACK p99 <= 5 ms.
JS_HALF=$(python3 - "$OUT/nats-latest.json" <<'EOF'
import json, sys
reps = json.load(open(sys.argv[1]))["reps"]
best = 0
for k in {k for r in reps for k in r if k.startswith("jetstream_p")}:
    v = sorted(r[k]["ackedPerSec"] for r in reps if k in r)
    m = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    best = max(best, m)
print(max(1, round(best / 2)))
EOF
)
RATES=${RATES:-$JS_HALF,half}
echo "== JetStream half rate: $JS_HALF/s; clawnet open-loop rates: $RATES" >&2

# --- clawnet -----------------------------------------------------------------
if [ "${SKIP_CLAWNET:-0}" != 1 ]; then
  clawnet_runner store
  wait_quiet
  echo "== clawnet bench store" >&2
  # shellcheck disable=SC2086
  "${RUN[@]}" --hub-bin "$BIN" --backends "$BACKENDS" --reps "$REPS" --duration-ms "$DURATION_MS" \
      --warmup-ms "$WARMUP_MS" --senders "$SENDERS" --window "$WINDOW" --rate "$RATES" \
      --log-dir "$OUT/logs/store" --noise-retries "${NOISE_RETRIES:-2}" ${CLAWNET_BENCH_ARGS:-} \
      > "$OUT/clawnet-store-$STAMP.json" 2> >(tee "$OUT/logs/clawnet-store-run-$STAMP.log" >&2)
  cp "$OUT/clawnet-store-$STAMP.json" "$OUT/clawnet-store-latest.json"
fi

# --- table -------------------------------------------------------------------
python3 "$ROOT/bench/store_compare.py" "$OUT/nats-latest.json" "$OUT/clawnet-store-latest.json" \
  | tee "$OUT/store-compare-$STAMP.md"
table_latest store-compare
