# Sourced by the quickstart scripts: `build_with_progress ARGS...` runs `swift build ARGS...` with its output in a
# log, prints where the build is (SwiftPM's "[done/total]" step) every 30 seconds, and on failure the log's end.
# The first build compiles every dependency and takes several minutes on a small machine.
build_with_progress() {
  local log status step started
  log=$(mktemp)
  started=$(date +%s)
  swift build "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null || break
    step=$(grep -o '^\[[0-9]*/[0-9]*\]' "$log" | tail -1 || true)
    echo "  still building: step ${step:-[resolving packages]} after $(( $(date +%s) - started )) s"
  done
  status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    rm -f "$log"
    return "$status"
  fi
  echo "  built in $(( $(date +%s) - started )) s"
  rm -f "$log"
}
