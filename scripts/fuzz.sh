#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer): builds certkeeper-fuzz with `--sanitize=fuzzer -DFUZZING` into .build-fuzz,
# then runs each target on a copy of its seed corpus, Fuzz/corpus/<target>/ plus Fuzz/regressions/<target>/ (the
# repository's folders are never written to). Prints one line per target with its executions; exits 1 if any
# target crashed, timed out or ran out of memory, and keeps the input that did it under FUZZ_ARTIFACTS (default
# .build-fuzz/artifacts/<date>/<target>/), printed with the command that reproduces it.
#
# Each target runs FUZZ_SECONDS when that is set; otherwise the time left of FUZZ_BUDGET (the whole script,
# default 690 s) after the build, shared equally, at least 15 s and at most 45 s each.
#
#   bash scripts/fuzz.sh                      # every target
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh mqtt pem
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH=/opt/swift/usr/bin:$PATH
fi

FUZZ_BUDGET=${FUZZ_BUDGET:-690}
ARTIFACTS=${FUZZ_ARTIFACTS:-$PWD/.build-fuzz/artifacts/$(date -u +%Y%m%dT%H%M%SZ)}
BUILD=(swift build --scratch-path .build-fuzz --sanitize=fuzzer -Xswiftc -DFUZZING --product certkeeper-fuzz)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp"

started=$SECONDS
if ! "${BUILD[@]}" >"$work/build.log" 2>&1; then
  grep -E "error" "$work/build.log" | head -50
  tail -40 "$work/build.log"
  exit 1
fi
built=$((SECONDS - started))
binary="$("${BUILD[@]}" --show-bin-path)/certkeeper-fuzz"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for dir in Fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi
if [ -z "${FUZZ_SECONDS:-}" ]; then
  # 5 s a target for start-up, the corpus's first pass and the final merge of stats.
  FUZZ_SECONDS=$(( (FUZZ_BUDGET - built) / ${#targets[@]} - 5 ))
  [ "$FUZZ_SECONDS" -gt 45 ] && FUZZ_SECONDS=45
  [ "$FUZZ_SECONDS" -lt 15 ] && FUZZ_SECONDS=15
fi
echo "fuzz: built certkeeper-fuzz in $built s; ${#targets[@]} targets, $FUZZ_SECONDS s each"

# A real certificate and key for the pem target, made now (the committed seeds hold fake PEM only).
throwaway_bundle() {
  local dir="$work/throwaway"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=fuzz.invalid \
    -addext subjectAltName=DNS:fuzz.invalid -days 3650 -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || return 0
  { cat "$dir/cert.pem"; printf '\n\0\n'; cat "$dir/key.pem"; } >"$1/throwaway-bundle"
  cat "$dir/cert.pem" "$dir/key.pem" >"$1/throwaway-combined"
}

failed=()
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus" "$ARTIFACTS/$target"
  cp -R "Fuzz/corpus/$target/." "$corpus/"
  [ -d "Fuzz/regressions/$target" ] && cp -R "Fuzz/regressions/$target/." "$corpus/"
  if [ "$target" = pem ] && command -v openssl >/dev/null 2>&1; then throwaway_bundle "$corpus"; fi
  log="$work/$target.log"
  status=0
  # SWIFT_BACKTRACE: the Swift runtime's backtracer would take the crash signal from libFuzzer, which then writes no reproducer.
  CERTKEEPER_FUZZ_TARGET="$target" TMPDIR="$work/tmp" SWIFT_BACKTRACE=enable=no "$binary" \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/$target/" "$corpus" >"$log" 2>&1 || status=$?
  executions=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  coverage=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, features \2, corpus \3/p' <<<"$done_line")
  if [ "$status" -eq 0 ]; then
    echo "fuzz $target: ${executions:-?} executions in ${FUZZ_SECONDS} s (${coverage:-no stats}), no crash"
    rmdir "$ARTIFACTS/$target" 2>/dev/null || true
  else
    echo "fuzz $target: FAILED (exit $status) after ${executions:-?} executions"
    grep -E "invariant broken|ERROR: libFuzzer|==ERROR|Fatal error|SUMMARY|deadly signal|timeout|out-of-memory" "$log" | head -20 || true
    tail -30 "$log"
    for artifact in "$ARTIFACTS/$target"/*; do
      [ -e "$artifact" ] || continue
      echo "  reproducer: $artifact"
      echo "    again:    CERTKEEPER_FUZZ_TARGET=$target $binary $artifact"
      echo "    replay:   swift run certkeeper-fuzz $target $artifact   (then commit it into Fuzz/regressions/$target/)"
    done
    failed+=("$target")
  fi
done
rmdir "$ARTIFACTS" 2>/dev/null || true
echo "fuzz: ${#targets[@]} targets in $((SECONDS - started)) s"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; inputs kept under $ARTIFACTS"
  exit 1
fi
