#!/usr/bin/env bash
# `make fuzz`: fuzzes the enforcer with cargo-fuzz (libFuzzer, nightly Rust),
# each target for FUZZ_SECONDS seconds (default 60). Installs the nightly
# toolchain and cargo-fuzz if missing. Exits non-zero if any target finds a
# crash; the crashing input is kept in enforcer/fuzz/artifacts/<target>/ and
# the whole libFuzzer output in enforcer/fuzz/target/fuzz-logs/<target>.log.
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh                  # longer
#   FUZZ_TARGETS="check_structured" ./scripts/fuzz.sh   # some targets only
# Reproduce a crash (from enforcer/fuzz):
#   ENFORCER_FUZZ_KEY=corpus/signing-key.pem cargo +nightly fuzz run --debug-assertions TARGET artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/../enforcer/fuzz"
seconds=${FUZZ_SECONDS:-60}
read -r -a targets <<<"${FUZZ_TARGETS:-token_parse check_request check_structured}"
# Debug assertions and overflow checks on: an overflow is a bug too.
flags=(--debug-assertions)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "installing the nightly toolchain (rustup)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "building the fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build "${flags[@]}"

mkdir -p corpus target/fuzz-logs
# The key the fixture's issuers trust: kept with the corpus so its signed tokens stay valid.
export ENFORCER_FUZZ_KEY="$PWD/corpus/signing-key.pem"
failed=()
summary=()
for t in "${targets[@]}"; do
  log="target/fuzz-logs/$t.log"
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzzing $t for ${seconds}s (log: enforcer/fuzz/$log)"
  status=0
  ENFORCER_FUZZ_SEEDS="$PWD/corpus/$t" cargo +nightly fuzz run "${flags[@]}" "$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "$log" | sed 's/^/  /' || true
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ "$status" -ne 0 ]; then
    echo "  $t FAILED (exit $status):"
    tail -n 60 "$log" | sed 's/^/  | /'
    failed+=("$t")
    summary+=("$t: FAILED after ${runs:-?} runs")
  else
    summary+=("$t: ok, ${runs:-?} runs in ${seconds}s (${rate:-?}/s)")
  fi
done

echo "fuzzing summary:"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in enforcer/fuzz/artifacts/)" >&2
  exit 1
fi
