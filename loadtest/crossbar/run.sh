#!/usr/bin/env bash
# Runs Crossbar.io in the foreground with config.json, listening on
# 127.0.0.1:PORT (WebSocket on /ws and RawSocket, json/msgpack/cbor).
# Usage: loadtest/crossbar/run.sh PORT      (run setup.sh first)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${1:?usage: run.sh PORT}"
[[ -x "$here/.venv/bin/crossbar" ]] || { echo "run $here/setup.sh first" >&2; exit 1; }

# A private node directory per port, so that several nodes can run side by side.
cbdir="${CROSSBAR_CBDIR:-${TMPDIR:-/tmp}/wampd-crossbar-$port}"
mkdir -p "$cbdir"
"$here/.venv/bin/python" - "$here/config.json" "$cbdir/config.json" "$port" <<'PY'
import json, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src) as f:
    cfg = json.load(f)
cfg.pop("$schema", None)
for worker in cfg["workers"]:
    for transport in worker.get("transports", []):
        transport["endpoint"]["port"] = port
with open(dst, "w") as f:
    json.dump(cfg, f, indent=2)
PY
exec "$here/.venv/bin/crossbar" start --cbdir "$cbdir" --config config.json --loglevel "${CROSSBAR_LOGLEVEL:-warn}"
