#!/usr/bin/env bash
# Every test: formatting, unit and table tests of the core, the simulation
# scenarios, and the CLI tests. Installs what it needs (a Rust toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup)..." >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt >&2
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
else
    echo "rustfmt not installed; skipping the format check" >&2
fi
cargo test --workspace --locked
