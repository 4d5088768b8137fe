#!/usr/bin/env bash
# Prepares the interoperability clients (idempotent; quick when done):
#   tests/interop/.venv         autobahn-python with asyncio + json/msgpack/cbor + scram/cryptosign
#   tests/interop/node_modules  autobahn-js 22.x with msgpack5 and cbor; wampy.js 8.x
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"
pipq=(-q --disable-pip-version-check)

# Under NumPy 2 a module compiled against NumPy 1.x prints an
# "_ARRAY_API not found" traceback on import (autobahn imports bjdata for its
# UBJSON serializer, and the published bjdata wheel is such a module).
import_clean() {
    local out
    out="$("$venv/bin/python" -c 'import autobahn.wamp.serializer, autobahn.asyncio.rawsocket, autobahn.asyncio.websocket, cbor2, msgpack, argon2, nacl' 2>&1)" || {
        printf '%s\n' "$out" >&2
        return 1
    }
    ! grep -q '_ARRAY_API\|NumPy 1.x\|Traceback' <<<"$out"
}

# --- Python ---------------------------------------------------------------
if [[ -x "$venv/bin/python" ]] && import_clean 2>/dev/null; then
    echo "interop setup: python venv ok (autobahn $("$venv/bin/python" -c 'import autobahn; print(autobahn.__version__)'))"
else
    [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install "${pipq[@]}" --upgrade pip setuptools wheel
    "$venv/bin/python" -m pip install "${pipq[@]}" 'autobahn[asyncio,serialization,encryption,scram]'
    if ! import_clean 2>/dev/null; then
        echo "interop setup: rebuilding bjdata against the installed NumPy"
        "$venv/bin/python" -m pip install "${pipq[@]}" --no-cache-dir --no-build-isolation \
            --no-deps --force-reinstall --no-binary bjdata bjdata
    fi
    import_clean || { echo "interop setup: autobahn-python import still fails" >&2; exit 1; }
    echo "interop setup: python venv installed (autobahn $("$venv/bin/python" -c 'import autobahn; print(autobahn.__version__)'))"
fi

# --- Node -----------------------------------------------------------------
node_ok() {
    (cd "$here" && node -e '
        const deps = require("./package.json").dependencies;
        const ab = require("autobahn");
        if (require("autobahn/package.json").version !== deps.autobahn) process.exit(1);
        if (!ab.serializer.MsgpackSerializer || !ab.serializer.CBORSerializer) process.exit(1);
        // wampy exports no package.json: read it from its folder.
        const wampyPkg = JSON.parse(require("fs").readFileSync("node_modules/wampy/package.json"));
        if (wampyPkg.version !== deps.wampy) process.exit(1);
        if (typeof require("wampy").Wampy !== "function") process.exit(1);
        if (!require("wampy/MsgpackSerializer.js").MsgpackSerializer) process.exit(1);
        if (!require("wampy/CborSerializer.js").CborSerializer) process.exit(1);
    ') >/dev/null 2>&1
}
# Reinstall when package-lock.json is newer than the last install.
if node_ok && [[ -f "$here/node_modules/.package-lock.json" && ! "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
    echo "interop setup: node_modules ok"
else
    # npm install follows package-lock.json. Not npm ci: the platform helpers that cbor-extract
    # (an optional native speed-up of cbor-x) lists are not all in the registry, so the lock file
    # cannot name them and npm ci refuses it; cbor-x works without them.
    (cd "$here" && npm install --no-save --no-audit --no-fund --loglevel=error)
    node_ok || { echo "interop setup: autobahn-js, wampy.js or their msgpack/cbor serializers not loadable" >&2; exit 1; }
    echo "interop setup: node_modules installed"
fi
