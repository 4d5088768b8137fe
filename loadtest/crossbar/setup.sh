#!/usr/bin/env bash
# Installs Crossbar.io (the reference router used for comparison runs) into
# loadtest/crossbar/.venv. Idempotent; quick when already installed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"

# Importing a module that was compiled against NumPy 1.x under NumPy 2 prints
# an "_ARRAY_API not found" traceback; bjdata's wheel has been seen doing that.
bjdata_ok() {
    local out
    out="$("$venv/bin/python" -c 'import bjdata' 2>&1)" || return 1
    ! grep -q '_ARRAY_API\|NumPy 1.x' <<<"$out"
}

if [[ -x "$venv/bin/crossbar" ]] && "$venv/bin/python" -c 'import crossbar' 2>/dev/null && bjdata_ok; then
    echo "crossbar setup: already done ($("$venv/bin/crossbar" version 2>/dev/null | grep -i 'crossbar' | head -1 | tr -s ' ' || true))"
    exit 0
fi

[[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
"$venv/bin/python" -m pip install -q --disable-pip-version-check crossbar

if ! bjdata_ok; then
    echo "crossbar setup: rebuilding bjdata against the installed NumPy"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir \
        --no-build-isolation --no-deps --force-reinstall --no-binary bjdata bjdata
    bjdata_ok || { echo "crossbar setup: bjdata still broken" >&2; exit 1; }
fi
"$venv/bin/python" -c 'import crossbar'
echo "crossbar setup: done"
