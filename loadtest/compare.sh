#!/usr/bin/env bash
# Side by side: the same wampload scenarios against wampd (one shard, and two shards so that the
# cross-shard mesh carries the load; one shard with 20 permission rules; one shard over TLS), and
# Crossbar.io, one router at a time, router pinned to its core(s), load generator pinned to another.
# Prints one markdown table and writes it to loadtest/results/compare-latest.md (raw JSON results go
# next to it, in loadtest/results/compare-latest/).
#
# Routers (ONLY):
#   wampd        wampd --shards 1
#   wampd2       wampd --shards 2
#   wampd-rules  wampd --shards 1 --config loadtest/rules20.toml: wampload's anonymous sessions get a
#                role of 20 permissions (exact, prefix, wildcard) whose most specific one for each
#                URI of the load allows it, so every PUBLISH, SUBSCRIBE, CALL, REGISTER is decided
#   wampd-tls    wampd --shards 1 with a TLS listener (certificates made here with openssl, in a
#                temporary folder removed at exit); the load runs over rss:// and wss://
#   crossbar     Crossbar.io (loadtest/crossbar)
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
#   ONLY [wampd wampd2 wampd-rules wampd-tls crossbar] routers to run; the table shows only the
#                        routers run this time, and each one's ratio to `wampd` (1 shard)
#   ROUNDS [1]           run every router this many times, alternating (wampd, wampd-rules, …,
#                        wampd, wampd-rules, …); the table shows medians, results go to NAME/roundK/
#   CONNECT [1]          also run the connect scenario (0 to skip)
#   NAME [compare-latest]  results go to loadtest/results/NAME.md and loadtest/results/NAME/
#   REPORT_ONLY [0]      1: run nothing, print the table again from NAME's results (same ONLY, ROUNDS)
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
ONLY="${ONLY:-wampd wampd2 wampd-rules wampd-tls crossbar}"
ROUNDS="${ROUNDS:-1}"
CONNECT="${CONNECT:-1}"
NAME="${NAME:-compare-latest}"
REPORT_ONLY="${REPORT_ONLY:-0}"
out="$here/results/$NAME"
mkdir -p "$out"
if [[ "$REPORT_ONLY" != 1 ]]; then rm -rf "$out"/round[0-9]*; fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/wampd-compare.XXXXXX")"

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
finish() {
    cleanup
    rm -rf "$tmp"
}
trap finish EXIT
trap 'exit 130' INT TERM

log() { echo "compare: $*" >&2; }

if [[ "$REPORT_ONLY" == 1 ]]; then ONLY_RUN=""; else ONLY_RUN="$ONLY"; fi
if [[ " $ONLY_RUN " == *" crossbar "* ]]; then
    log "installing Crossbar.io (if needed)"
    "$cbdir/setup.sh" >&2
fi
# A CA and a server certificate for 127.0.0.1, for wampd-tls only (EC P-256, valid 2 days).
make_certs() {
    local d="$tmp/tls"
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=compare.sh CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/san.ext" -out "$d/server.crt" 2>/dev/null
}
if [[ " $ONLY_RUN " == *" wampd-tls "* ]]; then
    log "making a CA and a server certificate in $tmp/tls"
    make_certs
fi

if [[ -n "$ONLY_RUN" ]]; then
    log "building wampd and wampload (release)"
    (cd "$root" && cargo build --release -p wampd -p wampload >&2)
fi
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
    elif [[ "$name" == wampd-rules ]]; then
        setsid taskset -c "$ROUTER_CPU" "$wampd" --config "$here/rules20.toml" --listen "127.0.0.1:$port" \
            --shards 1 >"$out/$name.log" 2>&1 &
    elif [[ "$name" == wampd-tls ]]; then
        setsid taskset -c "$ROUTER_CPU" "$wampd" --tls-listen "127.0.0.1:$port" --tls-cert "$tmp/tls/server.crt" \
            --tls-key "$tmp/tls/server.key" --shards 1 >"$out/$name.log" 2>&1 &
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

# Exit status 1 = the run reported losses or errors (they are in the table); go on. The TLS flag
# (wampd-tls) goes with every run.
tls_args=()
L() {
    taskset -c "$LOAD_CPU" "$load" "$@" --threads 1 ${tls_args[@]+"${tls_args[@]}"} ||
        log "wampload $1 reported losses or errors"
}

run_router() {
    local name="$1" out="$2" port rs ws rpid s=""
    # Results of an earlier run must not end up in this run's table.
    mkdir -p "$out"
    rm -f "$out/$name"-*.json "$out/$name"-*.svg
    tls_args=()
    if [[ "$name" == wampd-tls ]]; then
        s=s
        tls_args=(--ca "$tmp/tls/ca.crt")
    fi
    port="$(pick_port)"
    log "starting $name on port $port"
    start_router "$name" "$port"
    rs="rs$s://127.0.0.1:$port"
    ws="ws$s://127.0.0.1:$port/ws"
    rpid="$(router_pid "$name" "$router_pgid")"
    log "$name: fanout $rs msgpack"
    L fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --router-pid "$rpid" --json "$out/$name-fanout-rs.json" >&2
    log "$name: fanout rs msgpack, count-only reader (ceiling reference)"
    L fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --reader count --json "$out/$name-fanout-rs-count.json" >&2
    log "$name: fanout $ws json"
    L fanout --url "$ws" --serializer json --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
        --duration "$DURATION" --router-pid "$rpid" --json "$out/$name-fanout-ws.json" >&2
    log "$name: rpc"
    L rpc --url "$rs" --serializer msgpack --callers 10 --inflight 32 --callees 1 --payload 64 \
        --duration "$DURATION" --router-pid "$rpid" --json "$out/$name-rpc.json" >&2
    if [[ "$SWEEP" == 1 ]]; then
        log "$name: fanout sweep"
        L sweep fanout --url "$rs" --serializer msgpack --publishers 1 --subscribers 1000 --topics 1 --payload 64 \
            --p99-us "$P99_US" --start 20 --factor 1.5 --step-secs 5 --max-steps 16 \
            --json "$out/$name-sweep.json" --plot "$out/$name-sweep.svg" >&2
    fi
    cleanup
    if [[ "$CONNECT" == 1 ]]; then run_connect "$name" "$out" "$s"; fi
}

# On a fresh router: memory per idle session.
run_connect() {
    local name="$1" out="$2" s="$3" port rpid
    port="$(pick_port)"
    start_router "$name" "$port"
    rpid="$(router_pid "$name" "$router_pgid")"
    log "$name: connect $SESSIONS sessions (router pid $rpid)"
    L connect --url "rs$s://127.0.0.1:$port" --serializer msgpack --sessions "$SESSIONS" --rate "$CONNECT_RATE" \
        --hold "$HOLD" --router-pid "$rpid" --json "$out/$name-connect.json" >&2
    cleanup
}

if [[ -n "$ONLY_RUN" ]]; then cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-before"; fi
for round in $(seq "$ROUNDS"); do
    for r in $ONLY_RUN; do
        if [[ "$ROUNDS" == 1 ]]; then
            run_router "$r" "$out"
        else
            log "round $round of $ROUNDS"
            run_router "$r" "$out/round$round"
        fi
    done
done
if [[ -n "$ONLY_RUN" ]]; then cut -d' ' -f1-3 /proc/loadavg >"$out/loadavg-after"; fi
load_before="$(cat "$out/loadavg-before" 2>/dev/null || echo unknown)"
load_after="$(cat "$out/loadavg-after" 2>/dev/null || echo unknown)"

python3 - "$out" "$P99_US" "$DURATION" "$ROUTER_CPU" "$ROUTER_CPUS2" "$LOAD_CPU" "$ONLY" "$ROUNDS" \
    "$load_before" "$load_after" <<'PY' | tee "$here/results/$NAME.md"
import json, os, sys, datetime, statistics
out, bound, dur, cpu1, cpus2, load_cpu, only, rounds, load0, load1 = sys.argv[1:11]
ran = only.split()
rounds = int(rounds)
dirs = [out] if rounds == 1 else [os.path.join(out, f"round{k}") for k in range(1, rounds + 1)]
def get1(d, router, name, path):
    try:
        with open(os.path.join(d, f"{router}-{name}.json")) as f:
            v = json.load(f)
        for p in path:
            v = v[p]
        return v
    except Exception:
        return None
def get(router, name, *path):
    """The value of one run, or the median over the rounds (numbers only)."""
    if router not in ran:
        return None
    vals = [get1(d, router, name, path) for d in dirs]
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if rounds == 1 or not nums:
        return vals[0]
    return statistics.median(nums)
def fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = round(v, 3) if v < 10 else round(v, 1) if v < 100 else round(v)
    return f"{v:,}".replace(",", " ") + unit
rows = [
    ("fanout 1→1000, 1 topic, 64 B, rs msgpack: deliveries/s", "fanout-rs", ("deliveries_per_sec",), True),
    ("  same: p99 latency µs (closed loop)", "fanout-rs", ("latency_us", "p99"), False),
    ("  same: router CPU µs per delivery", "fanout-rs", ("router_cpu_us_per_delivery",), False),
    ("  same, count-only reader (ceiling reference, nothing checked): deliveries/s", "fanout-rs-count", ("deliveries_per_sec",), True),
    ("fanout 1→1000, 1 topic, 64 B, ws json: deliveries/s", "fanout-ws", ("deliveries_per_sec",), True),
    ("  same: p99 latency µs (closed loop)", "fanout-ws", ("latency_us", "p99"), False),
    ("  same: router CPU µs per delivery", "fanout-ws", ("router_cpu_us_per_delivery",), False),
    ("rpc 10 callers × 32 in flight → 1 callee, 64 B, rs msgpack: calls/s", "rpc", ("calls_per_sec",), True),
    ("  same: p99 latency µs", "rpc", ("latency_us", "p99"), False),
    ("  same: router CPU µs per call", "rpc", ("router_cpu_us_per_call",), False),
    ("connect: sessions/s opened", "connect", ("sessions_per_sec",), True),
    ("connect: router RSS KiB per idle session", "connect", ("rss_kib_per_session",), False),
    (f"sweep fanout rs msgpack: max sustainable deliveries/s (p99 ≤ {bound} µs, no loss)", "sweep", ("max_sustainable_per_sec",), True),
    ("  sweep: p99 µs at half that rate (open loop)", "sweep", ("half_max", "p99_us"), False),
]
labels = {"wampd": "wampd 1 shard", "wampd2": "wampd 2 shards", "wampd-rules": "wampd 1 shard, 20 rules",
          "wampd-tls": "wampd 1 shard, TLS", "crossbar": "Crossbar"}
cols = [r for r in labels if r in ran]
# The runs' own duration (REPORT_ONLY may be called without DURATION).
dur = next((f"{d:g}" for d in (get(c, n, "duration") for c in cols for n in ("fanout-rs", "rpc"))
            if isinstance(d, (int, float))), dur)
median = f"medians of {rounds} alternated rounds, " if rounds > 1 else ""
print(f"Results of `loadtest/compare.sh` ({datetime.date.today()}, {median}{dur} s runs; wampload `--threads 1` on core {load_cpu}; "
      f"wampd 1 shard on core {cpu1}, wampd 2 shards on core(s) {cpus2}, Crossbar on core {cpu1}; "
      f"load average before {load0}, after {load1}). "
      "In brackets: the ratio to wampd 1 shard. wampd 1 shard, TLS runs every scenario over rss:// and wss://.\n")
def cell(router, name, path, higher):
    v = get(router, name, *path)
    base = get("wampd", name, *path)
    text = fmt(v)
    if router != "wampd" and isinstance(v, (int, float)) and isinstance(base, (int, float)) and base:
        text += f" ({v / base:.2f}×)"
    return text
extra = "wampd" in ran and "crossbar" in ran
print("| scenario | " + " | ".join(labels[c] for c in cols) + (" | ratio wampd 1 shard/Crossbar |" if extra else " |"))
print("|---|" + "---:|" * (len(cols) + extra))
for label, name, path, higher in rows:
    if all(get(c, name, *path) is None for c in cols):
        continue  # a scenario not run this time (SWEEP=0, CONNECT=0)
    cells = [cell(c, name, path, higher) for c in cols]
    if extra:
        a, b = get("wampd", name, *path), get("crossbar", name, *path)
        ratio = "–"
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            ratio = f"{a / b:.2f}×" + ("" if higher else " (lower is better)")
        cells.append(ratio)
    print(f"| {label} | " + " | ".join(cells) + " |")
print()
print("Sanity (lost / errors / wampload's own CPU % of its core" + (", worst round" if rounds > 1 else "") + "):\n")
print("| run | " + " | ".join(labels[c] for c in cols) + " |")
print("|---|" + "---|" * len(cols))
def worst(router, name, key, pick):
    vals = [get1(d, router, name, (key,)) for d in dirs]
    nums = [v for v in vals if isinstance(v, (int, float))]
    return pick(nums) if nums else None
for name in ["fanout-rs", "fanout-rs-count", "fanout-ws", "rpc", "connect"]:
    cells = []
    for r in cols:
        lost, err, cpu = (worst(r, name, "lost", max), worst(r, name, "errors", max),
                          worst(r, name, "wampload_cpu_percent", max))
        cells.append("–" if lost is None else f"lost {lost}, errors {err}" + ("" if cpu is None else f", cpu {cpu}%"))
    print(f"| {name} | {' | '.join(cells)} |")
PY
