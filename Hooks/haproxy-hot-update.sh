#!/bin/sh
# certkeeper deploy hook: replace a certificate in a running HAProxy over its admin socket, with no
# reload, so open connections (long MQTT sessions) are not handed to draining workers. Also rewrites
# the file on disk atomically, so the next reload or restart loads the same certificate.
#
# HAProxy must already have this certificate loaded under the same path (a `crt` file, or a file in a
# `crt` directory); a brand-new certificate needs one reload (haproxy-reload.sh) first. The socket needs
# `stats socket /run/haproxy/admin.sock mode 600 level admin` in the global section.
#
# Over the socket:   set ssl cert <path> <<        (then the PEM with blank lines removed, then an empty line)
#                    commit ssl cert <path>
# and `abort ssl cert <path>` when either reply is not the expected "Transaction created/updated" or "Success!".
# The file on disk is rewritten first, so when HAProxy cannot be reached (not running, socket missing) the next
# start or reload still loads the new certificate. When HAProxy answers but refuses the certificate (a path it
# does not know, a key that does not match), the previous file is put back (or the new one removed if there was
# none), so the file never holds a certificate that would make the next reload fail. HAPROXY_SOCKET must be a
# worker's stats socket, not the master CLI (which needs @<n> prefixes).
#
# Variables set by certkeeper:
#   CERTKEEPER_CERT_NAME  certificate name, used for the default HAProxy path
#   CERTKEEPER_BUNDLE     full chain followed by the private key, one PEM file (live/<name>/bundle.pem)
# Variables the operator may set (in certkeeper's hook environment):
#   HAPROXY_SOCKET        admin socket: a path (default /run/haproxy/admin.sock) or host:port for a TCP socket
#   HAPROXY_CERT_DIR      directory of HAProxy's certificate files
#   HAPROXY_CERT_PATH     the crt path exactly as HAProxy knows it (default $HAPROXY_CERT_DIR/$CERTKEEPER_CERT_NAME.pem;
#                         one of the two must be set)
#   HAPROXY_CERT_MODE     mode of the rewritten file (default 600: it holds the private key)
#   HAPROXY_CERT_OWNER    owner[:group] of the rewritten file (default: unchanged, i.e. the hook's user)
#   HAPROXY_SOCKET_TIMEOUT seconds to wait for each HAProxy reply (default 10)
#
# Before anything is written or sent, the bundle's key is checked against its first certificate with openssl,
# when openssl is installed: HAProxy 2.6 finds a mismatch only at commit, and that refused commit leaves an
# OpenSSL error on HAProxy's CLI thread which drops the next open TLS connection that thread reads from.
#
# Requires: socat (Debian/Ubuntu: apt install socat), dirname, mktemp, cp, ln, chmod, mv, rm, tr, grep, cut;
# openssl is used when installed (recommended, see above).
# Exits non-zero with a one-line message on any failure.
set -eu

me=haproxy-hot-update
fail() {
    echo "$me: $*" >&2
    exit 1
}

name=${CERTKEEPER_CERT_NAME:?CERTKEEPER_CERT_NAME is not set (run me as a certkeeper deploy hook)}
bundle=${CERTKEEPER_BUNDLE:?CERTKEEPER_BUNDLE is not set (run me as a certkeeper deploy hook)}
socket=${HAPROXY_SOCKET:-/run/haproxy/admin.sock}
wait_seconds=${HAPROXY_SOCKET_TIMEOUT:-10}
if [ -n "${HAPROXY_CERT_PATH:-}" ]; then
    cert_path=$HAPROXY_CERT_PATH
elif [ -n "${HAPROXY_CERT_DIR:-}" ]; then
    cert_path=$HAPROXY_CERT_DIR/$name.pem
else
    fail "set HAPROXY_CERT_PATH (the crt path HAProxy knows) or HAPROXY_CERT_DIR"
fi

command -v socat >/dev/null 2>&1 || fail "socat is required but not installed (apt install socat)"
case $socket in
/*) address=UNIX-CONNECT:$socket ;;
*:*) address=TCP:$socket ;;
*) fail "HAPROXY_SOCKET must be an absolute path or host:port, not '$socket'" ;;
esac
[ -r "$bundle" ] || fail "cannot read bundle $bundle"

# The CLI payload ends at the first empty line, so blank lines (and CRs) must go. The key stays in this
# shell: printf is a builtin, so it never appears on a command line.
payload=$(tr -d '\r' <"$bundle" | grep -v '^[[:space:]]*$') || fail "bundle $bundle is empty"
case $payload in
*"-----BEGIN CERTIFICATE-----"*"PRIVATE KEY-----"* | *"PRIVATE KEY-----"*"-----BEGIN CERTIFICATE-----"*) ;;
*) fail "bundle $bundle does not hold both a certificate and a private key" ;;
esac

if command -v openssl >/dev/null 2>&1; then
    certificate_key=$(openssl x509 -in "$bundle" -noout -pubkey 2>/dev/null </dev/null) ||
        fail "cannot read the first certificate in bundle $bundle"
    private_key=$(openssl pkey -in "$bundle" -pubout -passin pass: 2>/dev/null </dev/null) ||
        fail "cannot read the private key in bundle $bundle"
    [ "$certificate_key" = "$private_key" ] || fail "the private key in bundle $bundle does not match its first certificate"
fi

tmp=
previous=
cleanup() {
    if [ -n "$tmp" ]; then rm -f "$tmp"; fi
    if [ -n "$previous" ]; then rm -f "$previous"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# Copies $1 to $2 so that readers of $2 see the old file or the new one, never a partial one. Keeps the old
# file as $previous (a hard link, or a copy) for put_previous_back; previous stays empty when $2 did not exist.
install_atomically() {
    source_file=$1
    target=$2
    target_dir=$(dirname "$target")
    [ -d "$target_dir" ] || fail "certificate directory $target_dir does not exist"
    tmp=$(mktemp "$target_dir/.certkeeper.XXXXXX") || fail "cannot create a temporary file in $target_dir"
    if [ -e "$target" ]; then
        previous=$(mktemp "$target_dir/.certkeeper-previous.XXXXXX") || fail "cannot create a temporary file in $target_dir"
        ln -f "$target" "$previous" 2>/dev/null || cp -p "$target" "$previous" || fail "cannot keep a copy of $target"
    fi
    cp "$source_file" "$tmp" || fail "cannot copy $source_file to $target_dir"
    chmod "${HAPROXY_CERT_MODE:-600}" "$tmp" || fail "cannot chmod $tmp"
    if [ -n "${HAPROXY_CERT_OWNER:-}" ]; then
        chown "$HAPROXY_CERT_OWNER" "$tmp" || fail "cannot chown $tmp to $HAPROXY_CERT_OWNER"
    fi
    sync "$tmp" 2>/dev/null || :
    mv -f "$tmp" "$target" || fail "cannot rename $tmp to $target"
    tmp=
}

# Undoes install_atomically after HAProxy refused the certificate: the file goes back to what HAProxy runs with.
put_previous_back() {
    if [ -n "$previous" ]; then
        mv -f "$previous" "$cert_path" && previous= && return
        echo "$me: could not put the previous $cert_path back" >&2
    else
        rm -f "$cert_path"
    fi
}

# HAProxy could not be asked: the new file stays, for HAProxy's next start or reload.
unreachable() {
    fail "installed $cert_path, but could not reach HAProxy at $socket ($1); it loads the file at its next start or reload"
}

# HAProxy answered and refused: abort its transaction, restore the file, fail with HAProxy's reply.
refused() {
    abort_transaction
    put_previous_back
    fail "$1 (left $cert_path as it was)"
}

# Sends stdin as one CLI command and prints HAProxy's reply.
cli() {
    socat -t "$wait_seconds" -T "$wait_seconds" STDIO "$address" 2>&1
}

one_line() {
    if [ -z "$1" ]; then printf 'no reply'; return; fi
    printf '%s' "$1" | tr '\r\n' '  ' | cut -c 1-200
}

abort_transaction() {
    printf 'abort ssl cert %s\n' "$cert_path" | cli >/dev/null 2>&1 || :
}

install_atomically "$bundle" "$cert_path"

case $socket in
/*) [ -S "$socket" ] || unreachable "no socket there; set HAPROXY_SOCKET" ;;
esac

reply=$(printf 'set ssl cert %s <<\n%s\n\n' "$cert_path" "$payload" | cli) ||
    unreachable "set ssl cert: $(one_line "$reply")"
case $reply in
*"Transaction created"* | *"Transaction updated"*) ;;
*) refused "HAProxy refused set ssl cert $cert_path: $(one_line "$reply")" ;;
esac

reply=$(printf 'commit ssl cert %s\n' "$cert_path" | cli) || {
    abort_transaction
    unreachable "commit ssl cert: $(one_line "$reply")"
}
case $reply in
*"Success!"*) ;;
*) refused "HAProxy could not commit ssl cert $cert_path: $(one_line "$reply")" ;;
esac

echo "$me: updated $cert_path in HAProxy at $socket (no reload)"
