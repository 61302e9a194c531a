#!/usr/bin/env bash
# Renewal benchmarks for issue #2, against Debian's Pebble on loopback.
#   1. one issuance (fresh account + http-01 + finalize + download), certkeeper vs lego and certbot if installed
#   2. 100 certificates in one `renew` run (bounded concurrency)
#   3. a `renew` run with nothing due over 100 certificates
# Prints a table with ratios; figures go into the README. Not a test: nothing here asserts timings.
# Usage: bench/renewal.sh [path/to/certkeeper]   (default: builds release)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-}
if [ -z "$BIN" ]; then
  swift build -c release --product certkeeper >/dev/null
  BIN=$ROOT/.build/release/certkeeper
fi
RUNS=${RUNS:-5}
WORK=$(mktemp -d /tmp/certkeeper-bench.XXXXXX)
cleanup() { pebble_stop; rm -rf "$WORK"; }
trap cleanup EXIT

. "$ROOT/scripts/pebble-env.sh"
pebble_start

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

config() { # config NAME COUNT CONCURRENCY
  local dir=$WORK/$1; mkdir -p "$dir"
  { echo "state_dir: $dir/state"
    echo "acme: {directory: '$ACME_DIR_URL', email: bench@example.org, ca_bundle: '$ACME_CA_BUNDLE'}"
    echo "renew: {http01_listen: '127.0.0.1:$HTTP01_PORT', concurrency: $3, random_sleep: 0}"
    echo "certificates:"
    for i in $(seq 1 "$2"); do echo "  - {name: c$i, domains: [c$i.$1.example.org]}"; done
  } > "$dir/certkeeper.yaml"
  echo "$dir/certkeeper.yaml"
}

# 1. One issuance, fresh state each time (includes account registration, like a first lego/certbot run).
ck_one=()
for r in $(seq 1 "$RUNS"); do
  cfg=$(config one$r 1 1)
  t0=$(now); "$BIN" force-renew --config "$cfg" --all >"$WORK/one$r.out" 2>&1 || { echo "certkeeper failed: $(tail -2 "$WORK/one$r.out")" >&2; exit 1; }; t1=$(now)
  ck_one+=("$(echo "$t1 - $t0" | bc)")
done
ck_one_med=$(printf '%s\n' "${ck_one[@]}" | median)

lego_med=""; certbot_med=""
if command -v lego >/dev/null; then
  t=()
  for r in $(seq 1 "$RUNS"); do
    d=$WORK/lego$r; mkdir -p "$d"
    t0=$(now)
    LEGO_CA_CERTIFICATES=$ACME_CA_BUNDLE lego --server "$ACME_DIR_URL" --path "$d" --email bench@example.org \
      --accept-tos --domains "l$r.lego.example.org" --http --http.port "127.0.0.1:$HTTP01_PORT" run >"$d/log" 2>&1 || { echo "lego failed: $(tail -1 "$d/log")" >&2; }
    t1=$(now); t+=("$(echo "$t1 - $t0" | bc)")
  done
  lego_med=$(printf '%s\n' "${t[@]}" | median | xargs printf '%.2f')
fi
if command -v certbot >/dev/null; then
  t=()
  for r in $(seq 1 "$RUNS"); do
    d=$WORK/certbot$r; mkdir -p "$d"
    t0=$(now)
    REQUESTS_CA_BUNDLE=$ACME_CA_BUNDLE certbot certonly --non-interactive --standalone --http-01-address 127.0.0.1 --http-01-port "$HTTP01_PORT" \
      --server "$ACME_DIR_URL" --agree-tos -m bench@example.org -d "b$r.certbot.example.org" \
      --config-dir "$d/etc" --work-dir "$d/work" --logs-dir "$d/logs" --no-random-sleep-on-renew >"$d/log" 2>&1 || { echo "certbot failed: $(tail -1 "$d/log")" >&2; }
    t1=$(now); t+=("$(echo "$t1 - $t0" | bc)")
  done
  certbot_med=$(printf '%s\n' "${t[@]}" | median | xargs printf '%.2f')
fi

# 2. 100 certificates in one run.
cfg100=$(config hundred 100 ${CONCURRENCY:-8})
t0=$(now); "$BIN" renew --config "$cfg100" --no-random-sleep >"$WORK/hundred.out" 2>"$WORK/hundred.err" || true; t1=$(now)
hundred=$(echo "$t1 - $t0" | bc)
renewed=$(grep -c ": renewed" "$WORK/hundred.out" || true)
grep FAILED "$WORK/hundred.out" | head -3 >&2 || true

# 3. Nothing due over the same 100 certificates.
nd=()
for r in $(seq 1 $((RUNS * 4))); do
  t0=$(now); "$BIN" renew --config "$cfg100" --no-random-sleep >/dev/null 2>&1 || true; t1=$(now)
  nd+=("$(echo "($t1 - $t0) * 1000" | bc)")
done
nothing_ms=$(printf '%s\n' "${nd[@]}" | median)

ratio() { [ -n "$2" ] && echo "scale=1; $2 / $1" | bc || echo "-"; }
printf '\n%-44s %12s %12s %12s %10s\n' "measurement ($(date -u +%F), $(nproc) cores)" "certkeeper" "peer" "peer/ck" "target"
printf '%-44s %11.2fs %12s %12s %10s\n' "one issuance, Pebble VA_NOSLEEP (median of $RUNS)" "$ck_one_med" "${lego_med:+lego ${lego_med}s}" "$(ratio "$ck_one_med" "$lego_med")x" "< 1 s"
printf '%-44s %11.2fs %12s %12s %10s\n' "" "$ck_one_med" "${certbot_med:+certbot ${certbot_med}s}" "$(ratio "$ck_one_med" "$certbot_med")x" ""
printf '%-44s %11.2fs %12s %12s %10s\n' "100 certificates in one renew run ($renewed renewed)" "$hundred" "-" "-" "< 20 s"
printf '%-44s %10.0fms %12s %12s %10s\n' "renew with nothing due, 100 certs (median)" "$nothing_ms" "-" "-" "< 100 ms"
