#!/usr/bin/env bash
# Builds the example WebAssembly guests into a directory (default
# target/wasm-guests/out): NodePool in Rust and in Go, and the misbehaving
# Chaos guest of the sandbox tests. The Rust ones need the
# wasm32-unknown-unknown target (added here when rustup can), the Go one
# Go 1.24+ (GOOS=wasip1, //go:wasmexport). Prints the directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/wasm-guests/out}"
mkdir -p "$out"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown >&2
fi
# A target directory of their own: the guests' dependencies are built for
# wasm32, and the workspace's target directory may be locked by the cargo
# that runs the tests calling this script.
cargo_dir="$root/target/wasm-guests/cargo"
for crate in node-pool-rs chaos-rs; do
    cargo build --quiet --locked --release --target wasm32-unknown-unknown \
        --manifest-path "$root/examples/wasm/$crate/Cargo.toml" --target-dir "$cargo_dir" >&2
done
cp "$cargo_dir/wasm32-unknown-unknown/release/node_pool_rs.wasm" "$out/node_pool_rs.wasm"
cp "$cargo_dir/wasm32-unknown-unknown/release/chaos_rs.wasm" "$out/chaos.wasm"
"$root/examples/wasm/node-pool-go/build.sh" "$out/node_pool_go.wasm" >&2
echo "$out"
