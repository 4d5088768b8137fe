#!/usr/bin/env bash
# The project's single test command: bash tests/run.sh
#   1. installs the interoperability clients (tests/interop/setup.sh)
#   2. builds the workspace (release)
#   3. runs all tests (release), the interop tests being mandatory
#   4. builds the benchmarks without running them
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

t_all=$SECONDS
timings=()
step() {
    local name="$1"; shift
    local t0=$SECONDS
    echo "=== $name: $*"
    "$@"
    local dt=$((SECONDS - t0))
    timings+=("$(printf '%-22s %4d s' "$name" "$dt")")
    echo "=== $name: done in ${dt} s"
}
report() {
    local rc=$?
    echo "=== timings"
    local t
    for t in "${timings[@]}"; do echo "    $t"; done
    echo "    total                  $((SECONDS - t_all)) s ($([[ $rc -eq 0 ]] && echo ok || echo "FAILED, exit $rc"))"
}
trap report EXIT

step "interop setup" bash tests/interop/setup.sh
step "build (release)" cargo build --release --workspace
step "test (release)" cargo test --release --workspace
step "bench build" cargo bench --no-run --workspace
