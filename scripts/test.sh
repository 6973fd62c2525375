#!/usr/bin/env bash
# The whole test suite in one command: installs what is missing, starts the real services on the test
# ports (unless MQTT_URL / REDIS_URL / MONGODB_URL point elsewhere), type-checks, builds the bundles,
# runs vitest, and stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# The HTML report test drives Debian's Chromium (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_PATH:-}" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi

# The power-cut test runs the whole stack in a network namespace of its own (`ip netns`, iproute2).
if ! command -v ip >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
fi

# The manifest tests build knative/ with kustomize: kubectl's own, else the standalone one from the Go
# module proxy (built once into .kiot/bin).
export PATH="$PWD/.kiot/bin:$PATH"
if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  GOBIN="$PWD/.kiot/bin" go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
fi

# The manifest tests run Knative's own admission code (tools/knative), built once into .kiot/bin; the first
# build compiles the Knative modules (minutes), later ones are cached.
bash scripts/knative-admission.sh >/dev/null
bash scripts/knative-capacity.sh >/dev/null

# The contract test runs schemathesis (PyPI, pinned) against every function: installed once into .kiot/venv.
bash scripts/schemathesis.sh >/dev/null

export KIOT_PROFILE=test
eval "$(bash scripts/services.sh env | sed 's/^/export DEFAULT_/')"
export MQTT_URL=${MQTT_URL:-$DEFAULT_MQTT_URL}
export REDIS_URL=${REDIS_URL:-$DEFAULT_REDIS_URL}
[ -n "${MONGODB_URL:-}" ] && export KIOT_EXTERNAL_MONGODB=1
export MONGODB_URL=${MONGODB_URL:-$DEFAULT_MONGODB_URL}

reachable() { local hostport=${1#*://}; hostport=${hostport%%/*}; (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null; }

# Services already answering (a running test profile, or servers named by the URLs) are used as they are.
started=0
if ! { reachable "$MQTT_URL" && reachable "$REDIS_URL" && reachable "$MONGODB_URL"; }; then
  bash scripts/services.sh start
  started=1
fi

# The Redis-dependent suites run again on a Redis Cluster and on Sentinel (vitest.config.ts). Unless
# REDIS_CLUSTER_URL / REDIS_SENTINEL_URL name running ones, this run starts its own — on the ports next
# to the test ports, or on free ones while another run holds those — beside the type-check and the build,
# and stops them at the end.
topologies=()
[ -n "${REDIS_CLUSTER_URL:-}" ] || topologies+=(cluster)
[ -n "${REDIS_SENTINEL_URL:-}" ] || topologies+=(sentinel)
topology_dir=
if [ ${#topologies[@]} -gt 0 ]; then
  topology_dir=$PWD/.kiot/test/redis-topologies-$$
  mkdir -p "$PWD/.kiot/test"
  export REDIS_TOPOLOGY_DIR=$topology_dir
  for port in $(seq 26380 26390); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then export REDIS_TOPOLOGY_PORTS=free; break; fi
  done
  which=all
  [ ${#topologies[@]} = 2 ] || which=${topologies[0]}
  bash scripts/redis-topologies.sh start "$which" >"$PWD/.kiot/test/redis-topologies-$$.log" 2>&1 &
  topologies_pid=$!
fi
cleanup() {
  if [ -n "$topology_dir" ]; then REDIS_TOPOLOGY_DIR=$topology_dir bash scripts/redis-topologies.sh stop || true; fi
  rm -f "$PWD/.kiot/test/redis-topologies-$$.log"
  if [ "$started" = 1 ]; then bash scripts/services.sh stop; fi
}
trap cleanup EXIT

npx tsc --noEmit
npx tsc --noEmit -p console/web
node scripts/build.mjs >/dev/null
if [ -n "$topology_dir" ]; then
  wait "$topologies_pid" || { cat "$PWD/.kiot/test/redis-topologies-$$.log" >&2; exit 1; }
  while IFS='=' read -r name value; do
    case "$name" in
      REDIS_CLUSTER_URL) [ "$which" = sentinel ] || export REDIS_CLUSTER_URL="$value" ;;
      REDIS_SENTINEL_URL) [ "$which" = cluster ] || export REDIS_SENTINEL_URL="$value" ;;
    esac
  done < <(bash scripts/redis-topologies.sh env)
  unset REDIS_TOPOLOGY_DIR REDIS_TOPOLOGY_PORTS
fi
mkdir -p test-artifacts
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=test-artifacts/vitest.json "$@" || status=$?
# One plain closing line that any CI reads: "vitest: N passed, N failed, N skipped".
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-artifacts/vitest.json", "utf8"));
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit $status
