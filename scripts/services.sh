#!/usr/bin/env bash
# Installs what is missing and starts, stops or reports the real services kiot needs, on loopback:
# Mosquitto and Redis from Debian, mongo-java-server (MongoDB wire protocol) from Maven Central.
# Idempotent. Data lives under .kiot/<profile>/ (git-ignored).
#   KIOT_PROFILE=dev  (default) ports 1883 / 6379 / 27017, Mongo data in an H2 file
#   KIOT_PROFILE=test           ports 21883 / 26379 / 27027, Mongo in memory
#   KIOT_DATA_DIR               another data folder (tests that run a private stack)
# A service counts as running only if the pid in its pid file is alive, is that service (its command line)
# and its port answers; a pid file that fails this (a crash, a reboot, a recycled pid) is cleared, so
# `start` after a kill -9 or a power cut brings everything back without a manual step.
# Usage: scripts/services.sh install|start|stop|status|env
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=${KIOT_PROFILE:-dev}
case "$PROFILE" in
  dev)  MQTT_PORT=${KIOT_MQTT_PORT:-1883};  REDIS_PORT=${KIOT_REDIS_PORT:-6379};  MONGO_PORT=${KIOT_MONGO_PORT:-27017} ;;
  test) MQTT_PORT=${KIOT_MQTT_PORT:-21883}; REDIS_PORT=${KIOT_REDIS_PORT:-26379}; MONGO_PORT=${KIOT_MONGO_PORT:-27027} ;;
  *) echo "unknown KIOT_PROFILE=$PROFILE (dev|test)" >&2; exit 2 ;;
esac
DATA=${KIOT_DATA_DIR:-$ROOT/.kiot/$PROFILE}
MONGO_CP_FILE=$ROOT/.kiot/mongo-classpath.txt
mkdir -p "$DATA"

log() { printf '[services:%s] %s\n' "$PROFILE" "$*"; }

install() {
  local missing=()
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
  command -v mosquitto_ctrl >/dev/null 2>&1 || missing+=(mosquitto-clients)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  # What the kiot-auth broker plugin is built with (C: the compiler, Mosquitto's, libcurl's and cJSON's headers).
  read -ra plugin_packages <<<"$(bash scripts/mosquitto/kiot-auth/build.sh --missing-packages)"
  missing+=("${plugin_packages[@]}")
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -s "$MONGO_CP_FILE" ]; then
    log "resolving mongo-java-server 1.47.0 from Maven Central"
    (cd scripts/mongo && mvn -q -B -Dstyle.color=never dependency:build-classpath -Dmdep.outputFile="$MONGO_CP_FILE" >/dev/null)
  fi
  bash scripts/mosquitto/kiot-auth/build.sh >/dev/null
}

mosquitto_bin() { command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto; }
redis_bin() { command -v redis-server 2>/dev/null || echo /usr/bin/redis-server; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_of() {
  case $1 in mosquitto) echo "$MQTT_PORT" ;; redis) echo "$REDIS_PORT" ;; mongo) echo "$MONGO_PORT" ;; esac
}

# A process's command line, NULs as spaces; empty when the process is gone. The 2> comes first: bash applies
# redirections left to right, so a failed `<` of a missing /proc entry would print before a later 2> applied.
cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# Whether a command line (NULs as spaces, one trailing space) is this profile's instance of the service.
is_service_cmdline() {
  local name=$1 cmdline=$2
  case $name in
    mosquitto) [[ $cmdline == *mosquitto\ -c\ "$DATA/mosquitto/mosquitto.conf "* ]] ;;
    # redis-server rewrites its title to "redis-server 127.0.0.1:PORT" (proc-title-template) once started.
    redis) [[ $cmdline == *redis-server*":$REDIS_PORT "* || $cmdline == *redis-server\ *--port\ "$REDIS_PORT "* ]] ;;
    mongo) [[ $cmdline == *java\ *KiotMongoServer.java\ *\ "$MONGO_PORT "* ]] ;;
    *) return 1 ;;
  esac
}

# Whether a process is on its way out: a zombie, or SIGKILL already pending (a kill -9 is not instant;
# until the kernel has torn the process down it still has its command line and maybe its port).
dying() {
  local pid=$1 state pending mask
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 0
  case $state in '' | Z | X) return 0 ;; esac
  for pending in $(awk '/^(SigPnd|ShdPnd):/ {print $2}' "/proc/$pid/status" 2>/dev/null); do
    mask=$((16#$pending))
    (((mask >> 8) & 1)) && return 0
  done
  return 1
}

# Prints the pid of the service if its pid file names a live process that is this service; otherwise
# clears the pid file. A process that is dying (see above), or a recycled pid (after a reboot, say) with
# another command line, does not count.
live_pid() {
  local name=$1 file="$DATA/$1.pid" pid cmdline i
  [ -f "$file" ] || return 1
  pid=$(cat "$file" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]]; then
    cmdline=$(cmdline_of "$pid")
    if [ -n "$cmdline" ] && is_service_cmdline "$name" "$cmdline"; then
      if ! dying "$pid"; then
        echo "$pid"
        return 0
      fi
      # Let it finish dying, so that its port is free for the next one.
      for i in $(seq 1 100); do [ -d "/proc/$pid" ] && dying "$pid" && sleep 0.05 || break; done
    fi
  fi
  log "cleared the stale pid file of $name (pid '${pid}' is not a running $name)" >&2
  rm -f "$file"
  return 1
}

# Running means: the recorded pid is alive, is this service, and its port answers.
service_running() { live_pid "$1" >/dev/null && port_in_use "$(port_of "$1")"; }

# Waits until the service we just started (pid file) accepts connections on its port. Its pid is ours, so
# here alive is enough (between fork and exec the command line is still this script's).
wait_port() {
  local port=$1 name=$2 pid i
  pid=$(cat "$DATA/$name.pid")
  for i in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null || [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
      echo "$name exited during start-up; see $DATA/$name.log" >&2
      tail -20 "$DATA/$name.log" >&2 || true
      return 1
    fi
    if port_in_use "$port"; then return 0; fi
    sleep 0.1
  done
  echo "$name did not open port $port; see $DATA/$name.log" >&2
  tail -20 "$DATA/$name.log" >&2 || true
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DATA/$name.pid"
  return 1
}

# Our service listening without a pid file (a start that was interrupted before it wrote one): record it.
adopt() {
  local name=$1 port pid cmdline
  port=$(port_of "$name")
  command -v ss >/dev/null 2>&1 || return 1
  pid=$(ss -Htlnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  [ -n "$pid" ] || return 1
  cmdline=$(cmdline_of "$pid")
  is_service_cmdline "$name" "$cmdline" || return 1
  # And ours, not another checkout's on the same port: redis runs in its --dir, mongo where we started it.
  case $name in
    redis) [ "$(readlink "/proc/$pid/cwd")" = "$DATA/redis" ] || return 1 ;;
    mongo) [ "$(readlink "/proc/$pid/cwd")" = "$ROOT" ] || return 1 ;;
  esac
  echo "$pid" >"$DATA/$name.pid"
  log "found $name (pid $pid) on port $port without a pid file; recorded it"
}

# Before a start: true if the service already runs. Our process with a port that never answers (hung, or
# still starting) gets 30 s, then is killed and started again.
already_running() {
  local name=$1 port pid i
  port=$(port_of "$name")
  pid=$(live_pid "$name") || { adopt "$name"; return; }
  for i in $(seq 1 300); do
    port_in_use "$port" && return 0
    live_pid "$name" >/dev/null || return 1
    sleep 0.1
  done
  log "$name (pid $pid) does not answer on port $port; restarting it"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DATA/$name.pid"
  return 1
}

# KIOT_MQTT_AUTH, how the broker authenticates: hooks (dev) — the kiot-auth plugin asks device-registry about
# devices (BROKER_ACCESS=hooks, registration writes nothing to the broker), kiot's service accounts stay in dynamic
# security behind it; dynsec — the registry writes a client and role per device there; none (test) — anonymous
# (tests that need either start a private broker). KIOT_MQTT_DYNSEC=1/0, from before hooks, selects dynsec/none.
case "${KIOT_MQTT_DYNSEC:-}" in 1) legacy_auth=dynsec ;; 0) legacy_auth=none ;; *) legacy_auth= ;; esac
MQTT_AUTH=${KIOT_MQTT_AUTH:-${legacy_auth:-$([ "$PROFILE" = dev ] && echo hooks || echo none)}}
case "$MQTT_AUTH" in hooks | dynsec | none) ;; *) echo "unknown KIOT_MQTT_AUTH=$MQTT_AUTH (hooks|dynsec|none)" >&2; exit 2 ;; esac
DYNSEC=$([ "$MQTT_AUTH" = none ] && echo 0 || echo 1)
ANONYMOUS=${KIOT_MQTT_ANONYMOUS:-$([ "$DYNSEC" = 1 ] && echo false || echo true)}
# Where kiot-auth asks: the stack's device-registry (scripts/stack/config.ts FUNCTION_PORTS), and how long a
# connected device's access stands before the plugin asks again (the bound on a disable's effect).
BROKER_AUTH_URL=${KIOT_BROKER_AUTH_URL:-http://127.0.0.1:8101}
BROKER_AUTH_TTL=${KIOT_BROKER_AUTH_TTL:-30}
MQTT_AUTOSAVE_CHANGES=${KIOT_MQTT_AUTOSAVE_CHANGES:-100}
# Redis (dev): the append-only file, fsynced before every reply (group commit per event loop turn). With
# everysec a reply can go out while its write still waits behind a slow background fsync (up to 2 s, Redis
# aof.c), and a kill -9 then loses it: measured here, 441 of 1,000 pipelined SETs on a busy disk.
REDIS_APPENDFSYNC=${KIOT_REDIS_APPENDFSYNC:-always}

write_mosquitto_conf() {
  mkdir -p "$DATA/mosquitto"
  # conf.d/ is where later features (the dynamic-security plugin) add their lines.
  mkdir -p "$DATA/mosquitto/conf.d"
  cat > "$DATA/mosquitto/mosquitto.conf" <<CONF
# Generated by scripts/services.sh: do not edit, edit the script.
per_listener_settings false
# Keep the invoking user (Mosquitto drops root to "mosquitto", which cannot write the data folder).
user $(id -un)
persistence true
persistence_location $DATA/mosquitto/
# Snapshot the in-memory state after every $MQTT_AUTOSAVE_CHANGES changes (messages queued or acknowledged,
# subscriptions, retained messages) rather than every few seconds: what a kill -9 can lose is what changed
# since the last snapshot (docs/deploy.md, "What a crash can lose"). Mosquitto 2.0 has no per-message log.
autosave_on_changes true
autosave_interval $MQTT_AUTOSAVE_CHANGES
# The bridge's persistent sessions must be able to hold a backlog while the sink is down.
max_queued_messages 200000
max_inflight_messages 100
# Small QoS 1 packets would otherwise wait for Nagle's algorithm (~40 ms a hop on loopback).
set_tcp_nodelay true
listener $MQTT_PORT 127.0.0.1
allow_anonymous $ANONYMOUS
include_dir $DATA/mosquitto/conf.d
CONF
}

port_taken() {
  if port_in_use "$1"; then
    echo "port $1 for $2 is taken by another process; stop it or set KIOT_${3}_PORT" >&2
    return 1
  fi
}

start_mosquitto() {
  if already_running mosquitto; then log "mosquitto already running on $MQTT_PORT"; return; fi
  port_taken "$MQTT_PORT" mosquitto MQTT
  write_mosquitto_conf
  rm -f "$DATA/mosquitto/conf.d/dynsec.conf" "$DATA/mosquitto/conf.d/00-kiot-auth.conf"
  if [ "$DYNSEC" = 1 ]; then bash scripts/mosquitto/dynsec-init.sh "$DATA/mosquitto" >/dev/null; fi
  if [ "$MQTT_AUTH" = hooks ]; then
    node scripts/mosquitto/kiot-auth/init.mjs "$DATA/mosquitto" "$(bash scripts/mosquitto/kiot-auth/build.sh)" \
      "$BROKER_AUTH_URL" "$BROKER_AUTH_TTL"
  fi
  # Each service in a session of its own: a Ctrl-C meant for `npm start` must not kill the broker under the
  # components that are still shutting down in order (they stop it last).
  setsid "$(mosquitto_bin)" -c "$DATA/mosquitto/mosquitto.conf" >"$DATA/mosquitto.log" 2>&1 &
  echo $! >"$DATA/mosquitto.pid"
  wait_port "$MQTT_PORT" mosquitto
  log "mosquitto on 127.0.0.1:$MQTT_PORT"
}

start_redis() {
  if already_running redis; then log "redis already running on $REDIS_PORT"; return; fi
  port_taken "$REDIS_PORT" redis REDIS
  mkdir -p "$DATA/redis"
  local persist=(--save "" --appendonly no)
  [ "$PROFILE" = dev ] && persist=(--save "60 1" --appendonly yes --appendfsync "$REDIS_APPENDFSYNC")
  setsid "$(redis_bin)" --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$DATA/redis" --daemonize no \
    --protected-mode yes "${persist[@]}" >"$DATA/redis.log" 2>&1 &
  echo $! >"$DATA/redis.pid"
  wait_port "$REDIS_PORT" redis
  log "redis on 127.0.0.1:$REDIS_PORT"
}

start_mongo() {
  if already_running mongo; then log "mongo-java-server already running on $MONGO_PORT"; return; fi
  port_taken "$MONGO_PORT" mongo MONGO
  local file_arg=() jit=()
  [ "$PROFILE" = dev ] && file_arg=("$DATA/mongo.h2")
  # npm start's server is a fresh JVM that meets its first load (a fleet registered, a simulator) cold, and there
  # the C2 compiler was most of its CPU: 10,000 bulk registrations cost it 7.0-11.2 s of CPU, 3.8-7.6 s of them in
  # C2's threads and 2.4-4.0 s doing the work; C1 alone 3.3-4.2 s in all, the work itself no slower (2.8-3.6 s).
  # The test profile keeps the default (benchmarks measure it warm).
  [ "$PROFILE" = dev ] && jit=(-XX:TieredStopAtLevel=1)
  setsid java -Xmx3g "${jit[@]}" -cp "$(cat "$MONGO_CP_FILE")" scripts/mongo/KiotMongoServer.java 127.0.0.1 "$MONGO_PORT" "${file_arg[@]}" \
    >"$DATA/mongo.log" 2>&1 &
  echo $! >"$DATA/mongo.pid"
  wait_port "$MONGO_PORT" mongo
  log "mongo-java-server on 127.0.0.1:$MONGO_PORT"
}

stop_one() {
  local name=$1 pidfile="$DATA/$1.pid" pid i
  # Only our own process: a stale pid file may name anything.
  if pid=$(live_pid "$name") || { adopt "$name" >/dev/null && pid=$(cat "$pidfile"); }; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$pidfile"
}

status() {
  local name port rc=0
  for name in mosquitto redis mongo; do
    case $name in mosquitto) port=$MQTT_PORT;; redis) port=$REDIS_PORT;; mongo) port=$MONGO_PORT;; esac
    if service_running "$name"; then echo "$name running (pid $(cat "$DATA/$name.pid"), 127.0.0.1:$port)"
    else echo "$name stopped"; rc=3; fi
  done
  return $rc
}

print_env() {
  echo "MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT"
  echo "KIOT_MQTT_AUTH=$MQTT_AUTH"
  if [ "$DYNSEC" = 1 ]; then echo "KIOT_DYNSEC_ENV=$DATA/mosquitto/dynsec.env"; fi
  if [ "$MQTT_AUTH" = hooks ]; then echo "KIOT_BROKER_KEY_ENTRY=$DATA/mosquitto/broker-api-key.json"; fi
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
  echo "MONGODB_URL=mongodb://127.0.0.1:$MONGO_PORT"
}

case "${1:-status}" in
  install) install ;;
  start)
    install
    start_mosquitto
    start_redis
    if [ -n "${KIOT_EXTERNAL_MONGODB:-}" ]; then log "using external MongoDB, not starting mongo-java-server"; else start_mongo; fi
    ;;
  stop) stop_one mongo; stop_one redis; stop_one mosquitto ;;
  restart) "$0" stop; "$0" start ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 install|start|stop|restart|status|env" >&2; exit 2 ;;
esac
