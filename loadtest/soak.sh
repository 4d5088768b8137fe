#!/usr/bin/env bash
# The long soak: ~2,000 sessions of mixed fanout, rpc and idle load against one wampd for
# SECONDS (default 600), checking that nothing is lost, no call fails, and the router's memory and
# descriptors stay flat. CI runs the same test for 30 s.
#   bash loadtest/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p wampd -p wampload
WAMPD_SOAK_SECS="${1:-600}" cargo test --release -p wampload --test soak -- --nocapture
