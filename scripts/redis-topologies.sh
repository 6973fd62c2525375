#!/usr/bin/env bash
# Starts, stops or reports the highly available Redis topologies kiot is tested on, from Debian's
# redis-server, on loopback:
#   cluster   Redis Cluster: three masters and three replicas, created with `redis-cli --cluster create`
#   sentinel  one master, one replica and three sentinels watching them (master name "kiot")
# The single node is scripts/services.sh's. Idempotent; only the processes whose pid files it wrote
# (and whose command line is still redis-server) are stopped. No persistence: test data only.
#   KIOT_PROFILE=test (default) cluster 26380-26385, sentinel 26386 (master), 26387 (replica), 26388-26390
#   KIOT_PROFILE=dev            cluster 6380-6385, sentinel 6386, 6387, 6388-6390
# A test that kills nodes starts private instances with explicit ports and a directory of its own:
#   REDIS_TOPOLOGY_DIR        where pid files, configs and logs go (default .kiot/<profile>/redis-topologies)
#   REDIS_CLUSTER_PORTS       six ports; the first three start as masters
#   REDIS_CLUSTER_BUS_PORTS   their cluster bus ports (default: each port + 10000)
#   REDIS_SENTINEL_PORTS      five ports: master, replica, three sentinels
#   REDIS_FAILOVER_MS         cluster-node-timeout and the sentinels' down-after-milliseconds (default 2000)
#   REDIS_TOPOLOGY_PORTS=free every port picked by the OS (a second test run while the default ones are taken)
# The ports a start used are kept in $REDIS_TOPOLOGY_DIR/ports.env for env, status and stop.
# Pid files are <dir>/<role>-<port>.pid (cluster-, data-, sentinel-): a failover test kills a node by its port.
# Usage: scripts/redis-topologies.sh start|stop|status|env [cluster|sentinel|all]
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${KIOT_PROFILE:-test}
case "$PROFILE" in
  dev) BASE=6380 ;;
  test) BASE=26380 ;;
  *) echo "unknown KIOT_PROFILE=$PROFILE (dev|test)" >&2; exit 2 ;;
esac
DIR=${REDIS_TOPOLOGY_DIR:-$PWD/.kiot/$PROFILE/redis-topologies}
# shellcheck source=/dev/null
[ -s "$DIR/ports.env" ] && . "$DIR/ports.env"
if [ "${REDIS_TOPOLOGY_PORTS:-}" = free ] && [ ! -s "$DIR/ports.env" ]; then
  # Seventeen loopback ports the OS hands out (six nodes, their six bus ports, two data nodes, three sentinels).
  read -r -a free <<<"$(node -e '
    const net = require("node:net");
    const servers = Array.from({ length: 17 }, () => net.createServer().listen(0, "127.0.0.1"));
    Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r)))).then(() => {
      console.log(servers.map((s) => s.address().port).join(" "));
      for (const s of servers) s.close();
    });')"
  REDIS_CLUSTER_PORTS="${free[*]:0:6}" REDIS_CLUSTER_BUS_PORTS="${free[*]:6:6}" REDIS_SENTINEL_PORTS="${free[*]:12:5}"
fi
read -r -a CLUSTER_PORTS <<<"${REDIS_CLUSTER_PORTS:-$(seq -s ' ' "$BASE" $((BASE + 5)))}"
read -r -a SENTINEL_PORTS <<<"${REDIS_SENTINEL_PORTS:-$(seq -s ' ' $((BASE + 6)) $((BASE + 10)))}"
if [ -n "${REDIS_CLUSTER_BUS_PORTS:-}" ]; then read -r -a BUS_PORTS <<<"$REDIS_CLUSTER_BUS_PORTS"
else BUS_PORTS=(); for port in "${CLUSTER_PORTS[@]}"; do BUS_PORTS+=($((port + 10000))); done; fi
FAILOVER_MS=${REDIS_FAILOVER_MS:-2000}
MASTER_NAME=kiot
[ ${#CLUSTER_PORTS[@]} = 6 ] && [ ${#BUS_PORTS[@]} = 6 ] || { echo "REDIS_CLUSTER_PORTS needs six ports" >&2; exit 2; }
[ ${#SENTINEL_PORTS[@]} = 5 ] || { echo "REDIS_SENTINEL_PORTS needs five ports" >&2; exit 2; }

log() { printf '[redis-topologies:%s] %s\n' "$PROFILE" "$*"; }
cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# A pid file names our process only while that pid is alive and still runs redis-server (after a reboot
# or a kill the number may belong to something else).
ours() {
  local pidfile=$1 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'redis-\(server\|check-rdb\|sentinel\)'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts one redis-server (config file $2) under the name $1, in a session of its own, and waits for its port.
launch() {
  local name=$1 conf=$2 port=$3 i
  shift 3
  if ours "$DIR/$name.pid"; then return 0; fi
  if port_open "$port"; then echo "port $port for $name is taken by another process" >&2; return 1; fi
  setsid redis-server "$conf" "$@" >"$DIR/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/$name.pid"
  # Alive is enough here: right after the fork the child does not run redis-server yet.
  for i in $(seq 1 600); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "$name did not open port $port; see $DIR/$name.log" >&2
  tail -20 "$DIR/$name.log" >&2 || true
  return 1
}

# Polls until the command succeeds (at most ~60 s: a loaded machine slows the handshakes down).
await() {
  local what=$1 i
  shift
  for i in $(seq 1 600); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2
  return 1
}

node_conf() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  cat >"$dir/redis.conf" <<CONF
# Generated by scripts/redis-topologies.sh.
bind 127.0.0.1
port $port
protected-mode yes
daemonize no
dir $dir
save ""
appendonly no
CONF
}

cluster_ready() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do
    cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    [ "$(cli "$port" cluster info 2>/dev/null | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = 6 ] || return 1
  done
  # Every replica has finished its first sync, so a failover has something to promote.
  [ "$(for port in "${CLUSTER_PORTS[@]}"; do cli "$port" info replication; done | grep -c '^master_link_status:up')" = 3 ]
}

start_cluster() {
  local i port dir created=1
  for i in 0 1 2 3 4 5; do
    port=${CLUSTER_PORTS[$i]}
    dir=$DIR/cluster-$port
    [ -s "$dir/nodes.conf" ] || created=0
    node_conf "$dir" "$port"
    cat >>"$dir/redis.conf" <<CONF
cluster-enabled yes
cluster-config-file $dir/nodes.conf
cluster-port ${BUS_PORTS[$i]}
cluster-node-timeout $FAILOVER_MS
# A failed master makes only its own slots unavailable (503 for the devices there), not the whole cluster.
cluster-require-full-coverage no
cluster-allow-reads-when-down no
CONF
    launch "cluster-$port" "$dir/redis.conf" "$port"
  done
  if [ "$created" = 0 ]; then
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/cluster-create.log" 2>&1 ||
      { cat "$DIR/cluster-create.log" >&2; return 1; }
  fi
  await "the cluster to be ready" cluster_ready
  log "redis cluster on 127.0.0.1:${CLUSTER_PORTS[*]}"
}

sentinel_ready() {
  local port
  for port in "${SENTINEL_PORTS[@]:2}"; do
    local info
    info=$(cli "$port" sentinel master "$MASTER_NAME" 2>/dev/null | paste - - | tr '\t' '=') || return 1
    grep -qx 'num-slaves=1' <<<"$info" || return 1
    grep -qx 'num-other-sentinels=2' <<<"$info" || return 1
  done
  cli "${SENTINEL_PORTS[1]}" info replication | grep -q '^master_link_status:up'
}

start_sentinel() {
  local master=${SENTINEL_PORTS[0]} replica=${SENTINEL_PORTS[1]} port dir
  # Data nodes are named by port (as cluster nodes are): after a failover the replica is the master.
  node_conf "$DIR/data-$master" "$master"
  launch "data-$master" "$DIR/data-$master/redis.conf" "$master"
  node_conf "$DIR/data-$replica" "$replica"
  echo "replicaof 127.0.0.1 $master" >>"$DIR/data-$replica/redis.conf"
  launch "data-$replica" "$DIR/data-$replica/redis.conf" "$replica"
  for port in "${SENTINEL_PORTS[@]:2}"; do
    dir=$DIR/sentinel-$port
    mkdir -p "$dir"
    # Sentinels rewrite their config file (discovered replicas and peers), so it is written only once.
    if [ ! -s "$dir/sentinel.conf" ]; then
      cat >"$dir/sentinel.conf" <<CONF
# Generated by scripts/redis-topologies.sh; rewritten by the sentinel.
bind 127.0.0.1
port $port
daemonize no
dir $dir
sentinel monitor $MASTER_NAME 127.0.0.1 $master 2
sentinel down-after-milliseconds $MASTER_NAME $FAILOVER_MS
sentinel failover-timeout $MASTER_NAME $((FAILOVER_MS * 5))
sentinel parallel-syncs $MASTER_NAME 1
CONF
    fi
    launch "sentinel-$port" "$dir/sentinel.conf" "$port" --sentinel
  done
  await "the sentinels to see the replica and each other" sentinel_ready
  log "redis sentinel: master 127.0.0.1:$master, replica :$replica, sentinels :${SENTINEL_PORTS[*]:2}"
}

stop_all() {
  local pidfile pid i stopped=0
  [ -d "$DIR" ] || return 0
  for pidfile in "$DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    if ours "$pidfile"; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
  done
  # Nothing is kept: cluster identities and sentinel state belong to the processes just stopped.
  rm -rf "$DIR"
  [ "$stopped" = 0 ] || log "stopped $stopped redis processes"
}

status() {
  local pidfile rc=0
  for pidfile in "$DIR"/*.pid; do
    [ -e "$pidfile" ] || { echo "no redis topology running in $DIR"; return 3; }
    if ours "$pidfile"; then echo "$(basename "$pidfile" .pid) running (pid $(cat "$pidfile"))"
    else echo "$(basename "$pidfile" .pid) stopped"; rc=3; fi
  done
  return $rc
}

hosts() { local IFS=,; echo "$*"; }

print_env() {
  local seeds=() port
  for port in "${CLUSTER_PORTS[@]:0:3}"; do seeds+=("127.0.0.1:$port"); done
  echo "REDIS_CLUSTER_URL=redis-cluster://$(hosts "${seeds[@]}")"
  seeds=()
  for port in "${SENTINEL_PORTS[@]:2}"; do seeds+=("127.0.0.1:$port"); done
  echo "REDIS_SENTINEL_URL=redis-sentinel://$(hosts "${seeds[@]}")/$MASTER_NAME"
}

which=${2:-all}
case "$which" in cluster | sentinel | all) ;; *) echo "unknown topology $which (cluster|sentinel|all)" >&2; exit 2 ;; esac
case "${1:-status}" in
  start)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
      { echo "redis-server and redis-cli are missing: bash scripts/services.sh install" >&2; exit 1; }
    mkdir -p "$DIR"
    printf 'REDIS_CLUSTER_PORTS="%s"\nREDIS_CLUSTER_BUS_PORTS="%s"\nREDIS_SENTINEL_PORTS="%s"\n' \
      "${CLUSTER_PORTS[*]}" "${BUS_PORTS[*]}" "${SENTINEL_PORTS[*]}" >"$DIR/ports.env"
    # Both start at once: the cluster's handshake and the sentinels' discovery each take a few seconds.
    pids=()
    if [ "$which" != sentinel ]; then start_cluster & pids+=($!); fi
    if [ "$which" != cluster ]; then start_sentinel & pids+=($!); fi
    rc=0
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    exit $rc
    ;;
  stop) stop_all ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|status|env [cluster|sentinel|all]" >&2; exit 2 ;;
esac
