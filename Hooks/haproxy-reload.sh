#!/bin/sh
# certkeeper deploy hook: install the new certificate for HAProxy and reload HAProxy gracefully.
#
# A reload starts new workers and hands them the listening sockets; old workers keep their open
# connections until those close (long MQTT sessions can keep them alive for days). To swap the
# certificate with no reload at all, use haproxy-hot-update.sh instead.
#
# Variables set by certkeeper:
#   CERTKEEPER_CERT_NAME   certificate name; the HAProxy file is $HAPROXY_CERT_DIR/$CERTKEEPER_CERT_NAME.pem
#   CERTKEEPER_BUNDLE      full chain followed by the private key, one PEM file (live/<name>/bundle.pem)
# Variables the operator may set (in certkeeper's hook environment):
#   HAPROXY_CERT_DIR       if set, copy the bundle to $HAPROXY_CERT_DIR/$CERTKEEPER_CERT_NAME.pem first,
#                          atomically (copy to a temporary file in that directory, then rename)
#   HAPROXY_CERT_MODE      mode of the copied file (default 600: it holds the private key)
#   HAPROXY_CERT_OWNER     owner[:group] of the copied file (default: unchanged, i.e. the hook's user)
#   HAPROXY_RELOAD_METHOD  auto (default), systemd or pidfile; auto uses systemd when it is running
#   HAPROXY_SERVICE        systemd unit to reload (default haproxy)
#   HAPROXY_PIDFILE        pid file of the HAProxy master, used without systemd (default /run/haproxy.pid);
#                          its first line is the master pid, which reloads on SIGUSR2 (master-worker mode, -W)
#
# Requires: dirname, mktemp, cp, chmod, mv (with HAPROXY_CERT_DIR); systemctl, or head, tr and kill.
# Exits non-zero with a one-line message on failure.
set -eu

me=haproxy-reload
fail() {
    echo "$me: $*" >&2
    exit 1
}

cert_dir=${HAPROXY_CERT_DIR:-}
method=${HAPROXY_RELOAD_METHOD:-auto}
service=${HAPROXY_SERVICE:-haproxy}
pidfile=${HAPROXY_PIDFILE:-/run/haproxy.pid}

tmp=
cleanup() {
    if [ -n "$tmp" ]; then rm -f "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# Copies $1 to $2 so that readers of $2 see the old file or the new one, never a partial one.
install_atomically() {
    source_file=$1
    target=$2
    target_dir=$(dirname "$target")
    [ -d "$target_dir" ] || fail "certificate directory $target_dir does not exist"
    tmp=$(mktemp "$target_dir/.certkeeper.XXXXXX") || fail "cannot create a temporary file in $target_dir"
    cp "$source_file" "$tmp" || fail "cannot copy $source_file to $target_dir"
    chmod "${HAPROXY_CERT_MODE:-600}" "$tmp" || fail "cannot chmod $tmp"
    if [ -n "${HAPROXY_CERT_OWNER:-}" ]; then
        chown "$HAPROXY_CERT_OWNER" "$tmp" || fail "cannot chown $tmp to $HAPROXY_CERT_OWNER"
    fi
    sync "$tmp" 2>/dev/null || :
    mv -f "$tmp" "$target" || fail "cannot rename $tmp to $target"
    tmp=
}

systemd_running() {
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

if [ -n "$cert_dir" ]; then
    name=${CERTKEEPER_CERT_NAME:?CERTKEEPER_CERT_NAME is not set (run me as a certkeeper deploy hook)}
    bundle=${CERTKEEPER_BUNDLE:?CERTKEEPER_BUNDLE is not set (run me as a certkeeper deploy hook)}
    [ -r "$bundle" ] || fail "cannot read bundle $bundle"
    install_atomically "$bundle" "$cert_dir/$name.pem"
    installed=" after installing $cert_dir/$name.pem"
else
    installed=
fi

case $method in
auto)
    if systemd_running; then method=systemd; else method=pidfile; fi
    ;;
systemd | pidfile) ;;
*) fail "HAPROXY_RELOAD_METHOD must be auto, systemd or pidfile, not '$method'" ;;
esac

if [ "$method" = systemd ]; then
    systemctl reload "$service" || fail "systemctl reload $service failed"
    echo "$me: reloaded $service via systemd$installed"
else
    [ -r "$pidfile" ] || fail "cannot read HAProxy pid file $pidfile (set HAPROXY_PIDFILE)"
    pid=$(head -n 1 "$pidfile" | tr -d '[:space:]')
    case $pid in
    '' | *[!0-9]*) fail "pid file $pidfile does not start with a pid" ;;
    esac
    kill -USR2 "$pid" 2>/dev/null || fail "cannot signal HAProxy master $pid from $pidfile"
    echo "$me: sent SIGUSR2 to HAProxy master $pid$installed"
fi
