#!/usr/bin/env bash
# How wampd scales with shards: fanout and rpc at 1, 2, 4, 8, 16 shards, wampd pinned to the first N
# cores this process may use, wampload on all the remaining ones (--threads = their number). Shard
# counts the machine has no cores for (N router cores + at least MIN_LOAD_CORES for wampload) are
# skipped, and the report says so. Writes loadtest/results/scale-latest.md (markdown table) and
# loadtest/results/scale-latest.svg (chart); raw JSON in loadtest/results/scale-latest/.
#
#   bash loadtest/scale.sh
#
# Environment knobs (defaults in brackets):
#   SHARDS ["1 2 4 8 16"]   shard counts to try
#   DURATION [10]           seconds per run
#   SERIALIZER [msgpack]    over RawSocket
#   SUBSCRIBERS [1000]      fanout: subscribers of one topic; publishers = N (one per shard)
#   PAYLOAD [64]            bytes per EVENT / CALL
#   CALLERS_PER_SHARD [10] INFLIGHT [32]   rpc: 10 × N callers, 32 calls in flight each, N callees
#   MIN_LOAD_CORES [1]      cores wampload needs at least
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
SHARDS="${SHARDS:-1 2 4 8 16}"
DURATION="${DURATION:-10}"
SERIALIZER="${SERIALIZER:-msgpack}"
SUBSCRIBERS="${SUBSCRIBERS:-1000}"
PAYLOAD="${PAYLOAD:-64}"
CALLERS_PER_SHARD="${CALLERS_PER_SHARD:-10}"
INFLIGHT="${INFLIGHT:-32}"
MIN_LOAD_CORES="${MIN_LOAD_CORES:-1}"
out="$here/results/scale-latest"
rm -rf "$out"
mkdir -p "$out"

log() { echo "scale: $*" >&2; }

router_pgid=""
cleanup() {
    if [[ -n "$router_pgid" ]]; then
        kill -TERM -- "-$router_pgid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$router_pgid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$router_pgid" 2>/dev/null || true
        router_pgid=""
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cores this process may use, one per line ("0-3,8" → 0 1 2 3 8).
allowed_cpus() {
    local list part
    list="$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)"
    for part in ${list//,/ }; do
        if [[ "$part" == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done
}
mapfile -t cpus < <(allowed_cpus)
ncpu=${#cpus[@]}
join_cpus() { local IFS=,; echo "$*"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % 10000))
        if port_free "$p"; then echo "$p"; return; fi
    done
    log "no free port"; exit 1
}
wait_port() {
    for _ in $(seq 300); do
        if ! port_free "$1"; then return 0; fi
        sleep 0.1
    done
    log "wampd did not open port $1"; return 1
}

log "building wampd and wampload (release)"
(cd "$root" && cargo build --release -p wampd -p wampload >&2)
wampd="$CARGO_TARGET_DIR/release/wampd"
load="$CARGO_TARGET_DIR/release/wampload"

# Exit status 1 = the run reported losses or errors (they are in the table); go on.
L() { "$@" || log "wampload reported losses or errors"; }

run_shards() {
    local n="$1" router load_cpus threads port url
    router="$(join_cpus "${cpus[@]:0:n}")"
    load_cpus="$(join_cpus "${cpus[@]:n}")"
    threads=$((ncpu - n))
    port="$(pick_port)"
    log "$n shard(s) on cores $router; wampload --threads $threads on cores $load_cpus"
    setsid taskset -c "$router" "$wampd" --listen "127.0.0.1:$port" --shards "$n" --log-level warn \
        >"$out/wampd-$n.log" 2>&1 &
    router_pgid=$!
    wait_port "$port"
    url="rs://127.0.0.1:$port"
    L taskset -c "$load_cpus" "$load" fanout --url "$url" --serializer "$SERIALIZER" --threads "$threads" \
        --publishers "$n" --subscribers "$SUBSCRIBERS" --topics 1 --payload "$PAYLOAD" \
        --duration "$DURATION" --json "$out/fanout-$n.json" >&2
    L taskset -c "$load_cpus" "$load" rpc --url "$url" --serializer "$SERIALIZER" --threads "$threads" \
        --callers $((CALLERS_PER_SHARD * n)) --inflight "$INFLIGHT" --callees "$n" --payload "$PAYLOAD" \
        --duration "$DURATION" --json "$out/rpc-$n.json" >&2
    cleanup
}

ran=() skipped=()
for n in $SHARDS; do
    if (( n + MIN_LOAD_CORES > ncpu )); then
        log "skipping $n shard(s): needs $n router core(s) + $MIN_LOAD_CORES for wampload, this machine allows $ncpu"
        skipped+=("$n")
        continue
    fi
    run_shards "$n"
    ran+=("$n")
done
if (( ${#ran[@]} == 0 )); then
    log "no shard count fits on $ncpu core(s)"; exit 1
fi

setup="Run of \`loadtest/scale.sh\` ($(date +%F), $DURATION s per run, $ncpu cores allowed: $(join_cpus "${cpus[@]}")). \
wampd with N shards pinned to the first N cores, wampload on the other $ncpu − N with \`--threads\` = their number. \
fanout: N publishers → 1 topic → $SUBSCRIBERS subscribers, $PAYLOAD B, RawSocket $SERIALIZER, closed loop; \
rpc: $CALLERS_PER_SHARD × N callers × $INFLIGHT in flight → N callees, $PAYLOAD B. \
A wampload CPU near 100 % × threads means the generator, not the router, was the limit."
notes=(--note "$setup")
if (( ${#skipped[@]} > 0 )); then
    notes+=(--note "Skipped: ${skipped[*]} shards (N shards need N + $MIN_LOAD_CORES cores; this machine allows $ncpu).")
fi
"$load" scale-report --dir "$out" --md "$here/results/scale-latest.md" --svg "$here/results/scale-latest.svg" "${notes[@]}"
