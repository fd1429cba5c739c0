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

failed=()
for target in $(cargo fuzz list); do
  mkdir -p "$CARGO_TARGET_DIR/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  if ! cargo fuzz run "${flags[@]}" "$target" \
      "$CARGO_TARGET_DIR/corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 2>"$CARGO_TARGET_DIR/$target.log"; then
    tail -n 40 "$CARGO_TARGET_DIR/$target.log"
    failed+=("$target")
  else
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$CARGO_TARGET_DIR/$target.log" || true
  fi
done
echo "fuzz: done in $(( $(date +%s) - started ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
