#!/bin/sh
# Builds the NodePool guest: ./build.sh [out.wasm] (default node_pool.wasm).
set -eu
cd "$(dirname "$0")"
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o "${1:-node_pool.wasm}" .
