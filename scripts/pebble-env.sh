# Sourced by the quickstart and the benchmarks: starts Debian's Pebble and pebble-challtestsrv on loopback
# with a throwaway CA for Pebble's own TLS, and stops them on exit.
# Needs: WORK (a scratch directory). Sets: ACME_DIR_URL, ACME_CA_BUNDLE, HTTP01_PORT, CHALL_MGMT, PEBBLE_MGMT.
# Honours PEBBLE_WFE_NONCEREJECT / PEBBLE_AUTHZREUSE from the environment (defaults 0 / 50).

PEBBLE_PIDS=()
pebble_stop() { for p in "${PEBBLE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait "${PEBBLE_PIDS[@]}" 2>/dev/null || true; }

pebble_start() {
  local base=$((30000 + RANDOM % 2000 * 10))
  local acme=$base mgmt=$((base+1)) http01=$((base+2)) tls01=$((base+3)) dns=$((base+4)) cmgmt=$((base+5)) p
  for p in $acme $mgmt $http01 $tls01 $dns $cmgmt; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is busy; run again" >&2; return 1; fi
  done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 2 -subj /CN=pebble-tls-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/pebble.key" -out "$WORK/pebble.csr" -subj /CN=localhost 2>/dev/null
  printf "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$WORK/pebble.ext"
  openssl x509 -req -in "$WORK/pebble.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -out "$WORK/pebble.pem" -days 2 -extfile "$WORK/pebble.ext" 2>/dev/null
  cat > "$WORK/pebble.json" <<JSON
{"pebble":{"listenAddress":"127.0.0.1:$acme","managementListenAddress":"127.0.0.1:$mgmt","certificate":"$WORK/pebble.pem","privateKey":"$WORK/pebble.key","httpPort":$http01,"tlsPort":$tls01,"ocspResponderURL":"","externalAccountBindingRequired":false}}
JSON
  pebble-challtestsrv -http01 "" -https01 "" -tlsalpn01 "" -dns01 127.0.0.1:$dns -management 127.0.0.1:$cmgmt \
    -defaultIPv4 127.0.0.1 -defaultIPv6 "" >"$WORK/challtestsrv.log" 2>&1 &
  PEBBLE_PIDS+=($!)
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=${PEBBLE_WFE_NONCEREJECT:-0} PEBBLE_AUTHZREUSE=${PEBBLE_AUTHZREUSE:-50} \
    pebble -config "$WORK/pebble.json" -dnsserver 127.0.0.1:$dns >"$WORK/pebble.log" 2>&1 &
  PEBBLE_PIDS+=($!)
  for _ in $(seq 1 100); do
    curl -sf --cacert "$WORK/ca.pem" "https://127.0.0.1:$acme/dir" >/dev/null && break
    sleep 0.1
  done
  ACME_DIR_URL="https://127.0.0.1:$acme/dir"
  ACME_CA_BUNDLE="$WORK/ca.pem"
  HTTP01_PORT=$http01
  CHALL_MGMT="http://127.0.0.1:$cmgmt"
  PEBBLE_MGMT="https://127.0.0.1:$mgmt"
  curl -sf --cacert "$WORK/ca.pem" "$ACME_DIR_URL" >/dev/null || { echo "Pebble did not start: $(tail -3 "$WORK/pebble.log")" >&2; return 1; }
}
