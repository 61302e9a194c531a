#!/usr/bin/env bash
# Proxy benchmarks for issue #3: certkeeper's TLS-terminating TCP proxy against HAProxy, side by side.
# Same ECDSA P-256 certificate (leaf + intermediate), same nginx backend (plain HTTP), same load generator
# (wrk), one proxy thread each (HAProxy `nbthread 1`, `certkeeper proxy --threads 1`), both in `mode tcp`.
#   1. new TLS connections per second, one request per connection (wrk -H 'Connection: close')
#   2. keep-alive throughput of 16 KiB responses
#   3. p99 latency at the same offered load: keep-alive `/`, each wrk connection pauses CONNS*1000/LAT_RATE ms
#      after every response (a wrk Lua delay()), which caps the offered load near LAT_RATE req/s for both.
#      wrk stays closed-loop (a stalled response delays the next request, so p99 understates queueing:
#      coordinated omission); the unpaced, saturated p99 is printed too. The paced run is repeated LAT_ROUNDS times,
#      alternating the proxies, and the median round is compared (one 10-second run swings with the shared machine)
#   4. resident memory (VmRSS) of the proxy process holding $IDLE idle TLS connections (bench/idle_tls_clients.py)
#   5. $SWAPS certificate swaps (rename over the bundle) under Connection: close load, counting wrk's errors;
#      for HAProxy, $SWAPS master-worker reloads (SIGUSR2 to the master) after renaming its bundle
# CPU placement: both proxies on core $PROXY_CPU; wrk, nginx and the idle client on core $LOAD_CPU.
# Tests alternate HAProxy and certkeeper run by run so background load on a shared machine hits both alike.
# Prints a table with ratios (certkeeper / HAProxy); not a test: nothing here asserts timings.
# Usage: bench/proxy.sh [path/to/certkeeper]   (default: builds release with --static-swift-stdlib into .build-static)
#   env: DURATION=10 CONNS=32 LAT_RATE=5000 LAT_ROUNDS=3 IDLE=5000 SWAPS=100 SWAP_INTERVAL=0.1 PROXY_CPU=0 LOAD_CPU=1 KEEP_WORK=1 (keep the work dir)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib/build.sh
source "$ROOT/bench/lib/build.sh"
BIN=$(static_release_binary "${1:-}")
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
LAT_RATE=${LAT_RATE:-5000}
LAT_ROUNDS=${LAT_ROUNDS:-3}
LAT_DELAY_MS=$(( CONNS * 1000 / LAT_RATE > 0 ? CONNS * 1000 / LAT_RATE : 1 ))
IDLE=${IDLE:-5000}
SWAPS=${SWAPS:-100}
SWAP_INTERVAL=${SWAP_INTERVAL:-0.1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
[ "$(nproc)" -ge 2 ] || { PROXY_CPU=0; LOAD_CPU=0; }

missing=()
for package in haproxy nginx-light wrk; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; fi

# Each idle connection costs the proxy two descriptors (client + backend) and nginx one.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((IDLE * 2 + 200)) ] || { echo "ulimit -n $(ulimit -n) is too low for IDLE=$IDLE" >&2; exit 1; }
# HAProxy wants 2 descriptors per maxconn plus a few and refuses to start without them (strict-limits).
HAP_MAXCONN=$(( $(ulimit -n) >= 20100 ? 10000 : ($(ulimit -n) - 100) / 2 ))

WORK=$(mktemp -d /tmp/certkeeper-proxybench.XXXXXX)
STARTED=()   # pids of long-running processes this script started
# shellcheck source=bench/lib/process.sh
source "$ROOT/bench/lib/process.sh"   # stop PID...
cleanup() {
  local workers=()
  [ -n "${HAP_MASTER:-}" ] && mapfile -t workers < <(pgrep -P "$HAP_MASTER" || true)
  [ ${#STARTED[@]} -gt 0 ] && stop "${STARTED[@]}"
  [ ${#workers[@]} -gt 0 ] && stop "${workers[@]}"
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK (wrk outputs, logs)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT NAME LOG
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  echo "$2 did not listen on 127.0.0.1:$1: $(tail -3 "$3")" >&2; exit 1
}
free_port() { # a free high port, at most 50 tries
  local port
  for _ in $(seq 1 50); do port=$((30000 + RANDOM % 30000)); port_open "$port" || { echo "$port"; return 0; }; done
  echo "no free port found" >&2; exit 1
}
NGINX_PORT=$(free_port); HAP_PORT=$(free_port); CK_PORT=$(free_port)
[ "$NGINX_PORT" != "$HAP_PORT" ] && [ "$HAP_PORT" != "$CK_PORT" ] && [ "$NGINX_PORT" != "$CK_PORT" ] || { echo "port clash, run again" >&2; exit 1; }

# Certificates: P-256 root -> intermediate -> two leaves for bench.example.org (the swap alternates them).
# Bundles are HAProxy's format, which certkeeper reads too: leaf, intermediate, key.
mkdir -p "$WORK/pki" "$WORK/ck" "$WORK/hap" "$WORK/www" "$WORK/nginx"
(
  cd "$WORK/pki"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key root.key
  openssl req -x509 -new -key root.key -subj "/CN=certkeeper bench root" -days 2 -out root.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  key int.key
  openssl req -new -key int.key -subj "/CN=certkeeper bench intermediate" -out int.csr 2>/dev/null
  printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > int.ext
  openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -set_serial 2 -days 2 -extfile int.ext -out int.pem 2>/dev/null
  printf 'subjectAltName=DNS:bench.example.org\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > leaf.ext
  for i in 1 2; do
    key "leaf$i.key"
    openssl req -new -key "leaf$i.key" -subj "/CN=bench.example.org" -out "leaf$i.csr" 2>/dev/null
    openssl x509 -req -in "leaf$i.csr" -CA int.pem -CAkey int.key -set_serial "1$i" -days 2 -extfile leaf.ext -out "leaf$i.pem" 2>/dev/null
    cat "leaf$i.pem" int.pem "leaf$i.key" > "bundle$i.pem"
  done
)
cp "$WORK/pki/bundle1.pem" "$WORK/ck/bundle.pem"
cp "$WORK/pki/bundle1.pem" "$WORK/hap/bundle.pem"

# Backend: nginx, one worker, plain HTTP, `/` is 3 bytes and `/16k` is 16 KiB (readable by nginx's unprivileged worker).
chmod 755 "$WORK" "$WORK/www"
printf 'ok\n' > "$WORK/www/index.html"
head -c 16384 /dev/zero | tr '\0' 'x' > "$WORK/www/16k"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $((IDLE * 2 + 1000));
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $((IDLE * 2 + 500)); }
http {
  access_log off;
  keepalive_requests 100000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    location / { index index.html; }
  }
}
EOF
taskset -c "$LOAD_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx/out.log" 2>&1 &
STARTED+=($!)
wait_port "$NGINX_PORT" nginx "$WORK/nginx/out.log"

# HAProxy: master-worker (-W) so that SIGUSR2 to the master reloads; the worker is the master's child.
cat > "$WORK/hap/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $HAP_MAXCONN
defaults
  mode tcp
  maxconn $HAP_MAXCONN
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend f
  bind 127.0.0.1:$HAP_PORT ssl crt $WORK/hap/bundle.pem
  default_backend b
backend b
  server s1 127.0.0.1:$NGINX_PORT
EOF
taskset -c "$PROXY_CPU" haproxy -W -S "$WORK/hap/master.sock" -f "$WORK/hap/haproxy.cfg" >"$WORK/hap/out.log" 2>&1 &
HAP_MASTER=$!
STARTED+=("$HAP_MASTER")
wait_port "$HAP_PORT" haproxy "$WORK/hap/out.log"
hap_worker() { pgrep -P "$HAP_MASTER" -n haproxy; }

taskset -c "$PROXY_CPU" "$BIN" proxy --listen "127.0.0.1:$CK_PORT" --cert "$WORK/ck/bundle.pem" \
  --to "127.0.0.1:$NGINX_PORT" --threads 1 --grace 5 --log-level warning >"$WORK/ck/out.log" 2>&1 &
CK_PID=$!
STARTED+=("$CK_PID")
wait_port "$CK_PORT" certkeeper "$WORK/ck/out.log"

# What each side negotiates with a default OpenSSL client (for the header line).
tls_info() { # tls_info PORT -> "TLSv1.3 TLS_AES_256_GCM_SHA384"
  echo | timeout 20 openssl s_client -connect "127.0.0.1:$1" -servername bench.example.org 2>/dev/null |
    awk '/^New, / { gsub(/,/, ""); print $2, $NF; exit }' || true
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo -; }   # utime + stime of the whole process, in clock ticks
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
TICK=$(getconf CLK_TCK)
core_stat() { awk -v p="cpu$PROXY_CPU" -v l="cpu$LOAD_CPU" '$1==p || $1==l { t=0; for (i=2; i<=NF; i++) t+=$i; printf "%s %d %d ", $1, t - $5 - $6, t }' /proc/stat; }
core_busy() { # core_busy "SNAPSHOT0" "SNAPSHOT1" -> "P% / L%" busy share of the proxy core and the load core (all processes)
  awk -v a="$1" -v b="$2" -v p="cpu$PROXY_CPU" -v l="cpu$LOAD_CPU" 'BEGIN { n=split(a, x, " "); split(b, y, " ");
    for (i=1; i<=n; i+=3) { u[x[i]] = (y[i+2]-x[i+2]) ? 100*(y[i+1]-x[i+1])/(y[i+2]-x[i+2]) : 0 }
    printf "%d%% / %d%%", u[p], u[l] }'
}

# run_wrk NAME PORT PATH PROXY_PID [wrk options...]: writes $WORK/NAME.wrk and $WORK/NAME.cpu (proxy CPU seconds)
run_wrk() {
  local name=$1 port=$2 path=$3 pid=$4; shift 4
  local c0 s0; c0=$(cpu_ticks "$pid"); s0=$(core_stat)
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "https://127.0.0.1:$port$path" >"$WORK/$name.wrk" 2>&1 || true
  local c1; c1=$(cpu_ticks "$pid")
  core_busy "$s0" "$(core_stat)" > "$WORK/$name.busy"
  if [ "$c0" = - ] || [ "$c1" = - ]; then echo - > "$WORK/$name.cpu"; else echo "scale=3; ($c1 - $c0) / $TICK" | bc > "$WORK/$name.cpu"; fi
}
rps() { awk '/^Requests\/sec:/ {print $2}' "$WORK/$1.wrk"; }
requests() { awk '/ requests in / {print $1}' "$WORK/$1.wrk"; }
mib_s() { # Transfer/sec in MiB/s (wrk uses powers of 1024)
  awk '/^Transfer\/sec:/ { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v);
    f = (u=="GB") ? 1024 : (u=="MB") ? 1 : (u=="KB") ? 1/1024 : 1/1048576; printf "%.1f", v*f }' "$WORK/$1.wrk"
}
p99_ms() { pct_ms 99% "$1"; }
p50_ms() { pct_ms 50% "$1"; }
pct_ms() { # pct_ms 99% NAME
  awk -v p="$1" '$1==p { v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    f = (u=="s") ? 1000 : (u=="ms") ? 1 : (u=="us") ? 0.001 : 60000; printf "%.2f", v*f }' "$WORK/$2.wrk"
}
errors() { # socket errors (connect/read/write/timeout) + non-2xx/3xx responses
  awk '/Socket errors:/ { gsub(/,/, ""); s += $4 + $6 + $8 + $10 } /Non-2xx or 3xx/ { s += $NF } END { print s + 0 }' "$WORK/$1.wrk"
}
cpu_us_per_req() { local c; c=$(cat "$WORK/$1.cpu"); [ "$c" = - ] && { echo -; return; }; echo "scale=1; $c * 1000000 / $(requests "$1")" | bc; }
show_errors() { grep -E 'Socket errors|Non-2xx' "$WORK/$1.wrk" | sed "s/^/  $1: /" >&2 || true; }

echo "certkeeper $("$BIN" --version 2>/dev/null || echo '?'), $(haproxy -v | head -1 | awk '{print $1, $3}'), nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); ports haproxy $HAP_PORT, certkeeper $CK_PORT, nginx $NGINX_PORT" >&2
HAP_TLS=$(tls_info "$HAP_PORT"); CK_TLS=$(tls_info "$CK_PORT")

# Warm-up (first connections, page cache, allocator growth), then the measured runs, alternating.
DURATION=2 run_wrk warm-hap "$HAP_PORT" / "$(hap_worker)"
DURATION=2 run_wrk warm-ck "$CK_PORT" / "$CK_PID"
echo "1/5 new connections" >&2
run_wrk cps-hap "$HAP_PORT" / "$(hap_worker)" -H 'Connection: close'
run_wrk cps-ck "$CK_PORT" / "$CK_PID" -H 'Connection: close'
echo "2/5 keep-alive 16 KiB" >&2
run_wrk ka16-hap "$HAP_PORT" /16k "$(hap_worker)"
run_wrk ka16-ck "$CK_PORT" /16k "$CK_PID"
echo "3/5 latency" >&2
echo "function delay() return $LAT_DELAY_MS end" > "$WORK/pace.lua"
for round in $(seq 1 "$LAT_ROUNDS"); do
  run_wrk "lat-hap-$round" "$HAP_PORT" / "$(hap_worker)" -s "$WORK/pace.lua"
  run_wrk "lat-ck-$round" "$CK_PORT" / "$CK_PID" -s "$WORK/pace.lua"
done
run_wrk sat-hap "$HAP_PORT" / "$(hap_worker)"
run_wrk sat-ck "$CK_PORT" / "$CK_PID"

# 4. Idle connections: RSS before and while $IDLE handshaken connections are held; backend connections counted.
backend_conns() { ss -Htn state established "( sport = :$NGINX_PORT )" 2>/dev/null | wc -l; }
idle_test() { # idle_test NAME PORT PID -> writes NAME.idle: "rss_before_kb rss_kb opened backend_conns"
  local name=$1 port=$2 pid=$3 before client opened=0
  sleep 1; before=$(rss_kb "$pid")
  taskset -c "$LOAD_CPU" python3 "$ROOT/bench/idle_tls_clients.py" "$port" "$IDLE" --hold 240 >"$WORK/$name.idle-out" 2>"$WORK/$name.idle-err" &
  client=$!; STARTED+=("$client")
  for _ in $(seq 1 1200); do grep -q '^open' "$WORK/$name.idle-out" && break; kill -0 "$client" 2>/dev/null || break; sleep 0.2; done
  opened=$(awk '/^open/ {print $2}' "$WORK/$name.idle-out"); opened=${opened:-0}
  sleep 3   # let the proxy finish its backend connects and settle
  echo "$before $(rss_kb "$pid") $opened $(backend_conns)" > "$WORK/$name.idle"
  grep -v '^open' "$WORK/$name.idle-out" "$WORK/$name.idle-err" | head -3 >&2 || true
  stop "$client"
  sleep 2
}
echo "4/5 $IDLE idle TLS connections" >&2
idle_test idle-hap "$HAP_PORT" "$(hap_worker)"
idle_test idle-ck "$CK_PORT" "$CK_PID"

# 5. Certificate swaps under Connection: close load. Rename a fresh bundle over the file $SWAPS times,
# alternating leaves; for HAProxy each rename is followed by a reload of the master (SIGUSR2).
hap_reloads() { # the master's reload counter from `show proc` on the master socket
  python3 - "$WORK/hap/master.sock" <<'EOF' 2>/dev/null || echo "?"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); s.sendall(b"show proc\n"); s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(65536): data += chunk
for line in data.decode().splitlines():
    f = line.split()
    if len(f) > 2 and f[1] == "master":
        failed = line.split("failed:")[1].split("]")[0].strip() if "failed:" in line else "?"
        print(f"{f[2]} ({failed} failed)"); break
EOF
}
swap_run() { # swap_run NAME PORT DIR reload(yes|no)
  local name=$1 port=$2 dir=$3 reload=$4 load i before
  # wrk runs until interrupted (SIGINT makes it print its totals), at most 600 s.
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d600s -H 'Connection: close' "https://127.0.0.1:$port/" >"$WORK/$name.wrk" 2>&1 &
  load=$!
  sleep 1
  for i in $(seq 1 "$SWAPS"); do
    cp "$WORK/pki/bundle$((i % 2 + 1)).pem" "$dir/bundle.pem.new"
    mv -f "$dir/bundle.pem.new" "$dir/bundle.pem"
    if [ "$reload" = yes ]; then
      # The master coalesces signals that arrive while it re-executes: wait (at most 10 s) for each reload.
      before=$(hap_reloads | cut -d' ' -f1)
      kill -USR2 "$HAP_MASTER"
      for _ in $(seq 1 200); do [ "$(hap_reloads | cut -d' ' -f1)" != "$before" ] && break; sleep 0.05; done
    fi
    sleep "$SWAP_INTERVAL"
  done
  sleep 1
  kill -INT "$load" 2>/dev/null || true
  wait "$load" || true
}
echo "5/5 $SWAPS swaps under load" >&2
swap_run swap-hap "$HAP_PORT" "$WORK/hap" yes
sleep 2
HAP_RELOADS=$(hap_reloads)
swap_run swap-ck "$CK_PORT" "$WORK/ck" no
sleep 1
CK_SERVED=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$CK_PORT" -servername bench.example.org 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2)
CK_EXPECTED=$(openssl x509 -noout -serial -in "$WORK/pki/bundle$((SWAPS % 2 + 1)).pem" | cut -d= -f2)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
show_errors swap-hap; show_errors swap-ck; show_errors cps-ck; show_errors ka16-ck; show_errors lat-ck-1
grep -iE 'error|warn' "$WORK/ck/out.log" | sort | uniq -c | sort -rn | head -5 >&2 || true

# Table.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
met() { # met RATIO_TEXT OP LIMIT
  awk -v r="${1%x}" -v op="$2" -v l="$3" 'BEGIN { if (r == "-") { print "?"; exit } ok = (op == ">=") ? r >= l : r <= l; print ok ? "yes" : "NO" }'
}
read -r hap_rss0 hap_rss hap_open hap_back < "$WORK/idle-hap.idle"
read -r ck_rss0 ck_rss ck_open ck_back < "$WORK/idle-ck.idle"
# The paced rounds: the median round's figures, and the range over the rounds.
rounds() { local f=$1 name=$2 round; for round in $(seq 1 "$LAT_ROUNDS"); do "$f" "$name-$round"; echo; done; }
median() { rounds "$1" "$2" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
spread() { rounds "$1" "$2" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR > 1) printf "%s-%s", v[1], v[NR]; else print v[1] }'; }
busy_of_median() { # the busy shares of the round whose p99 is the median
  local name=$1 m round; m=$(median p99_ms "$name")
  for round in $(seq 1 "$LAT_ROUNDS"); do [ "$(p99_ms "$name-$round")" = "$m" ] && { cat "$WORK/$name-$round.busy"; return; }; done
}
row() { printf '| %-52s | %14s | %14s | %7s | %-9s | %-4s |\n' "$@"; }
echo
echo "proxy.sh $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); proxies on core $PROXY_CPU, wrk+nginx on core $LOAD_CPU"
echo "HAProxy maxconn $HAP_MAXCONN (ulimit -n $(ulimit -n)); wrk -t1 -c$CONNS -d${DURATION}s; certkeeper TLS: $CK_TLS; HAProxy TLS: $HAP_TLS"
echo
row measurement certkeeper HAProxy ratio target met
row ':---' '---:' '---:' '---:' ':---' ':---'
r=$(ratio "$(rps cps-ck)" "$(rps cps-hap)")
row "new TLS connections/s (1 request each)" "$(rps cps-ck)" "$(rps cps-hap)" "$r" ">= 2x" "$(met "$r" '>=' 2)"
row "  proxy CPU per connection (us)" "$(cpu_us_per_req cps-ck)" "$(cpu_us_per_req cps-hap)" "$(ratio "$(cpu_us_per_req cps-ck)" "$(cpu_us_per_req cps-hap)")" "" ""
row "  busy: proxy core / wrk+nginx core" "$(cat "$WORK/cps-ck.busy")" "$(cat "$WORK/cps-hap.busy")" "" "" ""
r=$(ratio "$(mib_s ka16-ck)" "$(mib_s ka16-hap)")
row "keep-alive 16 KiB responses (MiB/s)" "$(mib_s ka16-ck)" "$(mib_s ka16-hap)" "$r" ">= 1x" "$(met "$r" '>=' 1)"
row "  requests/s" "$(rps ka16-ck)" "$(rps ka16-hap)" "$(ratio "$(rps ka16-ck)" "$(rps ka16-hap)")" "" ""
row "  proxy CPU per response (us)" "$(cpu_us_per_req ka16-ck)" "$(cpu_us_per_req ka16-hap)" "$(ratio "$(cpu_us_per_req ka16-ck)" "$(cpu_us_per_req ka16-hap)")" "" ""
row "  busy: proxy core / wrk+nginx core" "$(cat "$WORK/ka16-ck.busy")" "$(cat "$WORK/ka16-hap.busy")" "" "" ""
r=$(ratio "$(median p99_ms lat-ck)" "$(median p99_ms lat-hap)")
row "p99 latency, keep-alive /, ~$((CONNS * 1000 / LAT_DELAY_MS)) req/s offered (ms)" "$(median p99_ms lat-ck)" "$(median p99_ms lat-hap)" "$r" "<= 1x" "$(met "$r" '<=' 1)"
row "  p99 over the $LAT_ROUNDS rounds (ms)" "$(spread p99_ms lat-ck)" "$(spread p99_ms lat-hap)" "" "" ""
row "  p50, median round (ms)" "$(median p50_ms lat-ck)" "$(median p50_ms lat-hap)" "$(ratio "$(median p50_ms lat-ck)" "$(median p50_ms lat-hap)")" "" ""
row "  achieved requests/s, median round" "$(median rps lat-ck)" "$(median rps lat-hap)" "$(ratio "$(median rps lat-ck)" "$(median rps lat-hap)")" "" ""
row "  busy: proxy core / wrk+nginx core" "$(busy_of_median lat-ck)" "$(busy_of_median lat-hap)" "" "" ""
row "keep-alive /, unpaced (saturated): requests/s" "$(rps sat-ck)" "$(rps sat-hap)" "$(ratio "$(rps sat-ck)" "$(rps sat-hap)")" "" ""
row "  p99 at saturation (ms)" "$(p99_ms sat-ck)" "$(p99_ms sat-hap)" "$(ratio "$(p99_ms sat-ck)" "$(p99_ms sat-hap)")" "" ""
row "  proxy CPU per response (us)" "$(cpu_us_per_req sat-ck)" "$(cpu_us_per_req sat-hap)" "$(ratio "$(cpu_us_per_req sat-ck)" "$(cpu_us_per_req sat-hap)")" "" ""
row "  busy: proxy core / wrk+nginx core" "$(cat "$WORK/sat-ck.busy")" "$(cat "$WORK/sat-hap.busy")" "" "" ""
row "  p99 of the new-connection run (ms)" "$(p99_ms cps-ck)" "$(p99_ms cps-hap)" "$(ratio "$(p99_ms cps-ck)" "$(p99_ms cps-hap)")" "" ""
r=$(ratio "$ck_rss" "$hap_rss")
row "RSS with $IDLE idle TLS connections (MiB)" "$((ck_rss / 1024))" "$((hap_rss / 1024))" "$r" "<= 1.5x" "$(met "$r" '<=' 1.5)"
row "  RSS before (MiB)" "$((ck_rss0 / 1024))" "$((hap_rss0 / 1024))" "$(ratio "$ck_rss0" "$hap_rss0")" "" ""
row "  per idle connection (KiB)" "$(( (ck_rss - ck_rss0) / (ck_open > 0 ? ck_open : 1) ))" "$(( (hap_rss - hap_rss0) / (hap_open > 0 ? hap_open : 1) ))" "" "" ""
row "  connections open / backend connections" "$ck_open / $ck_back" "$hap_open / $hap_back" "" "" ""
ck_err=$(errors swap-ck); hap_err=$(errors swap-hap)
row "errors during $SWAPS swaps (HAProxy: reloads)" "$ck_err" "$hap_err" "" "0 (ck)" "$([ "$ck_err" = 0 ] && echo yes || echo NO)"
row "  requests during the swap run / seconds" "$(requests swap-ck) / $(awk '/ requests in / {print $4}' "$WORK/swap-ck.wrk" | tr -d ,)" "$(requests swap-hap) / $(awk '/ requests in / {print $4}' "$WORK/swap-hap.wrk" | tr -d ,)" "" "" ""
row "  serves the last bundle / reloads done" "$([ -n "$CK_SERVED" ] && [ "$CK_SERVED" = "$CK_EXPECTED" ] && echo yes || echo "no ($CK_SERVED)")" "$HAP_RELOADS" "" "" ""
echo
echo "ratio = certkeeper / HAProxy; busy = share of the core used by all processes (the machine may be shared)."
echo "wrk is closed-loop: the paced run caps the offered load with a fixed pause per connection, but a slow response"
echo "still delays the next request (coordinated omission); the unpaced p99 compares saturation at equal concurrency."
echo "The paced figures are the median of $LAT_ROUNDS alternating rounds per proxy (each round's p99 in the next row)."
