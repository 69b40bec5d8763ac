#!/usr/bin/env bash
# `make demo`: the whole pattern on this machine, no AWS account. Deploys the `local`
# environment's real templates into its own emulator, starts the demo credit-score service
# and the local runner (which executes the shipped Lambda zips), runs `credit-scores` over
# DEMO_ITEMS companies with a progress bar, prints the run's summary and the reduce's
# report, then runs `annual-report`: DEMO_LONG_TASKS long tasks, each accepted with a 202
# and reported to the callback (the callback function behind its function URL, served by
# the runner on loopback); then tears everything down and checks nothing is left.
#
# Run by `make demo` after `make build`; the ports can be moved with DEMO_EMULATOR_PORT,
# DEMO_QUEUE_PORT and DEMO_LIVE_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

ITEMS=${DEMO_ITEMS:-10000}
LONG_TASKS=${DEMO_LONG_TASKS:-4}
EMULATOR_PORT=${DEMO_EMULATOR_PORT:-5055}
QUEUE_PORT=${DEMO_QUEUE_PORT:-8091}
LIVE_PORT=${DEMO_LIVE_PORT:-8092}
CLI=target/release/microprocess
SERVICE=target/debug/demo-service
WORK=target/demo
RUN=demo-$(date -u +%Y%m%dt%H%M%Sz)
SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

export AWS_ENDPOINT_URL=http://127.0.0.1:$EMULATOR_PORT
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_REGION AWS_DEFAULT_REGION MICROPROCESS_QUEUE_BASE_URL

rm -rf "$WORK" target/local-runner/local
mkdir -p "$WORK"
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Waits for a TCP port on loopback while process $2 lives; $3 names it, $4 is its log.
wait_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo: $3 did not start; $4 says:" >&2
  tail -20 "$4" >&2
  exit 1
}

started=$(date +%s.%N)

say "generate the local environment"
$CLI generate --env local

say "start the emulator on 127.0.0.1:$EMULATOR_PORT"
.venv/bin/python tools/emulator.py -H 127.0.0.1 -p "$EMULATOR_PORT" > "$WORK/emulator.log" 2>&1 &
pids+=($!)
wait_port "$EMULATOR_PORT" "$!" emulator "$WORK/emulator.log"

say "deploy it"
$CLI deploy --env local --yes

say "start the demo service ($ITEMS companies) and the local runner"
$SERVICE --queue-port "$QUEUE_PORT" --live-port "$LIVE_PORT" --secret "$SECRET" \
  --microprocess credit-scores,annual-report --items "$ITEMS" \
  --items-of "annual-report=$LONG_TASKS" --long-task-seconds 3 --heartbeat-seconds 1 \
  --report-dir "$WORK/reports" > "$WORK/service.log" 2>&1 &
pids+=($!)
wait_port "$QUEUE_PORT" "$!" "the demo service" "$WORK/service.log"
$CLI local run --env local --no-schedules --lambda-port 0 \
  --queue-base-url "http://127.0.0.1:$QUEUE_PORT" --signing-secret "$SECRET" \
  --log-file "$WORK/functions.log" > "$WORK/runner.log" 2>&1 &
runner=$!
pids+=($runner)
for _ in $(seq 1 600); do
  grep -Eq '"lambda_endpoint": *"' target/local-runner/local/state.json 2>/dev/null && break
  kill -0 "$runner" 2>/dev/null || { echo "demo: the local runner stopped:" >&2; tail -20 "$WORK/runner.log" >&2; exit 1; }
  sleep 0.1
done
echo "functions log to $WORK/functions.log"

say "run credit-scores"
run_started=$(date +%s.%N)
set +e
$CLI start credit-scores --env local --run "$RUN" --wait
code=$?
set -e
run_ended=$(date +%s.%N)
$CLI status --env local
if [ "$code" != 0 ]; then
  echo "demo: the run did not complete (exit $code); logs are in $WORK/" >&2
  exit "$code"
fi

say "the reduce's report ($WORK/reports/credit-scores/$RUN.json)"
cat "$WORK/reports/credit-scores/$RUN.json"
echo

say "run annual-report: $LONG_TASKS long tasks, each answered 202 and reported to the callback"
set +e
$CLI start annual-report --env local --run "$RUN" --wait
code=$?
set -e
$CLI runs show "$RUN" --env local --microprocess annual-report | head -12
if [ "$code" != 0 ]; then
  echo "demo: the long-task run did not complete (exit $code); logs are in $WORK/" >&2
  exit "$code"
fi
reports=$(.venv/bin/python -c 'import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1]))
print("%d calls accepted with 202, %d heartbeats and %d reports sent; the callback answered %s"
      % (s["accepted"], s["reports_sent"]["heartbeat"], s["reports_sent"]["succeeded"], s["report_statuses"]))' "http://127.0.0.1:$QUEUE_PORT/_demo/stats")
echo "demo service: $reports"

say "what the emulator enforced (IAM per function, DynamoDB and SQS limits)"
.venv/bin/python tools/emulator_stats.py "http://127.0.0.1:$EMULATOR_PORT"

say "tear down"
kill "$runner" 2>/dev/null || true
$CLI teardown --env local --yes

ended=$(date +%s.%N)
awk -v items="$ITEMS" -v t0="$started" -v r0="$run_started" -v r1="$run_ended" -v t1="$ended" 'BEGIN {
  printf "\ndemo: %d items in %.1f s through the local pipeline (%.0f items/s); %.1f s in all, deploy and teardown included\n",
    items, r1 - r0, items / (r1 - r0), t1 - t0 }'
