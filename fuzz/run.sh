#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for SECONDS (default 20).
# Fails if any target finds a crash, a panic, a timeout or an OOM; what it
# found is in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS]
#
# The build lives in fuzz/target (override with FUZZ_TARGET_DIR), so a warm
# run does not rebuild. New inputs the fuzzer finds go to
# fuzz/target/corpus/<target>/, next to the committed seeds in
# fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}

# cargo-fuzz passes nightly-only flags (-Z, sanitizer coverage); the only
# toolchain here is stable, which accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi

# Release with debug assertions and overflow checks. No sanitizer: our code
# forbids `unsafe`, and without ASan the build and each run are about twice
# as fast. 16 codegen units: a much faster build for a slightly slower run.
flags=(-O --debug-assertions --sanitizer none --codegen-units 16)
started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built in $(( $(date +%s) - started ))s"

# One run of `cargo fuzz run` on TARGET with libFuzzer's ARGS; the log
# goes to fuzz/target/TARGET.log.
fuzz_run() {
  local target=$1
  shift
  cargo fuzz run "${flags[@]}" "$target" \
    "$CARGO_TARGET_DIR/corpus/$target" "corpus/$target" -- \
    -timeout=10 -max_len=4096 -print_final_stats=1 "$@" \
    2>"$CARGO_TARGET_DIR/$target.log"
}

# agent_template: template fuel bounds time, not memory (fuzz/README.md).
# It runs in fork mode, where a child that runs out of memory is recorded
# and the run goes on; a crash or a timeout still stops it. Fork mode
# exits with the last child's code, so 71 (an out-of-memory) is a pass
# too. It also skips inputs of the corpus that crash, so the committed
# seeds are replayed first, in one process.
fuzz_templates() {
  local target=$1
  cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -runs=0 -timeout=10 -rss_limit_mb=512 2>"$CARGO_TARGET_DIR/$target.log" || return 1
  fuzz_run "$target" -max_total_time="$seconds" -rss_limit_mb=512 \
    -fork=1 -ignore_ooms=1 -ignore_timeouts=0 -ignore_crashes=0 && return 0
  grep -q '^INFO: exiting: 71 ' "$CARGO_TARGET_DIR/$target.log"
}

failed=()
for target in $(cargo fuzz list); do
  mkdir -p "$CARGO_TARGET_DIR/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  if [ "$target" = agent_template ]; then
    runner=(fuzz_templates "$target")
  else
    runner=(fuzz_run "$target" -max_total_time="$seconds" -rss_limit_mb=2048)
  fi
  if ! "${runner[@]}"; then
    tail -n 40 "$CARGO_TARGET_DIR/$target.log"
    failed+=("$target")
  else
    grep -E '^stat::(number_of_executed_units|new_units_added)|oom/timeout/crash' \
      "$CARGO_TARGET_DIR/$target.log" | tail -n 2 || true
  fi
done
echo "fuzz: done in $(( $(date +%s) - started ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
