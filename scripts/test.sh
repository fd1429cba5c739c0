#!/usr/bin/env bash
# Runs the whole test suite: unit, storage conformance, in-process API and
# end-to-end tests, on SQLite always and on PostgreSQL when one is reachable.
#
#   scripts/test.sh [extra nextest/cargo-test filter args]
#
# PostgreSQL: SECRETD_TEST_POSTGRES_URL names an admin URL (tests create and
# drop their own databases). If unset and a server answers on
# 127.0.0.1:5432, it is used. Set SECRETD_REQUIRE_SERVICES=1 to make a
# missing service fail the tests instead of skipping them (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SECRETD_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null \
    && pg_isready -h 127.0.0.1 -p 5432 -q; then
  export SECRETD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
fi
echo "PostgreSQL tests: ${SECRETD_TEST_POSTGRES_URL:-skipped (no server)}"

# One build of everything (binaries included) that every test below shares.
cargo build --workspace --all-targets --locked

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
cargo test --workspace --locked --doc
