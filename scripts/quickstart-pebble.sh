#!/usr/bin/env bash
# The ACME walk-through (README, "Renewal with ACME"): on a fresh Debian 12 machine with the Swift toolchain, build certkeeper, start a
# local ACME CA (Debian's Pebble) on loopback, obtain two certificates with `certkeeper renew` (http-01 with the
# built-in responder, and dns-01 through a hook), show `certkeeper status`, renew again (nothing due), and stop.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
for p in pebble openssl curl; do
  dpkg -s "$p" >/dev/null 2>&1 || { $SUDO apt-get update -qq; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pebble openssl curl >/dev/null; break; }
done
echo "building certkeeper (the first build takes several minutes; progress every 30 s)..."
. "$ROOT/scripts/build-with-progress.sh"
build_with_progress --product certkeeper
BIN=$ROOT/.build/debug/certkeeper
WORK=${CERTKEEPER_QUICKSTART_DIR:-$(mktemp -d /tmp/certkeeper-quickstart.XXXXXX)}
. "$ROOT/scripts/pebble-env.sh"
trap pebble_stop EXIT
pebble_start

cat > "$WORK/dns-hook.sh" <<HOOK
#!/bin/sh
# A dns-01 hook in certbot's manual-hook style, publishing to pebble-challtestsrv's fake DNS.
set -eu
case "\$1" in
  present) curl -sf -X POST -d "{\"host\":\"_acme-challenge.\$CERTBOT_DOMAIN.\",\"value\":\"\$CERTBOT_VALIDATION\"}" $CHALL_MGMT/set-txt ;;
  cleanup) curl -sf -X POST -d "{\"host\":\"_acme-challenge.\$CERTBOT_DOMAIN.\"}" $CHALL_MGMT/clear-txt ;;
esac
HOOK
chmod +x "$WORK/dns-hook.sh"
sed -e "s|@STATE@|$WORK/state|" -e "s|@DIRECTORY@|$ACME_DIR_URL|" -e "s|@CA_BUNDLE@|$ACME_CA_BUNDLE|" \
    -e "s|@HTTP01@|127.0.0.1:$HTTP01_PORT|" -e "s|@DNS_HOOK@|$WORK/dns-hook.sh|" \
    "$ROOT/Config/quickstart.yaml" > "$WORK/certkeeper.yaml"

set -x
"$BIN" check-config --config "$WORK/certkeeper.yaml"
"$BIN" renew --config "$WORK/certkeeper.yaml" --no-random-sleep
"$BIN" status --config "$WORK/certkeeper.yaml"
"$BIN" renew --config "$WORK/certkeeper.yaml" --no-random-sleep
ls -l "$WORK/state/live/" "$WORK/state/live/web/"
{ set +x; } 2>/dev/null
echo "certificates are in $WORK/state/live/; Pebble has been stopped."
