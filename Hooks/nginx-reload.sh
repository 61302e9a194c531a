#!/bin/sh
# certkeeper deploy hook: test nginx's configuration, then reload nginx gracefully so new connections
# use the new certificate (point ssl_certificate at live/<name>/fullchain.pem and ssl_certificate_key at
# live/<name>/privkey.pem; nginx reads them as root when it reloads).
#
# Variables set by certkeeper: none are needed (CERTKEEPER_CERT_NAME is only used in messages).
# Variables the operator may set (in certkeeper's hook environment):
#   NGINX_BIN             the nginx binary (default nginx, found in PATH)
#   NGINX_CONF            configuration file to test and reload with (default: nginx's built-in path)
#   NGINX_RELOAD_METHOD   auto (default), systemd or signal; auto uses systemd when it is running
#   NGINX_SERVICE         systemd unit to reload (default nginx)
#
# Requires: nginx; systemctl when systemd manages nginx. Exits non-zero with a one-line message on
# failure (after nginx -t's own output, when the configuration test fails).
set -eu

me=nginx-reload
fail() {
    echo "$me: $*" >&2
    exit 1
}

nginx=${NGINX_BIN:-nginx}
method=${NGINX_RELOAD_METHOD:-auto}
service=${NGINX_SERVICE:-nginx}
what=${CERTKEEPER_CERT_NAME:+ for $CERTKEEPER_CERT_NAME}

command -v "$nginx" >/dev/null 2>&1 || fail "nginx binary '$nginx' not found (set NGINX_BIN)"

if [ -n "${NGINX_CONF:-}" ]; then
    set -- -c "$NGINX_CONF"
else
    set --
fi

if ! test_output=$("$nginx" -t -q "$@" 2>&1); then
    printf '%s\n' "$test_output" >&2
    fail "nginx -t failed, not reloading$what"
fi

case $method in
auto)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then method=systemd; else method=signal; fi
    ;;
systemd | signal) ;;
*) fail "NGINX_RELOAD_METHOD must be auto, systemd or signal, not '$method'" ;;
esac

if [ "$method" = systemd ]; then
    systemctl reload "$service" || fail "systemctl reload $service failed"
    echo "$me: reloaded $service via systemd$what"
else
    "$nginx" "$@" -s reload || fail "nginx -s reload failed"
    echo "$me: sent reload to nginx$what"
fi
