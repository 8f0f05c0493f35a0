#!/usr/bin/env bash
# The fault harness (crates/berth/tests/faults.rs): each case on a control
# plane of its own (testenv/), one at a time, Berth running as deployed.
# Prints each case's figures as a Markdown table (RELIABILITY.md has them).
#   scripts/faults.sh                      all cases, newest Kubernetes
#   BERTH_KUBE_VERSION=v1.34.4 scripts/faults.sh
#   scripts/faults.sh leader               the cases whose name has "leader"
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ensure-tools.sh
. scripts/ensure-tools.sh
ensure_tools
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The Permit case runs the example custom scheduler (its Batch plugin).
cargo build --manifest-path examples/custom-scheduler/Cargo.toml --locked
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
cargo test -p berth --test faults --locked -- --nocapture "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
echo
echo "Kubernetes ${BERTH_KUBE_VERSION:-$(. testenv/versions.sh && echo "$KUBE_NEWEST")}, $(date -u +%F)"
grep '^fault-result ' "$out" | python3 -c '
import sys
rows = [dict(f.split("=", 1) for f in line.split()[1:]) for line in sys.stdin]
for r in rows:
    case = r.pop("case")
    print(f"| {case} | " + ", ".join(f"{k} {v}" for k, v in r.items()) + " |")
'
exit "$status"
