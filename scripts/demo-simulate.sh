#!/usr/bin/env bash
# The demo: build Berth and schedule the example cluster offline, explaining
# every decision. Needs only a Rust toolchain (rustup installs one if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup)..." >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >&2
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
cargo build --release --locked -p berth >&2
echo "== berth simulate examples/cluster/cluster.yaml --explain" >&2
./target/release/berth simulate examples/cluster/cluster.yaml --explain "$@"
