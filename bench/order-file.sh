#!/usr/bin/env bash
# Regenerates bench/certkeeper.order: the functions certkeeper runs when it starts, loads a certificate
# and proxies TLS connections, which release builds place next to each other (lld --symbol-ordering-file, see
# Package.swift). Without it those few thousand functions (about 1.7 MB of code) are spread over the 30 MB text of
# the static executable, and the kernel's fault-around maps 64 KiB around each one: about 18 MiB of resident code
# at start instead of about 9 MiB (README, "Idle memory, measured").
# A stale file only costs memory: functions it does not name are placed after the ordered ones, names it holds
# that no longer exist are ignored. Regenerate after larger changes to the proxy or to the dependencies.
# How: a release build runs under valgrind's callgrind (which records every function executed, not a sample) while
# curl, openssl s_client and a few idle clients use `certkeeper proxy`, a bundle is swapped, and SIGTERM drains it;
# `certkeeper check-config` on the example configuration adds the configuration code.
# Usage: bench/order-file.sh [path/to/certkeeper]   (default: the static release build in .build-static)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib/build.sh
source "$ROOT/bench/lib/build.sh"
BIN=$(static_release_binary "${1:-}")
missing=()
for tool in valgrind curl openssl python3 objcopy; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind curl openssl python3 binutils >/dev/null
fi

WORK=$(mktemp -d /tmp/certkeeper-order.XXXXXX)
STARTED=()
# shellcheck source=bench/lib/process.sh
source "$ROOT/bench/lib/process.sh"
cleanup() { [ ${#STARTED[@]} -gt 0 ] && stop "${STARTED[@]}"; rm -rf "$WORK"; }
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local port
  for _ in $(seq 1 50); do port=$((30000 + RANDOM % 30000)); port_open "$port" || { echo "$port"; return 0; }; done
  echo "no free port found" >&2; exit 1
}
BACKEND_PORT=$(free_port); PROXY_PORT=$(free_port)
[ "$BACKEND_PORT" != "$PROXY_PORT" ] || { echo "port clash, run again" >&2; exit 1; }

# valgrind 3.19 cannot read clang's DWARF 5 debug sections; the symbol table is all this needs.
objcopy --strip-debug "$BIN" "$WORK/certkeeper"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" -days 2 \
  -subj /CN=order.example.org -addext subjectAltName=DNS:order.example.org,DNS:*.order.example.org \
  -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/bundle.pem"
mkdir -p "$WORK/www" && echo ok > "$WORK/www/index.html"
python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
STARTED+=($!)

CALLGRIND=(valgrind --tool=callgrind --demangle=no "--callgrind-out-file=$WORK/callgrind.%p")
"${CALLGRIND[@]}" "$WORK/certkeeper" check-config --config "$ROOT/Config/certkeeper.example.yaml" >/dev/null 2>&1 || true
"${CALLGRIND[@]}" "$WORK/certkeeper" proxy --listen "127.0.0.1:$PROXY_PORT" --cert "$WORK/bundle.pem" \
  --to "127.0.0.1:$BACKEND_PORT" --threads 1 --grace 1 --log-level warning >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
STARTED+=("$PROXY_PID")
url="https://127.0.0.1:$PROXY_PORT/"
for _ in $(seq 1 120); do curl -sk -o /dev/null "$url" && break; sleep 1; done
curl -sk -o /dev/null "$url" || { echo "certkeeper proxy did not answer under valgrind: $(tail -3 "$WORK/proxy.log")" >&2; exit 1; }
for _ in $(seq 1 20); do curl -sk -o /dev/null --resolve "order.example.org:$PROXY_PORT:127.0.0.1" "https://order.example.org:$PROXY_PORT/"; done
for version in -tls1_2 -tls1_3; do
  printf 'GET / HTTP/1.0\r\n\r\n' | timeout 30 openssl s_client -connect "127.0.0.1:$PROXY_PORT" "$version" \
    -servername a.order.example.org -quiet >/dev/null 2>&1 || true
done
timeout 60 python3 "$ROOT/bench/idle_tls_clients.py" "$PROXY_PORT" 50 --hold 2 --server-name order.example.org >/dev/null || true
cp "$WORK/bundle.pem" "$WORK/bundle.new" && mv "$WORK/bundle.new" "$WORK/bundle.pem"   # a hot swap
sleep 3
curl -sk -o /dev/null "$url" || true
stop "$PROXY_PID"   # valgrind itself: SIGTERM drains the proxy, then callgrind writes its file

# Every function of the executable that ran, in the order callgrind first names them (mangled):
# The proxy's functions first (what `certkeeper proxy` and the daemon's proxy run), then check-config's others.
python3 - "$WORK" "$ROOT/bench/certkeeper.order" "$WORK/callgrind.$PROXY_PID" <<'EOF'
import glob, re, sys
work, out, first = sys.argv[1], sys.argv[2], sys.argv[3]
definition = re.compile(r'^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$')
names = {}
for path in [first] + sorted(set(glob.glob(work + '/callgrind.*')) - {first}):
    objects, functions, current = {}, {}, None
    for line in open(path, errors='replace'):
        match = definition.match(line.rstrip('\n'))
        if not match:
            continue
        kind, number, name = match.groups()
        if kind in ('ob', 'cob'):
            if name:
                objects[number] = name
            if kind == 'ob':
                current = objects.get(number, '')
        else:
            if name:
                functions[number] = name
            if kind == 'fn' and current.endswith('/certkeeper') and number in functions:
                names.setdefault(functions[number], None)
if len(names) < 1000:
    sys.exit(f'only {len(names)} functions recorded; the proxy run under callgrind did not work')
with open(out, 'w') as file:
    file.write('\n'.join(names) + '\n')
print(f'{out}: {len(names)} functions')
EOF
