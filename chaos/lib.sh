# Shared by the chaos scripts (sourced, not run). Two targets:
#   CHAOS_TARGET=local (default): the nodes of ./deploy/run-local or chaos/run, found through
#     CHAOS_DATA_DIR (default ./data/deploy): configs in cluster/node-N.toml, pids in
#     node-N/raftmq.pid. Partitions are iptables rules on the nodes' loopback addresses
#     (127.0.0.11-13), in a chain of their own (RAFTMQ-CHAOS).
#   CHAOS_TARGET=compose: the services of deploy/compose.yml (docker kill/start/pause/unpause,
#     docker network disconnect/connect).
# With CHAOS_HISTORY set, each script appends its fault event (JSON line) for `raftmq chaos check`.
set -euo pipefail

CHAOS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAOS_TARGET="${CHAOS_TARGET:-local}"
CHAOS_DATA_DIR="${CHAOS_DATA_DIR:-$CHAOS_ROOT/data/deploy}"
RAFTMQ_BIN="${RAFTMQ_BIN:-${CARGO_TARGET_DIR:-$CHAOS_ROOT/target}/release/raftmq}"
COMPOSE=(docker compose -p raftmq -f "$CHAOS_ROOT/deploy/compose.yml")
CHAIN=RAFTMQ-CHAOS

die() { echo "chaos: $*" >&2; exit 2; }
now_ms() { date +%s%3N; }

# record start|end ACTION TARGET
record() {
  [ -n "${CHAOS_HISTORY:-}" ] || return 0
  printf '{"t":"fault","phase":"%s","action":"%s","target":"%s","at":%s}\n' "$1" "$2" "$3" "$(now_ms)" >>"$CHAOS_HISTORY"
}

node_ids() { echo 1 2 3; }

# A node's client address, for admin queries.
client_addr() {
  if [ "$CHAOS_TARGET" = compose ]; then echo "127.0.0.1:808$1"; return; fi
  sed -n 's/^client_addr = "\(.*\)"/\1/p;T;q' "$CHAOS_DATA_DIR/cluster/node-$1.toml"
}

# A node's IP address (local target).
node_ip() {
  local addr
  addr=$(sed -n 's/^raft_addr = "\(.*\)"/\1/p;T;q' "$CHAOS_DATA_DIR/cluster/node-$1.toml")
  [ -n "$addr" ] || die "no raft_addr in $CHAOS_DATA_DIR/cluster/node-$1.toml"
  echo "${addr%:*}"
}

# Whether process $1 is alive (a zombie is not).
alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

node_pid() {
  local f="$CHAOS_DATA_DIR/node-$1/raftmq.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  # Only a live raftmq process counts (a stale pid file may name anything by now).
  [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' <"/proc/$pid/cmdline" | head -1 | grep -Eq '(raftmq|raftmq-it-node)$' || return 1
  alive "$pid" || return 1
  echo "$pid"
}

# The leader of a group, asked of any node that answers.
leader_of() {
  local id
  for id in $(node_ids); do
    if "$RAFTMQ_BIN" admin --server "$(client_addr "$id")" --timeout 2 cluster leader --group "$1" --wait 10 2>/dev/null; then
      return 0
    fi
  done
  die "no node knows a leader of $1"
}

# A node that leads no broker group (the first one), when there is one.
idle_node() {
  local a b id
  a=$(leader_of broker-a)
  b=$(leader_of broker-b)
  for id in $(node_ids); do [ "$id" != "$a" ] && [ "$id" != "$b" ] && { echo "$id"; return; }; done
  die "every node leads a broker group"
}

# Resolves TARGET to node ids: node2 | 2 | leader:GROUP | follower:GROUP | idle | all
resolve() {
  case "$1" in
    all) node_ids ;;
    idle) idle_node ;;
    node[0-9]) echo "${1#node}" ;;
    [0-9]) echo "$1" ;;
    leader:*) leader_of "${1#leader:}" ;;
    follower:*)
      local l id
      l=$(leader_of "${1#follower:}")
      for id in $(node_ids); do [ "$id" != "$l" ] && { echo "$id"; return; }; done ;;
    *) die "unknown target '$1' (use node1-3, leader:GROUP, follower:GROUP, idle or all)" ;;
  esac
}

container() { "${COMPOSE[@]}" ps -q "node$1"; }

ensure_iptables() {
  command -v iptables >/dev/null && return
  echo "chaos: installing iptables" >&2
  apt-get install -y -qq iptables >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iptables >/dev/null; }
}

ensure_chain() {
  ensure_iptables
  iptables -N "$CHAIN" 2>/dev/null || true
  iptables -C INPUT -j "$CHAIN" 2>/dev/null || iptables -I INPUT -j "$CHAIN"
}
