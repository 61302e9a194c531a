#!/usr/bin/env bash
# Sync benchmark for issue #4: time from the renewer installing a new certificate bundle (atomic rename) until
# every follower serves it through its TLS proxy, certkeeper's peer sync against lsyncd + rsync.
# Topology (bench/lib/netns.sh): three network namespaces on a private bridge, nothing in the host's namespace:
#   n1 renewer, n2 and n3 followers. The filesystem is shared, each node has its own directory under $WORK.
# lsyncd half: lsyncd (Debian's, `default.rsync`) on n1 watches n1/certs and rsyncs to an rsync daemon module on
#   each follower; the module's `post-xfer exec` reloads that follower's HAProxy (master-worker, SIGUSR2), which
#   serves n<i>/certs/site.pem (lsyncd itself has no post-sync command). Two settings: lsyncd's default delay
#   (15 s) and `delay = 1`.
# certkeeper half: measure_certkeeper() below.
# Measurement (bench/lib/rotate_poll.py, run inside n1): per rotation, copy the next bundle to a staging dir
#   (write + fsync), rename it over n1/certs/site.pem, then poll both followers with TLS handshakes every POLL_MS
#   until both serve the new leaf (DER compared); the rotation's figure is the later follower's time. Bundles are
#   ECDSA P-256 leaves with increasing serials from a throw-away root + intermediate, made with openssl here.
# Prints p50/p99 (nearest rank: with 5 rotations p99 is the maximum) per setting and the certkeeper/lsyncd ratios.
# Not a test: nothing here asserts timings.
# Usage: bench/sync.sh   (as root)
#   env: R=50 (rotations per setting) R_DEFAULT=5 (lsyncd default delay: 15 s each) R_DELAY1=$R R_CERTKEEPER=$R
#        POLL_MS=10 SKIP_LSYNCD=1 KEEP_WORK=1 (keep the work dir) CERTKEEPER_BIN=path (default: build release)
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

[ "$(id -u)" -eq 0 ] || { echo "bench/sync.sh needs root (network namespaces)" >&2; exit 1; }
missing=()
for package in lsyncd rsync haproxy openssl iproute2 python3; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; fi
PYTHON=/usr/bin/python3

# shellcheck source=lib/netns.sh
source "$ROOT/bench/lib/netns.sh"
WORK=$(mktemp -d /tmp/certkeeper-syncbench.XXXXXX)
cleanup() {
  netns_down   # kills everything still running inside the namespaces (daemons, pollers)
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK (logs, configs, per-rotation figures)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$WORK/pki" "$WORK/bundles" "$WORK/results"

stop() { # stop PID...: SIGTERM, wait up to 5 s each, then SIGKILL
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

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
# namespace; OUT gets one line per rotation ("<max ms> <ms per follower>"). For the certkeeper hook too.
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
# measure_certkeeper: HOOK for certkeeper's peer sync daemon (issue #4), to be filled in once `certkeeper daemon`
# exists. Contract:
#   - the network is up: nodes 1..3 (nsx I CMD..., ${NETNS_ADDR[I]}), n1 the renewer; HAProxy still serves port
#     $PROXY_PORT on the followers, so use another port (e.g. 9443) for certkeeper's proxies;
#   - the renewer's current certificate is $LAST_BUNDLE (followers serve it); make fresh ones with
#     `next_bundles N` (sets BUNDLES=(...), serials keep increasing, name $NAME, root CA $WORK/pki/root.pem);
#   - start the daemons inside the namespaces with `ip netns exec "${NETNS_NODE[I]}" "$CK_BIN" ... &` ($! is then
#     the daemon's pid; netns_down kills whatever is left at exit),
#     wait until the followers serve $LAST_BUNDLE: `wait_served "addr:port,addr:port" "$LAST_BUNDLE" 60`;
#   - measure with `rotate_measure "$WORK/results/certkeeper.ms" LIVE_PATH STAGE_DIR TARGETS TIMEOUT [INSTALL_CMD] -- "${BUNDLES[@]}"`
#     (LIVE_PATH renamed over per rotation, or INSTALL_CMD run with the bundle path as its argument);
#   - return 0 when measured, 1 when not (the report then says "not measured").
measure_certkeeper() {
  return 1
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
echo " polled every ${POLL_MS} ms from the renewer's namespace; p99 is nearest-rank, the maximum below 100 rotations)"
