#!/usr/bin/env bash
# Is wampload measuring the router or itself? Runs the same fanout against one wampd with the default
# (checking) reader and with the count-only reader (frames counted, nothing checked: the ceiling
# reference), alternating, RUNS times each, and prints the medians and their ratio. Writes the table
# to loadtest/results/reader-latest.md (raw JSON in loadtest/results/reader-latest/).
#
#   bash loadtest/reader.sh
#
# Environment knobs (defaults in brackets):
#   RUNS [3]  DURATION [10]  READERS ["check count"] (add "full" for the validated-parse reader)
#   SUBSCRIBERS [1000]  SERIALIZER [msgpack]  SHARDS [1]
#   ROUTER_CPUS [0]  LOAD_CPUS [1]  THREADS [1]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10}"
READERS="${READERS:-check count}"
SUBSCRIBERS="${SUBSCRIBERS:-1000}"
SERIALIZER="${SERIALIZER:-msgpack}"
SHARDS="${SHARDS:-1}"
ROUTER_CPUS="${ROUTER_CPUS:-0}"
LOAD_CPUS="${LOAD_CPUS:-1}"
THREADS="${THREADS:-1}"
out="$here/results/reader-latest"
rm -rf "$out"
mkdir -p "$out"

log() { echo "reader: $*" >&2; }

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

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 100); do
    p=$((10000 + RANDOM % 10000))
    if port_free "$p"; then port=$p; break; fi
done
[[ -n "$port" ]] || { log "no free port"; exit 1; }

log "building wampd and wampload (release)"
(cd "$root" && cargo build --release -p wampd -p wampload >&2)
wampd="$CARGO_TARGET_DIR/release/wampd"
load="$CARGO_TARGET_DIR/release/wampload"

setsid taskset -c "$ROUTER_CPUS" "$wampd" --listen "127.0.0.1:$port" --shards "$SHARDS" --log-level warn \
    >"$out/wampd.log" 2>&1 &
router_pgid=$!
for _ in $(seq 300); do
    if ! port_free "$port"; then break; fi
    sleep 0.1
done

cmd=(fanout --url "rs://127.0.0.1:$port" --serializer "$SERIALIZER" --publishers 1
     --subscribers "$SUBSCRIBERS" --topics 1 --payload 64 --duration "$DURATION" --threads "$THREADS")
for i in $(seq "$RUNS"); do
    for r in $READERS; do
        log "run $i, reader $r"
        taskset -c "$LOAD_CPUS" "$load" "${cmd[@]}" --reader "$r" --json "$out/$r-$i.json" >&2 ||
            log "wampload reported losses or errors"
    done
done

python3 - "$out" "$READERS" "$(printf '%q ' wampload "${cmd[@]}")" "$ROUTER_CPUS" "$LOAD_CPUS" "$SHARDS" <<'PY' | tee "$here/results/reader-latest.md"
import glob, json, os, statistics, sys, datetime
out, readers, cmd, rcpu, lcpu, shards = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
res = {}
for r in readers:
    runs = []
    for f in sorted(glob.glob(os.path.join(out, f"{r}-*.json"))):
        with open(f) as fh:
            runs.append(json.load(fh))
    res[r] = runs
def fmt(x):
    return f"{round(x):,}".replace(",", " ")
print(f"Results of `loadtest/reader.sh` ({datetime.date.today()}; wampd `--shards {shards}` on core(s) {rcpu}, wampload on core(s) {lcpu}).\n")
print(f"Command: `{cmd.strip()} --reader READER`\n")
print("| reader | deliveries/s, each run | median | wampload CPU % (median) | wampload CPU ns per delivery (median) | lost | errors |")
print("|---|---|---:|---:|---:|---:|---:|")
med, cost = {}, {}
for r, runs in res.items():
    if not runs:
        continue
    rates = [v["deliveries_per_sec"] for v in runs]
    med[r] = statistics.median(rates)
    cpu = statistics.median(v["wampload_cpu_percent"] for v in runs)
    # CPU time the generator spent per delivery: what bounds it once it saturates its cores.
    cost[r] = statistics.median(v["wampload_cpu_percent"] * 1e7 / max(v["deliveries_per_sec"], 1) for v in runs)
    print(f"| {r} | {', '.join(fmt(x) for x in rates)} | {fmt(med[r])} | {cpu:.0f} | {cost[r]:.0f} | "
          f"{sum(v['lost'] for v in runs)} | {sum(v['errors'] for v in runs)} |")
if "count" in med and med["count"]:
    print()
    for r in med:
        if r != "count":
            print(f"- reader `{r}` / count-only ceiling, deliveries/s: {med[r] / med['count']:.3f}; "
                  f"count-only / `{r}`, CPU per delivery: {cost['count'] / cost[r]:.3f} "
                  "(what the rate ratio would be if the generator were the limit)")
PY
