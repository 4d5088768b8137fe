#!/usr/bin/env bash
# Records a CPU profile of wampd under a wampload scenario and renders it as a flame graph.
#
#   bash flamegraphs/record.sh fanout-rs-msgpack|fanout-ws-json|rpc [SECONDS]
#
# wampd runs with one shard pinned to core 0, wampload on core 1 (as in loadtest/compare.sh).
# Both are built with frame pointers (in target/flame) so that `perf record -g` gets whole stacks.
# Needs `perf`; installs the inferno flame graph tools into target/tools if they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scenario="${1:?usage: record.sh fanout-rs-msgpack|fanout-ws-json|rpc [SECONDS]}"
secs="${2:-10}"
port=$((10000 + RANDOM % 9000))
out="flamegraphs/${scenario}.svg"

export CARGO_TARGET_DIR="$PWD/target/flame"
RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -p wampd -p wampload >/dev/null
bin="$CARGO_TARGET_DIR/release"

inferno_bin="$PWD/target/tools/bin"
if ! command -v inferno-flamegraph >/dev/null && [ ! -x "$inferno_bin/inferno-flamegraph" ]; then
    cargo install inferno --root "$PWD/target/tools" >/dev/null
fi
export PATH="$inferno_bin:$PATH"

case "$scenario" in
    fanout-rs-msgpack) load=(fanout --url "rs://127.0.0.1:$port" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 --duration "$secs") ;;
    fanout-ws-json)    load=(fanout --url "ws://127.0.0.1:$port/ws" --serializer json --publishers 1 --subscribers 1000 --topics 1 --payload 64 --duration "$secs") ;;
    rpc)               load=(rpc --url "rs://127.0.0.1:$port" --serializer msgpack --callers 10 --inflight 32 --callees 1 --payload 64 --duration "$secs") ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
router_pid=""
cleanup() {
    [ -n "$router_pid" ] && kill "$router_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

taskset -c 0 "$bin/wampd" --listen "127.0.0.1:$port" --shards 1 --log-level warn >"$tmp/router.log" 2>&1 &
router_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/router.log" && break; sleep 0.1; done

# Profile the router for the load's duration (plus the set-up), sampling at 999 Hz.
perf record -F 999 -g -p "$router_pid" -o "$tmp/perf.data" -- sleep "$((secs + 3))" >/dev/null 2>&1 &
perf_pid=$!
taskset -c 1 "$bin/wampload" "${load[@]}" --threads 1 --json "$tmp/result.json" | tee "$tmp/load.txt"
wait "$perf_pid" || true

perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf > "$tmp/folded.txt"
inferno-flamegraph --title "wampd: $scenario (1 shard)" < "$tmp/folded.txt" > "$out"
# Keep the folded stacks too: they diff well and are what the notes quote.
cp "$tmp/folded.txt" "flamegraphs/${scenario}.folded"
echo "wrote $out"
