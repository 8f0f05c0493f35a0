# Sourced by the scripts: installs what they need on a fresh machine.
# Rust through rustup; curl, openssl and python3 from Debian's packages; Go
# must be there (the test environment's control plane is built with it).
ensure_tools() {
    local missing=()
    for t in curl openssl python3; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
    if ((${#missing[@]})); then
        echo "installing ${missing[*]} (apt)..." >&2
        local sudo=""; [[ $(id -u) != 0 ]] && sudo=sudo
        $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq "${missing[@]}" >&2
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "installing the Rust toolchain (rustup)..." >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt --component clippy >&2
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "Go is needed to build the test environment (kube-apiserver, etcd, KWOK): https://go.dev/dl" >&2
        return 1
    fi
    # WebAssembly guests: Rust's wasm32 target, and Go 1.24+ (//go:wasmexport).
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        echo "adding the wasm32-unknown-unknown target (rustup)..." >&2
        rustup target add wasm32-unknown-unknown >&2
    fi
    local gov
    gov=$(go env GOVERSION | sed -E 's/^go([0-9]+)\.([0-9]+).*/\1 \2/')
    if ! awk -v v="$gov" 'BEGIN { split(v, a, " "); exit !(a[1] > 1 || a[2] >= 24) }'; then
        echo "Go 1.24 or newer is needed for the WebAssembly guests (found $(go env GOVERSION))" >&2
        return 1
    fi
}
