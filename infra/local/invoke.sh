#!/usr/bin/env bash
# `make invoke`: runs the functions under `cargo lambda watch` (the Lambda
# runtime emulator) against local AWS (moto), the local chart server and the
# local Postgres, and invokes each with its sample event from events/:
#   validate → fetch (AAPL 2025) → transform → load → report (the HTML report into lake/reports/).
# Offline. FUNCTIONS="fetch" invokes only some.
set -euo pipefail
cd "$(dirname "$0")/../.."

FUNCTIONS=${FUNCTIONS:-"validate fetch transform load report"}
CHART_PORT=${MDP_LOCAL_CHART_PORT:-9876}
INVOKE_PORT=${MDP_LOCAL_INVOKE_PORT:-9000}
export MDP_TEST_POSTGRES_URL=${MDP_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  python3 infra/local/local_stack.py down >/dev/null
}
trap cleanup EXIT

wait_for_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "nothing answered on port $1" >&2
  return 1
}

python3 infra/local/local_stack.py up
cargo build --quiet -p mdp
"${CARGO_TARGET_DIR:-target}/debug/mdp" serve-charts --port "$CHART_PORT" --synthetic-years 1 >/dev/null &
pids+=($!)
wait_for_port "$CHART_PORT"

env_file=.local/env.watch
cp .local/env "$env_file"
{
  echo "YAHOO_FINANCE_API_BASE_URL=http://127.0.0.1:$CHART_PORT/v8/finance/chart"
  echo "WAREHOUSE_SCHEMA=mdp_local"
  echo "MARKET_DATA_MAX_RETRIES=1"
  echo "MARKET_DATA_RETRY_DELAY=0.5"
} >> "$env_file"

cargo lambda watch --invoke-port "$INVOKE_PORT" --env-file "$env_file" > .local/watch.log 2>&1 &
pids+=($!)
wait_for_port "$INVOKE_PORT"

for fn in $FUNCTIONS; do
  echo "--- invoke $fn with events/$fn.json"
  # The first invoke of a function compiles it; give it time.
  cargo lambda invoke "$fn" --invoke-port "$INVOKE_PORT" --data-file "events/$fn.json" --output-format json
  echo
done
echo "--- lake objects"
python3 - <<'PY'
import sys
sys.path.insert(0, "infra/local")
import local_stack
s3 = local_stack.client("s3")
for o in s3.list_objects_v2(Bucket=local_stack.BUCKET, Prefix="lake/").get("Contents", []):
    print(f"s3://{local_stack.BUCKET}/{o['Key']}  {o['Size']} bytes")
PY
echo "--- warehouse rows (schema mdp_local)"
psql "$MDP_TEST_POSTGRES_URL" -Atc "select ticker, count(*), min(date), max(date) from mdp_local.fact_market_data group by 1" || true
