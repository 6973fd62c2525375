#!/usr/bin/env bash
# The main job: the whole of kiot on this machine against real services, with a simulated fleet.
# Installs what is missing, starts Mosquitto/Redis/MongoDB-compatible server (dev profile), builds the
# bundles and mints the local API key; then the supervised stack (scripts/stack/main.ts) starts the event
# router (the local Knative Broker), the bridge and every function — restarting any that dies — and the
# device simulator in the foreground. Ctrl-C stops what this script started, in order.
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
mkdir -p "$DATA/logs"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
services_were_running=1
bash scripts/services.sh status >/dev/null 2>&1 || services_were_running=0
bash scripts/services.sh start
eval "$(bash scripts/services.sh env | sed 's/^/export /')"
[ "${KIOT_SKIP_BUILD:-0}" = 1 ] || node scripts/build.mjs >/dev/null

# Broker credentials (dynamic security) for the registry and the bridge, made by services.sh; with
# KIOT_MQTT_AUTH=hooks (the default) devices are not there: the broker asks device-registry about them.
if [ -n "${KIOT_DYNSEC_ENV:-}" ]; then set -a; . "$KIOT_DYNSEC_ENV"; set +a; fi
# One app API key with every scope for this machine; functions get only its scrypt hash (API_KEYS).
API_KEY_FILE=$DATA/api-key.env
if [ ! -f "$API_KEY_FILE" ]; then
  (umask 077; node dist/device-registry.js mint-api-key --id local-admin --scopes '*' |
    sed -E "s/^([A-Z_]+)=(.*)$/\1='\2'/" >"$API_KEY_FILE")
fi
set -a; . "$API_KEY_FILE"; set +a

cleanup() {
  trap - EXIT
  if [ "$services_were_running" = 0 ] && [ "${KIOT_KEEP_SERVICES:-0}" != 1 ]; then bash scripts/services.sh stop; fi
}
trap cleanup EXIT
# Ctrl-C reaches this script and the stack (the components run in sessions of their own), a SIGTERM or a
# hang-up this script passes on: the stack stops them in order and exits; then this script stops the
# services it started.
node dist/stack.js &
stack=$!
trap 'kill -TERM "$stack" 2>/dev/null || true' INT TERM HUP
status=0
while :; do
  wait "$stack" && status=0 || status=$?
  kill -0 "$stack" 2>/dev/null || break
done
exit "$status"
