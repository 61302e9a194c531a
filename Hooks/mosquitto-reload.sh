#!/bin/sh
# certkeeper deploy hook: make Mosquitto re-read its TLS certificate by sending it SIGHUP (Mosquitto 2.0
# and later reload listener certificates on SIGHUP; existing connections keep running).
#
# Mosquitto reads the files after dropping privileges, as its own user, so that user must be able to read
# the key. Either grant it access to live/<name>/ or set MOSQUITTO_CERT_DIR: the hook then copies
# fullchain.pem and privkey.pem to $MOSQUITTO_CERT_DIR/<name>.crt and <name>.key atomically (temporary file
# in the same directory, then rename), owned by MOSQUITTO_CERT_OWNER, for certfile/keyfile to point at.
#
# Variables set by certkeeper:
#   CERTKEEPER_CERT_NAME   certificate name, for the copied file names
#   CERTKEEPER_FULLCHAIN   leaf plus intermediates (live/<name>/fullchain.pem)
#   CERTKEEPER_PRIVKEY     private key (live/<name>/privkey.pem)
# Variables the operator may set (in certkeeper's hook environment):
#   MOSQUITTO_CERT_DIR     if set, copy the certificate and key there first (see above)
#   MOSQUITTO_CERT_OWNER   owner[:group] of the copies (default mosquitto)
#   MOSQUITTO_RELOAD_METHOD auto (default), systemd or pidfile; auto uses systemd when it is running
#   MOSQUITTO_SERVICE      systemd unit to reload (default mosquitto; its ExecReload sends SIGHUP)
#   MOSQUITTO_PIDFILE      pid file used without systemd (default /run/mosquitto/mosquitto.pid, the
#                          pid_file setting of mosquitto.conf)
#
# Requires: dirname, mktemp, cp, chmod, chown, mv (only with MOSQUITTO_CERT_DIR); systemctl, or head, tr and kill.
# Exits non-zero with a one-line message on failure.
set -eu

me=mosquitto-reload
fail() {
    echo "$me: $*" >&2
    exit 1
}

method=${MOSQUITTO_RELOAD_METHOD:-auto}
service=${MOSQUITTO_SERVICE:-mosquitto}
pidfile=${MOSQUITTO_PIDFILE:-/run/mosquitto/mosquitto.pid}

tmp=
cleanup() {
    if [ -n "$tmp" ]; then rm -f "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# Copies $1 to $2 with mode $3 so that readers of $2 see the old file or the new one, never a partial one.
install_atomically() {
    source_file=$1
    target=$2
    mode=$3
    target_dir=$(dirname "$target")
    [ -d "$target_dir" ] || fail "certificate directory $target_dir does not exist"
    tmp=$(mktemp "$target_dir/.certkeeper.XXXXXX") || fail "cannot create a temporary file in $target_dir"
    cp "$source_file" "$tmp" || fail "cannot copy $source_file to $target_dir"
    chmod "$mode" "$tmp" || fail "cannot chmod $tmp"
    chown "${MOSQUITTO_CERT_OWNER:-mosquitto}" "$tmp" || fail "cannot chown $tmp to ${MOSQUITTO_CERT_OWNER:-mosquitto}"
    sync "$tmp" 2>/dev/null || :
    mv -f "$tmp" "$target" || fail "cannot rename $tmp to $target"
    tmp=
}

installed=
if [ -n "${MOSQUITTO_CERT_DIR:-}" ]; then
    name=${CERTKEEPER_CERT_NAME:?CERTKEEPER_CERT_NAME is not set (run me as a certkeeper deploy hook)}
    fullchain=${CERTKEEPER_FULLCHAIN:?CERTKEEPER_FULLCHAIN is not set (run me as a certkeeper deploy hook)}
    privkey=${CERTKEEPER_PRIVKEY:?CERTKEEPER_PRIVKEY is not set (run me as a certkeeper deploy hook)}
    [ -r "$fullchain" ] || fail "cannot read $fullchain"
    [ -r "$privkey" ] || fail "cannot read $privkey"
    # Key first: between the two renames Mosquitto is not reloaded yet, so it never sees a mixed pair.
    install_atomically "$privkey" "$MOSQUITTO_CERT_DIR/$name.key" 600
    install_atomically "$fullchain" "$MOSQUITTO_CERT_DIR/$name.crt" 644
    installed=" after installing $MOSQUITTO_CERT_DIR/$name.crt and .key"
fi

case $method in
auto)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then method=systemd; else method=pidfile; fi
    ;;
systemd | pidfile) ;;
*) fail "MOSQUITTO_RELOAD_METHOD must be auto, systemd or pidfile, not '$method'" ;;
esac

if [ "$method" = systemd ]; then
    systemctl reload "$service" || fail "systemctl reload $service failed"
    echo "$me: reloaded $service via systemd$installed"
else
    [ -r "$pidfile" ] || fail "cannot read Mosquitto pid file $pidfile (set MOSQUITTO_PIDFILE)"
    pid=$(head -n 1 "$pidfile" | tr -d '[:space:]')
    case $pid in
    '' | *[!0-9]*) fail "pid file $pidfile does not start with a pid" ;;
    esac
    kill -HUP "$pid" 2>/dev/null || fail "cannot signal Mosquitto $pid from $pidfile"
    echo "$me: sent SIGHUP to Mosquitto $pid$installed"
fi
