#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine with the Swift toolchain, build certkeeper and run its
# main job, `certkeeper daemon`, on the embedded default (Config/internal.yaml): certkeeper creates its own root CA
# in a state directory, issues `localhost` from it, and serves https://localhost:8443/ through its proxy to a small
# backend on 127.0.0.1:8080. No public domain, no ACME server. The script checks the page once with curl (trusting
# the root printed by `certkeeper trust`), then keeps the daemon running until Ctrl-C.
#
#   bash scripts/quickstart.sh           # run until Ctrl-C
#   bash scripts/quickstart.sh --once    # check once and stop (exit 0 when https answered)
#
# Environment: CERTKEEPER_QUICKSTART_PORT (8443), CERTKEEPER_QUICKSTART_BACKEND_PORT (8080),
# CERTKEEPER_QUICKSTART_DIR (a new temporary directory), CERTKEEPER_BIN (skip the build and use this binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ONCE=0
case "${1:-}" in
  --once) ONCE=1 ;;
  "") ;;
  *) echo "quickstart: unknown argument '$1' (only --once)" >&2; exit 2 ;;
esac
PORT=${CERTKEEPER_QUICKSTART_PORT:-8443}
BACKEND_PORT=${CERTKEEPER_QUICKSTART_BACKEND_PORT:-8080}
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then export PATH=/opt/swift/usr/bin:$PATH; fi

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in curl python3 ca-certificates; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (curl checks the page, python3 is the demo backend)..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -n "${CERTKEEPER_BIN:-}" ]; then
  BIN=$CERTKEEPER_BIN
else
  echo "building certkeeper (the first build takes several minutes; progress every 30 s)..."
  . "$ROOT/scripts/build-with-progress.sh"
  build_with_progress --product certkeeper || exit 1
  BIN=$ROOT/.build/debug/certkeeper
fi

WORK=${CERTKEEPER_QUICKSTART_DIR:-$(mktemp -d /tmp/certkeeper-quickstart.XXXXXX)}
mkdir -p "$WORK/www"
sed -e "s|@STATE@|$WORK/state|" -e "s|127.0.0.1:8443|127.0.0.1:$PORT|" -e "s|127.0.0.1:8080|127.0.0.1:$BACKEND_PORT|" \
    "$ROOT/Config/internal.yaml" > "$WORK/certkeeper.yaml"
echo "hello through certkeeper's proxy" > "$WORK/www/index.html"

pids=()
stop() {
  { set +x; } 2>/dev/null
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/backend.log" 2>&1 &
pids+=($!)
echo "+ certkeeper daemon --config $WORK/certkeeper.yaml"
"$BIN" daemon --config "$WORK/certkeeper.yaml" &
DAEMON=$!
pids+=("$DAEMON")

# Bounded waits: the backend's port, then the proxy's, then the first certificate (issued at start).
wait_for_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$DAEMON" 2>/dev/null || { echo "quickstart: certkeeper daemon exited" >&2; exit 1; }
    sleep 0.2
  done
  echo "quickstart: nothing listens on 127.0.0.1:$1 after 30 s" >&2; exit 1
}
wait_for_port "$BACKEND_PORT"
wait_for_port "$PORT"
for _ in $(seq 1 150); do
  "$BIN" trust --config "$WORK/certkeeper.yaml" > "$WORK/root.pem" 2>/dev/null \
    && curl --silent --fail --output /dev/null --cacert "$WORK/root.pem" "https://localhost:$PORT/" && break
  sleep 0.2
done

set -x
"$BIN" trust --config "$WORK/certkeeper.yaml" > "$WORK/root.pem"
curl --silent --show-error --fail --cacert "$WORK/root.pem" "https://localhost:$PORT/"
"$BIN" status --config "$WORK/certkeeper.yaml"
{ set +x; } 2>/dev/null

if [ "$ONCE" -eq 1 ]; then
  echo "quickstart: https://localhost:$PORT/ answered with a certificate from certkeeper's internal CA; stopping."
  exit 0
fi
cat <<EOF

certkeeper is serving https://localhost:$PORT/ (state in $WORK/state).
Try:   curl --cacert $WORK/root.pem https://localhost:$PORT/
       $BIN status --config $WORK/certkeeper.yaml
       $BIN force-renew localhost --config $WORK/certkeeper.yaml    # the proxy swaps the certificate at once
Ctrl-C stops the daemon (it drains open connections first).
EOF
wait "$DAEMON"
