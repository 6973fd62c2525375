#!/usr/bin/env bash
# The main job: the whole of kiot on this machine against real services, with a simulated fleet.
# Installs what is missing, starts Mosquitto/Redis/MongoDB-compatible server (dev profile), builds the
# bundles, starts the event router (the local Knative Broker), the bridge and every function, then the
# device simulator in the foreground. Ctrl-C stops what this script started.
#   SIM_DEVICES, SIM_RATE, SIM_BATCH, SIM_DURATION tune the fleet (see scripts/simulator/config.ts);
#   SIM_DEVICES=0 runs the stack without a fleet until it is stopped.
#   KIOT_DATA_DIR puts the data (services, router journal, logs, keys) elsewhere than .kiot/dev;
#   KIOT_SKIP_BUILD=1 uses the bundles in dist/ as they are.
# After a crash (kill -9 of everything, a power cut) the same command brings it all back: stale pid files
# are cleared, and the router delivers what its journal holds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export KIOT_PROFILE=dev
DATA=${KIOT_DATA_DIR:-$ROOT/.kiot/dev}
export KIOT_DATA_DIR=$DATA
LOGS=$DATA/logs
mkdir -p "$LOGS"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
services_were_running=1
bash scripts/services.sh status >/dev/null 2>&1 || services_were_running=0
bash scripts/services.sh start
eval "$(bash scripts/services.sh env | sed 's/^/export /')"
[ "${KIOT_SKIP_BUILD:-0}" = 1 ] || node scripts/build.mjs >/dev/null

ROUTER_PORT=${ROUTER_PORT:-8080}
BRIDGE_PORT=${BRIDGE_PORT:-8090}
declare -A FUNCTION_PORTS=(
  [device-registry]=8101 [command-dispatch]=8102 [telemetry-ingest]=8103 [report-generation]=8104 [dead-letters]=8105
  [jobs]=8106 [api-keys]=8107
)
export K_SINK="http://127.0.0.1:$ROUTER_PORT/kiot/default"
export LOG_LEVEL=${LOG_LEVEL:-info}

# Broker credentials (dynamic security) for the registry and the bridge, made by services.sh.
if [ -n "${KIOT_DYNSEC_ENV:-}" ]; then set -a; . "$KIOT_DYNSEC_ENV"; set +a; fi
# One app API key with every scope for this machine; functions get only its scrypt hash (API_KEYS).
API_KEY_FILE=$DATA/api-key.env
if [ ! -f "$API_KEY_FILE" ]; then
  (umask 077; node dist/device-registry.js mint-api-key --id local-admin --scopes '*' |
    sed -E "s/^([A-Z_]+)=(.*)$/\1='\2'/" >"$API_KEY_FILE")
fi
set -a; . "$API_KEY_FILE"; set +a

declare -A pids=()
stop_component() {
  local name=$1 pid=${pids[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM HUP
  echo "stopping the stack…"
  # Upstream first, so nothing in flight loses its consumer: the devices, the bridge (drains its
  # sessions), the router (finishes deliveries), then the functions.
  stop_component simulator
  stop_component bridge
  stop_component router
  for name in "${!pids[@]}"; do stop_component "$name"; done
  if [ "$services_were_running" = 0 ] && [ "${KIOT_KEEP_SERVICES:-0}" != 1 ]; then bash scripts/services.sh stop; fi
}
trap cleanup EXIT INT TERM HUP

wait_healthy() {
  local name=$1 url=$2 i
  for i in $(seq 1 100); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "$name did not become healthy at $url; last log lines:" >&2
  tail -20 "$LOGS/$name.log" >&2
  exit 1
}

start() {
  local name=$1 port=$2
  shift 2
  # A session of its own: Ctrl-C reaches this script only, which stops the components upstream first.
  # shellcheck disable=SC2086 # start_env holds NAME=value words (event_env).
  PORT=$port setsid env ${start_env:-} "$@" >"$LOGS/$name.log" 2>&1 &
  pids[$name]=$!
}

services_map="mqtt-bridge=http://127.0.0.1:$BRIDGE_PORT"
for name in "${!FUNCTION_PORTS[@]}"; do
  [ -f "dist/$name.js" ] && services_map="$services_map,$name=http://127.0.0.1:${FUNCTION_PORTS[$name]}"
done

# Sender identity (Knative's authentication-oidc), on unless KIOT_EVENT_AUTH=off: the router plays the cluster and
# the Broker. It keeps a workload token per producer (as the kubelet projects one), refuses events at its ingress
# without one the Broker's EventPolicy allows, signs every delivery with the Trigger's identity, and serves the JWKS
# every receiver checks tokens against. The EventPolicies are knative/overlays/oidc/event-policies.yaml.
TOKENS=$DATA/oidc/tokens
router_oidc=()
if [ "${KIOT_EVENT_AUTH:-oidc}" = oidc ]; then
  workload_tokens=""
  for name in mqtt-bridge "${!FUNCTION_PORTS[@]}"; do
    workload_tokens="$workload_tokens,$name.token=kiot-$name@eventing.knative.dev/broker/kiot/default"
    workload_tokens="$workload_tokens,$name-dead-letters.token=kiot-$name@serving.knative.dev/service/kiot/dead-letters"
  done
  router_oidc=(ROUTER_OIDC=on ROUTER_OIDC_KEY_FILE="$DATA/oidc/issuer-key.json" ROUTER_TOKENS_DIR="$TOKENS"
    ROUTER_WORKLOAD_TOKENS="${workload_tokens#,}")
fi
# The receiver side of a component: its audience, who may send to it (by the EventPolicies), its own tokens.
event_env() {
  local name=$1 audience=$2 api_version=$3
  [ "${KIOT_EVENT_AUTH:-oidc}" = oidc ] || return 0
  echo "EVENT_AUTH=oidc EVENT_OIDC_JWKS_URL=http://127.0.0.1:$ROUTER_PORT/openid/v1/jwks EVENT_AUDIENCE=$audience" \
    "EVENT_SENDERS=$(node dist/router.js senders "$api_version" Service "$name")" \
    "EVENT_TOKEN_FILE=$TOKENS/$name.token DEAD_LETTER_TOKEN_FILE=$TOKENS/$name-dead-letters.token"
}

start router "$ROUTER_PORT" env KNATIVE_DIR=knative ROUTER_SERVICES="$services_map" ROUTER_DEAD_LETTER_FILE="$DATA/dead-letters.jsonl" "${router_oidc[@]}" node dist/router.js
wait_healthy router "http://127.0.0.1:$ROUTER_PORT/healthz"
dead_letter_sink="http://127.0.0.1:$ROUTER_PORT/dead-letters"
[ -f dist/dead-letters.js ] && dead_letter_sink="http://127.0.0.1:${FUNCTION_PORTS[dead-letters]}/"
# The bridge's refusals and telemetry-ingest's refused batch items are recorded there.
export DEAD_LETTER_SINK=$dead_letter_sink

# shellcheck disable=SC2046 # event_env's words are NAME=value pairs without spaces.
start bridge "$BRIDGE_PORT" env $(event_env mqtt-bridge /service/kiot/mqtt-bridge v1) DEAD_LETTER_SINK="$dead_letter_sink" BRIDGE_CLIENT_ID=kiot-bridge-local \
  ${BRIDGE_MQTT_USERNAME:+MQTT_USERNAME=$BRIDGE_MQTT_USERNAME} ${BRIDGE_MQTT_PASSWORD:+MQTT_PASSWORD=$BRIDGE_MQTT_PASSWORD} node dist/bridge.js
for name in "${!FUNCTION_PORTS[@]}"; do
  [ -f "dist/$name.js" ] || continue
  start_env=$(event_env "$name" "serving.knative.dev/service/kiot/$name" serving.knative.dev/v1)
  if [ "$name" = device-registry ]; then
    start "$name" "${FUNCTION_PORTS[$name]}" env ${REGISTRY_MQTT_USERNAME:+MQTT_USERNAME=$REGISTRY_MQTT_USERNAME} \
      ${REGISTRY_MQTT_PASSWORD:+MQTT_PASSWORD=$REGISTRY_MQTT_PASSWORD} BROKER_ACCESS="$([ -n "${KIOT_DYNSEC_ENV:-}" ] && echo dynsec || echo hooks)" node "dist/$name.js"
  elif [ "$name" = report-generation ]; then
    # Locally a timer stands in for the PingSources (rollups and due scheduled reports).
    start "$name" "${FUNCTION_PORTS[$name]}" env SCHEDULE_TICK_SECONDS="${SCHEDULE_TICK_SECONDS:-60}" \
      PUBLIC_BASE_URL="http://127.0.0.1:${FUNCTION_PORTS[$name]}" node "dist/$name.js"
  elif [ "$name" = jobs ]; then
    # Devices download firmware from here; locally a 1 s timer stands in for the PingSource and its tick chain.
    start "$name" "${FUNCTION_PORTS[$name]}" env JOBS_PUBLIC_URL="http://127.0.0.1:${FUNCTION_PORTS[$name]}" node "dist/$name.js"
  else
    start "$name" "${FUNCTION_PORTS[$name]}" node "dist/$name.js"
  fi
done
start_env=
wait_healthy bridge "http://127.0.0.1:$BRIDGE_PORT/healthz"
for name in "${!FUNCTION_PORTS[@]}"; do
  [ -f "dist/$name.js" ] && wait_healthy "$name" "http://127.0.0.1:${FUNCTION_PORTS[$name]}/healthz"
done

cat <<INFO

kiot is running (logs in $LOGS/):
  mosquitto          $MQTT_URL
  redis              $REDIS_URL
  mongodb            $MONGODB_URL   (mongo-java-server, data in $DATA/mongo.h2)
  event router       http://127.0.0.1:$ROUTER_PORT   (K_SINK $K_SINK; dead letters: GET /dead-letters; journal in $DATA/router-journal)
  mqtt-bridge        http://127.0.0.1:$BRIDGE_PORT   (/healthz, /metrics)
INFO
for name in device-registry command-dispatch telemetry-ingest report-generation dead-letters jobs api-keys; do
  [ -f "dist/$name.js" ] && printf '  %-18s http://127.0.0.1:%s\n' "$name" "${FUNCTION_PORTS[$name]}"
done
echo "  app API key        $API_KEY   (every scope: Authorization: Bearer <key>; kept in $API_KEY_FILE)"
echo

# The simulated fleet registers itself with the registry and logs in with its own secrets.
if [ "${SIM_DEVICES:-20}" = 0 ]; then
  echo "no simulated fleet (SIM_DEVICES=0): the stack runs until it is stopped"
  sleep infinity &
else
  env SIM_DEVICES="${SIM_DEVICES:-20}" SIM_REGISTRY_URL="http://127.0.0.1:${FUNCTION_PORTS[device-registry]}" SIM_API_KEY="$API_KEY" \
    SIM_CREDENTIALS_FILE="$DATA/sim-credentials.json" setsid node dist/simulator.js &
fi
pids[simulator]=$!

# One example OTA rollout to the simulated fleet once it is online: it advances, ramps, and aborts when
# SIM_JOB_FAILURE_RATE is high (e.g. 0.5). KIOT_EXAMPLE_ROLLOUT=0 leaves it out.
if [ -f dist/jobs.js ] && [ "${KIOT_EXAMPLE_ROLLOUT:-1}" = 1 ]; then
  (sleep "${KIOT_ROLLOUT_AFTER:-15}"; SIM_JOBS_URL="http://127.0.0.1:${FUNCTION_PORTS[jobs]}" SIM_API_KEY="$API_KEY" \
    node dist/simulator.js example-rollout || true) &
fi

stack_started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# Something to look at: after a while, a report of the simulated fleet as a self-contained HTML page.
fleet_report() {
  local reports="http://127.0.0.1:${FUNCTION_PORTS[report-generation]}" from to answer id
  from=$stack_started
  to=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  answer=$(curl -fsS -H "Authorization: Bearer $API_KEY" -H 'content-type: application/json' "$reports/reports" \
    -d "{\"scope\":{\"fleet\":true},\"from\":\"$from\",\"to\":\"$to\",\"metrics\":[\"temperature\",\"humidity\"],\"title\":\"Simulated fleet since the stack started\"}") || return 0
  id=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).id ?? "")' "$answer")
  [ -n "$id" ] || return 0
  curl -fsS -H "Authorization: Bearer $API_KEY" "$reports/reports/$id?format=html" -o "$DATA/fleet-report.html" &&
    echo "report: the simulated fleet's report is in $DATA/fleet-report.html (JSON: $reports/reports/$id, CSV: ?format=csv)"
}
# The first report after a minute of data, then a fresh one every five minutes (the interval is chosen
# from the range: raw samples at first, rollups as the run grows).
if [ -f dist/report-generation.js ]; then
  (sleep "${KIOT_REPORT_AFTER:-60}"; while kill -0 "${pids[simulator]}" 2>/dev/null; do fleet_report; sleep 300; done) &
fi
wait "${pids[simulator]}" || true
