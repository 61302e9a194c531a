#!/usr/bin/env bash
# Sync benchmark for issue #4: time from the renewer installing a new certificate bundle (atomic rename) until
# every follower serves it through its TLS proxy, certkeeper's peer sync against lsyncd + rsync.
# Topology (bench/lib/netns.sh): three network namespaces on a private bridge, nothing in the host's namespace:
#   n1 renewer, n2 and n3 followers. The filesystem is shared, each node has its own directory under $WORK.
# lsyncd half: lsyncd (Debian's, `default.rsync`) on n1 watches n1/certs and rsyncs to an rsync daemon module on
#   each follower; the module's `post-xfer exec` reloads that follower's HAProxy (master-worker, SIGUSR2), which
#   serves n<i>/certs/site.pem (lsyncd itself has no post-sync command). Two settings: lsyncd's default delay
#   (15 s) and `delay = 1`.
# certkeeper half: `certkeeper daemon` (release build) on all three nodes, peer sync over mutual TLS, each node's
#   built-in proxy serving its own store; the renewer's install is a real store install (see measure_certkeeper).
# Measurement (bench/lib/rotate_poll.py, run inside n1): per rotation, install the next bundle on the renewer (lsyncd:
#   copy to a staging dir, fsync, t0, rename over n1/certs/site.pem; certkeeper: version directory written and
#   fsynced, t0, live/ symlink swap), then poll both followers with TLS handshakes every POLL_MS until both serve the
#   new leaf (DER compared); the rotation's figure is the later follower's time. Bundles are
#   ECDSA P-256 leaves with increasing serials from a throw-away root + intermediate, made with openssl here.
# Prints p50/p99 (nearest rank: with 5 rotations p99 is the maximum) per setting and the certkeeper/lsyncd ratios.
# Not a test: nothing here asserts timings.
# Usage: bench/sync.sh [path/to/certkeeper]   (as root; default: builds release)
#   env: R=50 (rotations per setting) R_DEFAULT=5 (lsyncd default delay: 15 s each) R_DELAY1=$R R_CERTKEEPER=$R
#        POLL_MS=10 SKIP_LSYNCD=1 KEEP_WORK=1 (keep the work dir) CERTKEEPER_BIN=path (same as the argument)
#        CK_LOG_LEVEL=debug (the daemons' --log-level; their logs are in the work dir)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
R=${R:-50}
R_DEFAULT=${R_DEFAULT:-5}
R_DELAY1=${R_DELAY1:-$R}
R_CERTKEEPER=${R_CERTKEEPER:-$R}
POLL_MS=${POLL_MS:-10}
PROXY_PORT=8443       # HAProxy on each follower (each namespace has its own ports, no clash with the host)
NAME=sync.bench.test  # the certificate's name
CK_BIN=${1:-${CERTKEEPER_BIN:-}}
CK_LOG_LEVEL=${CK_LOG_LEVEL:-debug}

[ "$(id -u)" -eq 0 ] || { echo "bench/sync.sh needs root (network namespaces)" >&2; exit 1; }
missing=()
for package in lsyncd rsync haproxy openssl iproute2 python3 python3-cryptography; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; fi
PYTHON=/usr/bin/python3
if [ "$R_CERTKEEPER" -gt 0 ] && [ -z "$CK_BIN" ]; then
  swift build -c release --product certkeeper >/dev/null
  CK_BIN=$ROOT/.build/release/certkeeper
fi

# shellcheck source=lib/netns.sh
source "$ROOT/bench/lib/netns.sh"
WORK=$(mktemp -d /tmp/certkeeper-syncbench.XXXXXX)
cleanup() {
  netns_down   # kills everything still running inside the namespaces (daemons, pollers)
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK (logs, configs, per-rotation figures)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/pki" "$WORK/bundles" "$WORK/results"

# shellcheck source=bench/lib/process.sh
source "$ROOT/bench/lib/process.sh"   # stop PID...

# --- certificates -------------------------------------------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=sync bench root" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$WORK/pki/root.key" -out "$WORK/pki/root.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=sync bench intermediate" \
  -keyout "$WORK/pki/int.key" -out "$WORK/pki/int.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$WORK/pki/int.ext"
openssl x509 -req -in "$WORK/pki/int.csr" -CA "$WORK/pki/root.pem" -CAkey "$WORK/pki/root.key" -set_serial 2 \
  -days 30 -extfile "$WORK/pki/int.ext" -out "$WORK/pki/int.pem" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
  "$NAME" >"$WORK/pki/leaf.ext"
BUNDLE_SERIAL=1000
make_bundles() { # make_bundles COUNT: prints COUNT new bundle paths (leaf + intermediate + key), serials increasing
  local i key csr crt path
  for i in $(seq 1 "$1"); do
    BUNDLE_SERIAL=$((BUNDLE_SERIAL + 1))
    key="$WORK/pki/$BUNDLE_SERIAL.key"; csr="$WORK/pki/$BUNDLE_SERIAL.csr"; crt="$WORK/pki/$BUNDLE_SERIAL.pem"
    path="$WORK/bundles/$BUNDLE_SERIAL.pem"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$NAME" -keyout "$key" -out "$csr" 2>/dev/null
    openssl x509 -req -in "$csr" -CA "$WORK/pki/int.pem" -CAkey "$WORK/pki/int.key" -set_serial "$BUNDLE_SERIAL" \
      -days 10 -extfile "$WORK/pki/leaf.ext" -out "$crt" 2>/dev/null
    cat "$crt" "$WORK/pki/int.pem" "$key" >"$path"
    chmod 600 "$path"
    echo "$path"
  done
}
# make_bundles runs in the current shell (not a $(...) subshell) so BUNDLE_SERIAL keeps counting.
next_bundles() { # next_bundles COUNT: sets BUNDLES=(...)
  make_bundles "$1" >"$WORK/bundles.list"
  mapfile -t BUNDLES <"$WORK/bundles.list"
}

# --- network ------------------------------------------------------------------------------------------------------
netns_up sync 3
RENEWER=1
FOLLOWERS=(2 3)
TARGETS="${NETNS_ADDR[2]}:$PROXY_PORT,${NETNS_ADDR[3]}:$PROXY_PORT"
next_bundles 1
INITIAL=${BUNDLES[0]}
for i in 1 2 3; do
  mkdir -p "$WORK/n$i/certs" "$WORK/n$i/stage"
  install -m 600 "$INITIAL" "$WORK/n$i/certs/site.pem"
done
echo "network $NETNS_PREFIX: renewer n1 ${NETNS_ADDR[1]}, followers n2 ${NETNS_ADDR[2]}, n3 ${NETNS_ADDR[3]}" >&2

# rotate_measure OUT LIVE STAGE TARGETS TIMEOUT [INSTALL_CMD] -- BUNDLE...: runs rotate_poll.py inside the renewer's
# namespace; OUT gets one line per rotation ("<max ms> <ms per follower>"). measure_certkeeper calls rotate_poll.py
# itself, with --store (a certkeeper store install instead of a file rename).
rotate_measure() {
  local out=$1 live=$2 stage=$3 targets=$4 timeout=$5 install=()
  shift 5
  if [ "$1" != "--" ]; then install=(--install-cmd "$1"); shift; fi
  shift
  nsx "$RENEWER" "$PYTHON" "$ROOT/bench/lib/rotate_poll.py" rotate --targets "$targets" --live "$live" \
    --stage "$stage" --out "$out" --timeout "$timeout" --poll-ms "$POLL_MS" "${install[@]}" "$@"
}
wait_served() { # wait_served TARGETS BUNDLE TIMEOUT
  nsx "$RENEWER" "$PYTHON" "$ROOT/bench/lib/rotate_poll.py" wait --targets "$1" --bundle "$2" --timeout "$3"
}

# --- lsyncd + rsync + HAProxy reload --------------------------------------------------------------------------------
start_followers_for_lsyncd() {
  local i
  for i in "${FOLLOWERS[@]}"; do
    local dir="$WORK/n$i"
    cat >"$dir/haproxy.cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend tls
  bind ${NETNS_ADDR[i]}:$PROXY_PORT ssl crt $dir/certs/site.pem
  http-request return status 200 content-type text/plain string ok
EOF
    ip netns exec "${NETNS_NODE[i]}" haproxy -W -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
    echo $! >"$dir/haproxy.pid"   # ip netns exec execs haproxy in place: this is the master's pid
    disown                         # netns_down ends it; no job notice from bash then
    # rsync's receiving-side hook: after each successful transfer into the module, a graceful HAProxy reload.
    cat >"$dir/reload.sh" <<EOF
#!/bin/sh
[ "\${RSYNC_EXIT_STATUS:-1}" = 0 ] && kill -USR2 "\$(cat $dir/haproxy.pid)"
exit 0
EOF
    chmod +x "$dir/reload.sh"
    cat >"$dir/rsyncd.conf" <<EOF
use chroot = no
reverse lookup = no
[certs]
  path = $dir/certs
  read only = no
  uid = root
  gid = root
  post-xfer exec = $dir/reload.sh
EOF
    ip netns exec "${NETNS_NODE[i]}" rsync --daemon --no-detach --config="$dir/rsyncd.conf" --address="${NETNS_ADDR[i]}" --port=873 \
      --log-file="$dir/rsyncd.log" &
    echo $! >"$dir/rsyncd.pid"
    disown
  done
  wait_served "$TARGETS" "$INITIAL" 30
}

run_lsyncd() { # run_lsyncd SETTING DELAY_LINE COUNT TIMEOUT
  local setting=$1 delay_line=$2 count=$3 timeout=$4 i pid
  local config="$WORK/lsyncd-$setting.lua" log="$WORK/lsyncd-$setting.log"
  {
    echo "settings { logfile = \"$log\", statusFile = \"$WORK/lsyncd-$setting.status\", nodaemon = true, insist = true }"
    for i in "${FOLLOWERS[@]}"; do
      echo "sync { default.rsync, source = \"$WORK/n$RENEWER/certs/\", target = \"${NETNS_ADDR[i]}::certs/\", $delay_line rsync = { archive = true } }"
    done
  } >"$config"
  : >"$log"
  ip netns exec "${NETNS_NODE[RENEWER]}" lsyncd "$config" >"$WORK/lsyncd-$setting.out" 2>&1 &
  pid=$!
  # Both start-up syncs done (two "Startup of ... finished" lines) before the first rotation.
  for _ in $(seq 1 300); do
    [ "$(grep -c 'Startup of .* finished' "$log" 2>/dev/null || true)" -ge "${#FOLLOWERS[@]}" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "lsyncd exited: $(tail -5 "$log" "$WORK/lsyncd-$setting.out")" >&2; exit 1; }
    sleep 0.1
  done
  grep -q 'Startup of .* finished' "$log" || { echo "lsyncd did not finish its start-up sync: $(tail -5 "$log")" >&2; exit 1; }
  next_bundles "$count"
  echo "lsyncd $setting: $count rotations" >&2
  rotate_measure "$WORK/results/lsyncd-$setting.ms" "$WORK/n$RENEWER/certs/site.pem" "$WORK/n$RENEWER/stage" \
    "$TARGETS" "$timeout" -- "${BUNDLES[@]}"
  stop "$pid"
  LAST_BUNDLE=${BUNDLES[-1]}
}

# --- certkeeper ---------------------------------------------------------------------------------------------------
# measure_certkeeper: `certkeeper daemon` on every node (peer API on <addr>:$CK_PEER_PORT, mutual TLS with identities
# from `certkeeper cluster init/add-node/join`; built-in proxy on <addr>:$CK_PROXY_PORT, since HAProxy keeps
# $PROXY_PORT on the followers). The renewer's store gets $LAST_BUNDLE before the daemons start; the followers start
# with empty stores and must converge from it (wait_served). Each rotation then installs the next bundle into the
# renewer's store as CertificateStore.install does (rotate_poll.py's StoreInstaller: complete version directory in
# archive/, fsynced, then t0, then the live/web symlink swap); nothing else is done on the renewer: its daemon sees the
# swap through inotify, and the followers pull, verify, install and hot-swap their proxies by themselves.
# Each daemon's stderr goes through a time stamper (wall clock, µs) into $WORK/n<i>/certkeeper.log, because the
# daemon's own log lines carry whole seconds; rotate_poll.py writes each rotation's t0 to $WORK/results/certkeeper.t0
# (bench/lib/sync_timeline.py lines the two up).
CK_PEER_PORT=7443
CK_PROXY_PORT=9443
CK_CERT=web

stamp_lines() { # stamp_lines FILE: copies stdin to FILE, each line prefixed with the wall-clock time it was read
  "$PYTHON" -u -c 'import sys, time
out = open(sys.argv[1], "a", buffering=1)
for line in iter(sys.stdin.readline, ""):
    out.write("%.6f %s" % (time.time(), line))' "$1"
}

wait_listening() { # wait_listening I PID TIMEOUT HOST:PORT...: until node I listens on each HOST:PORT (PID alive)
  local node=$1 pid=$2 timeout=$3 address
  shift 3
  for address in "$@"; do
    for _ in $(seq 1 $((timeout * 10))); do
      nsx "$node" ss -Hltn "src $address" | grep -q . && continue 2
      kill -0 "$pid" 2>/dev/null || { echo "certkeeper daemon on n$node exited: $(tail -5 "$WORK/n$node/certkeeper.log")" >&2; return 1; }
      sleep 0.1
    done
    echo "n$node does not listen on $address after $timeout s: $(tail -5 "$WORK/n$node/certkeeper.log")" >&2
    return 1
  done
}

write_certkeeper_config() { # write_certkeeper_config I ROLE
  local i=$1 role=$2 j peers=""
  for j in $(seq 1 "$NETNS_COUNT"); do
    [ "$j" = "$i" ] || peers+="    - {name: n$j, address: \"${NETNS_ADDR[j]}:$CK_PEER_PORT\"}"$'\n'
  done
  cat >"$WORK/n$i/certkeeper.yaml" <<EOF
state_dir: $WORK/n$i/state
node_name: n$i
acme:
  directory: https://127.0.0.1:14000/dir   # required, never contacted: the bench installs prepared bundles
certificates:
  - name: $CK_CERT
    domains: [$NAME]
cluster:
  role: $role
  listen: "${NETNS_ADDR[i]}:$CK_PEER_PORT"
  peers:
${peers}proxy:
  grace: 1s
  frontends:
    - {name: https, listen: "${NETNS_ADDR[i]}:$CK_PROXY_PORT", backends: ["127.0.0.1:9"]}
EOF
}

measure_certkeeper() {
  local i role ca="$WORK/cluster-ca" targets="${NETNS_ADDR[2]}:$CK_PROXY_PORT,${NETNS_ADDR[3]}:$CK_PROXY_PORT"
  local pids=() status=0 want pid
  "$CK_BIN" cluster init --name syncbench --ca-dir "$ca" >/dev/null
  for i in 1 2 3; do
    role=follower; [ "$i" = "$RENEWER" ] && role=renewer
    mkdir -p "$WORK/n$i"
    write_certkeeper_config "$i" "$role"
    "$CK_BIN" cluster add-node "n$i" --address "${NETNS_ADDR[i]}" --ca-dir "$ca" --out "$WORK/n$i.pem" >/dev/null
    "$CK_BIN" cluster join "$WORK/n$i.pem" --config "$WORK/n$i/certkeeper.yaml" >/dev/null
    rm -f "$WORK/n$i.pem"
  done
  # The renewer's current certificate, installed as `renew` would; the followers have nothing yet.
  "$PYTHON" "$ROOT/bench/lib/rotate_poll.py" install --store "$WORK/n$RENEWER/state" --name "$CK_CERT" \
    --node "n$RENEWER" --bundle "$LAST_BUNDLE"
  for i in 1 2 3; do
    # ip netns exec execs the daemon in place: $! is its pid (the stamper is a separate process substitution).
    ip netns exec "${NETNS_NODE[i]}" "$CK_BIN" daemon --config "$WORK/n$i/certkeeper.yaml" --log-level "$CK_LOG_LEVEL" \
      2> >(stamp_lines "$WORK/n$i/certkeeper.log") &
    pids[i]=$!
  done
  for i in 1 2 3; do
    wait_listening "$i" "${pids[i]}" 30 "${NETNS_ADDR[i]}:$CK_PEER_PORT" "${NETNS_ADDR[i]}:$CK_PROXY_PORT" ||
      { stop "${pids[@]}"; return 1; }
  done
  if ! wait_served "$targets" "$LAST_BUNDLE" 60; then
    echo "followers did not converge on the renewer's certificate: $(tail -5 "$WORK/n2/certkeeper.log")" >&2
    stop "${pids[@]}"
    return 1
  fi
  next_bundles "$R_CERTKEEPER"
  echo "certkeeper daemon: $R_CERTKEEPER rotations" >&2
  nsx "$RENEWER" "$PYTHON" "$ROOT/bench/lib/rotate_poll.py" rotate --targets "$targets" --store "$WORK/n$RENEWER/state" \
    --name "$CK_CERT" --node "n$RENEWER" --out "$WORK/results/certkeeper.ms" --t0-log "$WORK/results/certkeeper.t0" \
    --timeout 30 --poll-ms "$POLL_MS" "${BUNDLES[@]}" || status=1
  LAST_BUNDLE=${BUNDLES[-1]}
  # SIGTERM: each daemon must exit 0 by itself (graceful shutdown, proxy.grace 1 s) within 10 s.
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for i in 1 2 3; do
    local code=0 waited=0
    while kill -0 "${pids[i]}" 2>/dev/null && [ "$waited" -lt 100 ]; do sleep 0.1; waited=$((waited + 1)); done
    if kill -0 "${pids[i]}" 2>/dev/null; then
      echo "n$i: certkeeper daemon still running 10 s after SIGTERM; killed" >&2
      kill -KILL "${pids[i]}" 2>/dev/null || true
      status=1
    fi
    wait "${pids[i]}" || code=$?
    [ "$code" = 0 ] || { echo "n$i: certkeeper daemon exited with status $code after SIGTERM" >&2; status=1; }
  done
  # What the followers hold on disk must be what they served, and no peer bundle may have been refused.
  want=$(openssl x509 -in "$LAST_BUNDLE" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
  for i in "${FOLLOWERS[@]}"; do
    grep -q "\"serial\" : \"$want\"" "$WORK/n$i/state/live/$CK_CERT/meta.json" 2>/dev/null ||
      { echo "n$i's store does not hold serial $want" >&2; status=1; }
  done
  if grep -h 'refused certificate from peer\|cannot sync certificate\|certificate refused' "$WORK"/n[123]/certkeeper.log >&2; then
    status=1
  fi
  for i in 1 2 3; do   # (the lsyncd half's HAProxy and rsyncd stay in n2 and n3 until netns_down)
    for pid in $(ip netns pids "${NETNS_NODE[i]}"); do
      [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != certkeeper ] || { echo "n$i: a certkeeper process is left: $pid" >&2; status=1; }
    done
  done
  if [ "$status" = 0 ]; then
    "$PYTHON" "$ROOT/bench/lib/sync_timeline.py" "$WORK/results/certkeeper.t0" "$WORK/results/certkeeper.ms" \
      "$WORK/n$RENEWER/certkeeper.log" "$WORK/n${FOLLOWERS[0]}/certkeeper.log" "$WORK/n${FOLLOWERS[1]}/certkeeper.log" \
      >"$WORK/results/certkeeper.timeline" || true
  fi
  return $status
}

# --- run ----------------------------------------------------------------------------------------------------------
echo "lsyncd $(lsyncd --version 2>&1 | awk '{print $2}'), $(rsync --version | head -1 | awk '{print $1, $3}'), $(haproxy -v | head -1 | awk '{print $1, $3}'); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
LAST_BUNDLE=$INITIAL
if [ -z "${SKIP_LSYNCD:-}" ]; then
  start_followers_for_lsyncd
  run_lsyncd default "" "$R_DEFAULT" 90
  run_lsyncd delay1 "delay = 1," "$R_DELAY1" 60
fi
CK_MEASURED=""
if [ "$R_CERTKEEPER" -gt 0 ] && measure_certkeeper; then CK_MEASURED=1; fi

# --- report -------------------------------------------------------------------------------------------------------
pct() { # pct FILE P: nearest-rank percentile of the first column, in ms
  "$PYTHON" -c 'import math,sys
v=sorted(float(l.split()[0]) for l in open(sys.argv[1]) if l.strip())
print("%.0f" % v[max(0, math.ceil(float(sys.argv[2]) / 100 * len(v)) - 1)] if v else "-")' "$1" "$2"
}
count() { [ -f "$1" ] && grep -c . "$1" || echo 0; }
ratio() { "$PYTHON" -c 'import sys
a, b = sys.argv[1], sys.argv[2]
print("-" if "-" in (a, b) or float(b) == 0 else "%.3f" % (float(a) / float(b)))' "$1" "$2"; }
row() { printf '%-44s %10s %10s %10s\n' "$@"; }

echo
row "time to serve a new certificate everywhere" "rotations" "p50 (ms)" "p99 (ms)"
declare -A P50 P99
for setting in lsyncd-default lsyncd-delay1 certkeeper; do
  file="$WORK/results/$setting.ms"
  case $setting in
    lsyncd-default) label="lsyncd default.rsync, delay 15 s (default)" ;;
    lsyncd-delay1) label="lsyncd default.rsync, delay = 1" ;;
    certkeeper) label="certkeeper daemon" ;;
  esac
  if [ -s "$file" ]; then
    P50[$setting]=$(pct "$file" 50); P99[$setting]=$(pct "$file" 99)
    row "$label" "$(count "$file")" "${P50[$setting]}" "${P99[$setting]}"
  else
    P50[$setting]="-"; P99[$setting]="-"
    row "$label" "-" "not measured" ""
  fi
done
if [ -n "$CK_MEASURED" ]; then
  echo
  row "ratio certkeeper / lsyncd" "" "p50" "p99"
  row "  vs delay 15 s (default)" "" "$(ratio "${P50[certkeeper]}" "${P50[lsyncd-default]}")" "$(ratio "${P99[certkeeper]}" "${P99[lsyncd-default]}")"
  row "  vs delay = 1" "" "$(ratio "${P50[certkeeper]}" "${P50[lsyncd-delay1]}")" "$(ratio "${P99[certkeeper]}" "${P99[lsyncd-delay1]}")"
fi
echo "(lsyncd figures include rsync to both followers and HAProxy's graceful reload from rsyncd's post-xfer exec;"
echo " certkeeper: peer sync over mutual TLS, the followers' built-in proxies hot-swap; t0 is the renewer's live/ swap;"
echo " polled every ${POLL_MS} ms from the renewer's namespace; p99 is nearest-rank, the maximum below 100 rotations)"
if [ -s "$WORK/results/certkeeper.timeline" ]; then echo; cat "$WORK/results/certkeeper.timeline"; fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
