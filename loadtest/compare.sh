#!/usr/bin/env bash
# Side by side: the same wampload scenarios against wampd (one shard, and two shards so that the
# cross-shard mesh carries the load), and Crossbar.io, one router at a time, router pinned to its
# core(s), load generator pinned to another. Prints one markdown table and writes it to
# loadtest/results/compare-latest.md (raw JSON results go next to it, in
# loadtest/results/compare-latest/).
#
# Environment knobs (defaults in brackets):
#   DURATION [10]        seconds per fanout/rpc run
#   SESSIONS [10000]     sessions for the connect scenario
#   CONNECT_RATE [4000]  session openings per second offered
#   HOLD [5]             seconds the idle sessions are held
#   SWEEP [1]            also run the fanout sweep (0 to skip)
#   P99_US [50000]       p99 bound of the sweep, µs
#   ROUTER_CPU [0] LOAD_CPU [1]   cores for the router and for wampload
#   ROUTER_CPUS2 [0,2 with 3+ cores, else 0]   cores for `wampd --shards 2` (with one core, both
#                        shards share it: the same CPU budget as one shard, plus the mesh's cost)
#   CROSSBAR_DIR [loadtest/crossbar]  where setup.sh / run.sh live
#   ONLY [wampd wampd2 crossbar] routers to run (wampd2 = wampd --shards 2); the table shows only
#                        the routers run this time
#   NAME [compare-latest]  results go to loadtest/results/NAME.md and loadtest/results/NAME/
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cbdir="${CROSSBAR_DIR:-$here/crossbar}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
DURATION="${DURATION:-10}"
SESSIONS="${SESSIONS:-10000}"
CONNECT_RATE="${CONNECT_RATE:-4000}"
HOLD="${HOLD:-5}"
SWEEP="${SWEEP:-1}"
P99_US="${P99_US:-50000}"
ROUTER_CPU="${ROUTER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
if [[ "$(nproc)" -ge 3 ]]; then ROUTER_CPUS2="${ROUTER_CPUS2:-0,2}"; else ROUTER_CPUS2="${ROUTER_CPUS2:-$ROUTER_CPU}"; fi
ONLY="${ONLY:-wampd wampd2 crossbar}"
NAME="${NAME:-compare-latest}"
out="$here/results/$NAME"
mkdir -p "$out"

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

log() { echo "compare: $*" >&2; }

if [[ " $ONLY " == *" crossbar "* ]]; then
    log "installing Crossbar.io (if needed)"
    "$cbdir/setup.sh" >&2
fi
log "building wampd and wampload (release)"
(cd "$root" && cargo build --release -p wampd -p wampload >&2)
wampd="$CARGO_TARGET_DIR/release/wampd"
load="$CARGO_TARGET_DIR/release/wampload"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % 10000))
        if port_free "$p"; then echo "$p"; return; fi
    done
    echo "compare: no free port" >&2; exit 1
}
wait_port() {
    for _ in $(seq 1200); do
        if ! port_free "$1"; then return 0; fi
        sleep 0.1
    done
    echo "compare: router did not open port $1" >&2; return 1
}

# The process whose memory counts: wampd itself, or Crossbar's router worker.
router_pid() {
    local name="$1" pid="$2"
    if [[ "$name" == wampd* ]]; then echo "$pid"; return; fi
    local best="" rss=0 p r
    for p in $(pgrep -g "$router_pgid"); do
        r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        if ps -o args= -p "$p" | grep -q -i 'router' && [[ "${r:-0}" -gt "$rss" ]]; then best=$p; rss=$r; fi
    done
    echo "${best:-$pid}"
}

start_router() {
    local name="$1" port="$2"
    if [[ "$name" == wampd ]]; then
        setsid taskset -c "$ROUTER_CPU" "$wampd" --listen "127.0.0.1:$port" --shards 1 >"$out/$name.log" 2>&1 &
    elif [[ "$name" == wampd2 ]]; then
        setsid taskset -c "$ROUTER_CPUS2" "$wampd" --listen "127.0.0.1:$port" --shards 2 >"$out/$name.log" 2>&1 &
    else
        setsid taskset -c "$ROUTER_CPU" "$cbdir/run.sh" "$port" >"$out/$name.log" 2>&1 &
    fi
    router_pgid=$!
    disown "$router_pgid" 2>/dev/null || true
    wait_port "$port"
    sleep 1
}

# Exit status 1 = the run reported losses or errors (they are in the table); go on.
L() { taskset -c "$LOAD_CPU" "$load" "$@" --threads 1 || log "wampload $1 reported losses or errors"; }

run_router() {
    local name="$1" port rs ws rpid
    # Results of an earlier run must not end up in this run's table.
    rm -f "$out/$name"-*.json "$out/$name"-*.svg
    port="$(pick_port)"
    log "starting $name on port $port"
    start_router "$name" "$port"
    rs="rs://127.0.0.1:$port"
    ws="ws://127.0.0.1:$port/ws"
    rpid="$(router_pid "$name" "$router_pgid")"
    log "$name: fanout rs msgpack"
    L fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --json "$out/$name-fanout-rs.json" >&2
    log "$name: fanout rs msgpack, count-only reader (ceiling reference)"
    L fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --reader count --json "$out/$name-fanout-rs-count.json" >&2
    log "$name: fanout ws json"
    L fanout --url "$ws" --serializer json --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --json "$out/$name-fanout-ws.json" >&2
    log "$name: rpc"
    L rpc --url "$rs" --serializer msgpack --callers 10 --inflight 32 --callees 1 --payload 64 \
        --duration "$DURATION" --json "$out/$name-rpc.json" >&2
    if [[ "$SWEEP" == 1 ]]; then
        log "$name: fanout sweep"
        L sweep fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
            --p99-us "$P99_US" --start 20 --factor 1.5 --step-secs 5 --max-steps 16 \
            --json "$out/$name-sweep.json" --plot "$out/$name-sweep.svg" >&2
    fi
    # Last, on a fresh router: memory per idle session.
    cleanup
    port="$(pick_port)"
    start_router "$name" "$port"
    rpid="$(router_pid "$name" "$router_pgid")"
    log "$name: connect $SESSIONS sessions (router pid $rpid)"
    L connect --url "rs://127.0.0.1:$port" --serializer msgpack --sessions "$SESSIONS" --rate "$CONNECT_RATE" \
        --hold "$HOLD" --router-pid "$rpid" --json "$out/$name-connect.json" >&2
    cleanup
}

for r in $ONLY; do
    run_router "$r"
done

python3 - "$out" "$P99_US" "$DURATION" "$ROUTER_CPU" "$ROUTER_CPUS2" "$LOAD_CPU" "$ONLY" <<'PY' | tee "$here/results/$NAME.md"
import json, os, sys, datetime
out, bound, dur, cpu1, cpus2, load_cpu, only = sys.argv[1:8]
ran = only.split()
def get(router, name, *path):
    if router not in ran:
        return None
    try:
        with open(os.path.join(out, f"{router}-{name}.json")) as f:
            v = json.load(f)
        for p in path:
            v = v[p]
        return v
    except Exception:
        return None
def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = round(v, 1) if v < 100 else round(v)
    return f"{v:,}".replace(",", " ") + unit
rows = [
    ("fanout 1→1000, 1 topic, 64 B, rs msgpack: deliveries/s", "fanout-rs", ("deliveries_per_sec",), True),
    ("  same: p99 latency µs (closed loop)", "fanout-rs", ("latency_us", "p99"), False),
    ("  same, count-only reader (ceiling reference, nothing checked): deliveries/s", "fanout-rs-count", ("deliveries_per_sec",), True),
    ("fanout 1→1000, 1 topic, 64 B, ws json: deliveries/s", "fanout-ws", ("deliveries_per_sec",), True),
    ("  same: p99 latency µs (closed loop)", "fanout-ws", ("latency_us", "p99"), False),
    ("rpc 10 callers × 32 in flight → 1 callee, 64 B, rs msgpack: calls/s", "rpc", ("calls_per_sec",), True),
    ("  same: p99 latency µs", "rpc", ("latency_us", "p99"), False),
    ("connect: sessions/s opened", "connect", ("sessions_per_sec",), True),
    ("connect: router RSS KiB per idle session", "connect", ("rss_kib_per_session",), False),
    (f"sweep fanout rs msgpack: max sustainable deliveries/s (p99 ≤ {bound} µs, no loss)", "sweep", ("max_sustainable_per_sec",), True),
    ("  sweep: p99 µs at half that rate (open loop)", "sweep", ("half_max", "p99_us"), False),
]
print(f"Results of `loadtest/compare.sh` ({datetime.date.today()}, {dur} s runs; wampload `--threads 1` on core {load_cpu}; "
      f"wampd 1 shard on core {cpu1}, wampd 2 shards on core(s) {cpus2}, Crossbar on core {cpu1}).\n")
print("| scenario | wampd 1 shard | wampd 2 shards | Crossbar | ratio wampd 1 shard/Crossbar |")
print("|---|---:|---:|---:|---:|")
for label, name, path, higher in rows:
    a, a2, b = (get(r, name, *path) for r in ("wampd", "wampd2", "crossbar"))
    ratio = "–"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        ratio = f"{a / b:.2f}×" + ("" if higher else " (lower is better)")
    print(f"| {label} | {fmt(a)} | {fmt(a2)} | {fmt(b)} | {ratio} |")
print()
print("Sanity (lost / errors / wampload's own CPU % of its core):\n")
print("| run | wampd 1 shard | wampd 2 shards | Crossbar |")
print("|---|---|---|---|")
for name in ["fanout-rs", "fanout-rs-count", "fanout-ws", "rpc", "connect"]:
    cells = []
    for r in ["wampd", "wampd2", "crossbar"]:
        lost, err, cpu = get(r, name, "lost"), get(r, name, "errors"), get(r, name, "wampload_cpu_percent")
        cells.append("–" if lost is None else f"lost {lost}, errors {err}" + ("" if cpu is None else f", cpu {cpu}%"))
    print(f"| {name} | {' | '.join(cells)} |")
PY
