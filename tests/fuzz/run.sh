#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600); exits non-zero on the
# first crash. New corpus entries go to corpus/<target>/ (ignored by git); the
# committed seeds in seeds/<target>/ are read but never written.
set -euo pipefail

SECONDS_EACH="${1:-600}"
FUZZ_DIR="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$FUZZ_DIR/../.." && pwd)"
TARGETS=(websocket_decoder rawsocket_decoder message_json message_msgpack message_cbor)

cd "$ROOT"
cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"
for t in "${TARGETS[@]}"; do
    mkdir -p "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/artifacts/$t"
    echo "== $t: ${SECONDS_EACH}s"
    nice -n 10 cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "$t" \
        "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 \
        -timeout=10 -print_final_stats=1
done
echo "all targets ran ${SECONDS_EACH}s without a crash"
