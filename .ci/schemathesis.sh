#!/usr/bin/env bash
# Contract fuzzing of the REST API: schemathesis against a running hub,
# driven by the hub's own OpenAPI document (GET /api/v1/openapi.json).
# Fails on any 5xx and on any response that contradicts the document
# (status, content type, headers, body schema).
#
# Usage: .ci/schemathesis.sh
#   CLAWNET_BIN            hub binary (default: build and use target/release/clawnet)
#   SCHEMATHESIS_EXAMPLES  examples per operation (default 25)
#   SCHEMATHESIS_MAX_TIME  time budget of the main pass, seconds (default 120;
#                          fuzzing repeats until it is spent)
#   SCHEMATHESIS_SEED      seed, to reproduce a run
#   SCHEMATHESIS_VENV      virtualenv to install into (default target/schemathesis-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-25}"
max_time="${SCHEMATHESIS_MAX_TIME:-120}"
venv="${SCHEMATHESIS_VENV:-$PWD/target/schemathesis-venv}"

# schemathesis, pinned, in its own virtualenv (Python >= 3.10).
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

bin="${CLAWNET_BIN:-}"
if [ -z "$bin" ]; then
  echo "== building target/release/clawnet"
  cargo build --release -q -p clawnet
  bin=target/release/clawnet
fi

port="${SCHEMATHESIS_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
token="cn_$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
base="http://127.0.0.1:$port"
log=$(mktemp)

echo "== starting $bin serve on $base (log: $log)"
CLAWNET_MASTER_TOKEN="$token" "$bin" serve --listen "127.0.0.1:$port" --store memory \
  --set limits.rest_per_agent=100000/100000 \
  --set limits.rest_per_address=100000/100000 \
  --set tasks.dispatches_per_minute=0 --set tasks.max_pending=0 \
  >"$log" 2>&1 &
hub=$!
trap 'kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; rm -rf "${scratch:-}"' EXIT

for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$hub" 2>/dev/null || { echo "the hub exited:" >&2; cat "$log" >&2; exit 1; }
  sleep 0.1
done

echo "== schemathesis $SCHEMATHESIS_VERSION: $examples examples per operation, at most ${max_time}s"
seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")
# Operations that can take the master's own token (schemathesis reuses ids
# it saw in responses, "master" among them), after which every request is
# 401, or change the hub under the run (runtime settings, roles, removal),
# run last, in a second pass.
last_ops=(rotate_tokens revoke_token set_role remove_agent patch_settings
  patch_settings_alias post_settings_alias)
first=() last=()
for op in "${last_ops[@]}"; do
  first+=(--exclude-operation-id "$op")
  last+=(--include-operation-id "$op")
done
# Run from a scratch directory: schemathesis and hypothesis leave caches
# (.hypothesis, .schemathesis) in the working directory.
scratch=$(mktemp -d)
run() {
  (cd "$scratch" && "$venv/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --url "$base" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --workers 2 \
    --request-timeout 10 \
    --generation-database none \
    --suppress-health-check all \
    --no-color \
    "${seed_args[@]}" "$@")
}
status=0
run --max-time "$max_time" "${first[@]}" || status=$?
run --max-time 20 "${last[@]}" || status=$?

if ! kill -0 "$hub" 2>/dev/null; then
  echo "the hub died during the run:" >&2
  tail -n 50 "$log" >&2
  status=1
fi
if grep -q "panicked" "$log"; then
  echo "the hub panicked during the run:" >&2
  grep -A5 "panicked" "$log" | head -n 40 >&2
  status=1
fi
exit "$status"
