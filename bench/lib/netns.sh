# shellcheck shell=bash
# The bench's private network, the shell twin of Tests/Support/TestNetwork.swift: one "switch" namespace with a
# bridge br0, N node namespaces whose eth0 is a veth to a bridge port p<i>, lo up everywhere, addresses in a
# random 10.x.y.0/24 (node i = .10+i). Nothing is created in the host's network namespace.
# Source it, then:
#   netns_up LABEL N        creates the network; sets NETNS_PREFIX, NETNS_SWITCH, NETNS_NODE[i], NETNS_ADDR[i] (i = 1..N)
#   nsx I CMD...            runs CMD inside node I in the foreground (a shell function: `nsx 2 prog &` would put a
#                           subshell's pid in $!; for a daemon whose pid you need, run
#                           `ip netns exec "${NETNS_NODE[2]}" prog &`, which execs in place: $! is prog's pid)
#   netns_link I up|down    partitions node I (its bridge port) or reconnects it
#   netns_down              kills everything still inside the namespaces and deletes them (safe to call twice)
# Needs root and iproute2. Stale `ckb-` namespaces whose creating shell is gone are removed by netns_up.

NETNS_PREFIX=""
NETNS_SWITCH=""
NETNS_COUNT=0
declare -a NETNS_NODE=() NETNS_ADDR=()

_netns_kill_and_delete() { # _netns_kill_and_delete NAME
  local name=$1 pids
  [ -e "/run/netns/$name" ] || return 0
  for _ in $(seq 1 50); do
    pids=$(ip netns pids "$name" 2>/dev/null || true)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  ip netns del "$name" 2>/dev/null || true
}

_netns_remove_stale() {
  local name pid
  for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^ckb-' || true); do
    pid=$(echo "$name" | cut -d- -f3)   # ckb-<label>-<pid>-<random>-<role>
    if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then _netns_kill_and_delete "$name"; fi
  done
}

netns_up() { # netns_up LABEL N
  local label=${1//[^a-z0-9]/} count=$2 i base
  _netns_remove_stale
  NETNS_PREFIX="ckb-${label:0:8}-$$-$(printf '%04x' $((RANDOM % 65536)))"
  NETNS_SWITCH="$NETNS_PREFIX-sw"
  NETNS_COUNT=$count
  base="10.$((200 + RANDOM % 50)).$((RANDOM % 256))"
  ip netns add "$NETNS_SWITCH"
  ip -n "$NETNS_SWITCH" link set lo up
  ip -n "$NETNS_SWITCH" link add br0 type bridge
  ip -n "$NETNS_SWITCH" link set br0 up
  for i in $(seq 1 "$count"); do
    NETNS_NODE[i]="$NETNS_PREFIX-n$i"
    NETNS_ADDR[i]="$base.$((10 + i))"
    ip netns add "${NETNS_NODE[i]}"
    ip -n "${NETNS_NODE[i]}" link set lo up
    ip -n "$NETNS_SWITCH" link add "p$i" type veth peer name eth0 netns "${NETNS_NODE[i]}"
    ip -n "$NETNS_SWITCH" link set "p$i" master br0 up
    ip -n "${NETNS_NODE[i]}" addr add "${NETNS_ADDR[i]}/24" dev eth0
    ip -n "${NETNS_NODE[i]}" link set eth0 up
  done
}

nsx() { # nsx I CMD...
  local node=$1; shift
  ip netns exec "${NETNS_NODE[node]}" "$@"
}

netns_link() { # netns_link I up|down
  ip -n "$NETNS_SWITCH" link set "p$1" "$2"
}

netns_down() {
  local i
  [ -n "$NETNS_PREFIX" ] || return 0
  for i in $(seq 1 "$NETNS_COUNT"); do _netns_kill_and_delete "${NETNS_NODE[i]}"; done
  _netns_kill_and_delete "$NETNS_SWITCH"
  NETNS_PREFIX=""
}
