#!/usr/bin/env bash
# Every test: formatting and lints, unit and table tests of the core, the
# simulation scenarios, the CLI tests, the example custom scheduler, the
# plugin guide (docs/plugins.md, followed step by step), and `berth run` against a real control
# plane (testenv/: etcd, kube-apiserver and KWOK, built from the Go module
# proxy on first use, then cached). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ensure-tools.sh
. scripts/ensure-tools.sh
ensure_tools
# The example custom scheduler is a crate of its own, outside the workspace,
# as a user's would be; it shares the target directory, so only Berth's
# crates and its own are compiled again.
example=examples/custom-scheduler/Cargo.toml
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# A clean build without incremental state is several gigabytes smaller, and CI
# builds once: the disk of a CI machine filled up with it before.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h "$PWD" >&2
# The example WebAssembly guests in Rust: crates of their own, built for wasm32.
guests=(examples/wasm/node-pool-rs/Cargo.toml examples/wasm/chaos-rs/Cargo.toml)
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all -- --check
    cargo fmt --manifest-path "$example" -- --check
    for g in "${guests[@]}"; do cargo fmt --manifest-path "$g" -- --check; done
    gofmt_out=$(gofmt -l sdk/go examples/wasm/node-pool-go)
    [[ -z "$gofmt_out" ]] || { echo "gofmt: not formatted: $gofmt_out" >&2; exit 1; }
else
    echo "rustfmt not installed; skipping the format check" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --workspace --all-targets --locked -- -D warnings
    cargo clippy --manifest-path "$example" --all-targets --locked -- -D warnings
    for g in "${guests[@]}"; do
        cargo clippy --manifest-path "$g" --locked --target wasm32-unknown-unknown --target-dir target/wasm-guests/cargo -- -D warnings
    done
else
    echo "clippy not installed; skipping lints" >&2
fi
# One test environment for the run (the live tests reuse it), stopped at exit.
export BERTH_TESTENV_DIR="$PWD/target/testenv-test"
log=$(mktemp)
# Tests that cannot run where they are (an API the server lacks) write here
# (crates/berth/tests/common: skip); the summary counts them as skipped.
skips=$(mktemp)
export BERTH_TEST_SKIP_LOG="$skips"
guide_dir=
compat_dir="$PWD/target/testenv-compat"
trap 'rm -f "$log" "$skips"; [[ -n "$guide_dir" ]] && rm -rf "$guide_dir"; testenv/down >/dev/null 2>&1 || true; BERTH_TESTENV_DIR="$compat_dir" testenv/down >/dev/null 2>&1 || true' EXIT
start=$SECONDS
BERTH_TEST_KUBECONFIG="$(testenv/up | tail -n 1)"
export BERTH_TEST_KUBECONFIG
echo "test environment ready in $((SECONDS - start))s" >&2
set +e
# The example's own tests first: they also build the binary the live tests run.
cargo test --manifest-path "$example" --locked --no-fail-fast 2>&1 | tee "$log"
example_status=${PIPESTATUS[0]}
# Against the newest API server every API a test needs is served: a test
# that finds one missing fails instead of skipping.
BERTH_TEST_REQUIRE=api cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
[[ $status -eq 0 ]] && status=$example_status
# The live tests again, against the oldest API server Berth supports
# (testenv/versions.sh): Berth must keep working with clusters a few
# releases behind the newest.
. testenv/versions.sh
echo "live tests against Kubernetes $KUBE_OLDEST" >&2
if compat_kubeconfig="$(BERTH_KUBE_VERSION="$KUBE_OLDEST" BERTH_TESTENV_DIR="$compat_dir" testenv/up | tail -n 1)"; then
    BERTH_TEST_KUBECONFIG="$compat_kubeconfig" cargo test -p berth --test live --locked --no-fail-fast 2>&1 | tee -a "$log"
    compat_status=${PIPESTATUS[0]}
else
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored (test environment $KUBE_OLDEST did not start)" | tee -a "$log"
    compat_status=1
fi
BERTH_TESTENV_DIR="$compat_dir" testenv/down >/dev/null 2>&1 || true
[[ $status -eq 0 ]] && status=$compat_status
# The Go SDK of WebAssembly guests and the Go NodePool: vet (natively and
# for wasip1) and their unit tests, counted like cargo's.
go_log=$(mktemp)
for d in sdk/go examples/wasm/node-pool-go; do
    (cd "$d" && go vet ./... && GOOS=wasip1 GOARCH=wasm go vet ./... && go test -count=1 -v ./...) >>"$go_log" 2>&1
    echo "go: $d: exit $?" >>"$go_log"
done
go_passed=$(grep -c -- '^--- PASS' "$go_log" || true)
go_failed=$(grep -c -- '^--- FAIL' "$go_log" || true)
if grep -q ': exit [1-9]' "$go_log"; then
    cat "$go_log"
    echo "test result: FAILED. $go_passed passed; $((go_failed > 0 ? go_failed : 1)) failed; 0 ignored (Go SDK)" | tee -a "$log"
    [[ $status -eq 0 ]] && status=1
else
    echo "test result: ok. $go_passed passed; 0 failed; 0 ignored (Go SDK)" | tee -a "$log"
fi
rm -f "$go_log"
# The alerts of deploy/monitoring: valid rules, and each fires when it
# should and not before (their unit tests), by the real promtool.
if promtool=$(testenv/build-prometheus promtool | tail -n 1) \
    && "$promtool" check rules deploy/monitoring/berth.rules.yaml \
    && (cd deploy/monitoring && "$promtool" test rules berth.rules.test.yaml); then
    echo "test result: ok. 2 passed; 0 failed; 0 ignored (promtool: alerts)" | tee -a "$log"
else
    echo "test result: FAILED. 0 passed; 2 failed; 0 ignored (promtool: alerts)" | tee -a "$log"
    [[ $status -eq 0 ]] && status=1
fi
# The plugin guide, followed as a reader would: a new crate, a plugin, its
# test, simulate, and `run` on a test environment of its own.
# Outside the repository, as a reader's crate would be.
# The Go guide uses the stock berth binary the workspace tests built.
guide_dir=$(mktemp -d)
for guide in docs/plugins.md docs/wasm-plugins-go.md; do
    rm -rf "$guide_dir" && mkdir -p "$guide_dir"
    if python3 scripts/check-guide.py "$guide" --workdir "$guide_dir"; then
        echo "test result: ok. 1 passed; 0 failed; 0 ignored ($guide)" | tee -a "$log"
    else
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored ($guide)" | tee -a "$log"
        [[ $status -eq 0 ]] && status=1
    fi
done
set -e
# One closing line for the whole run (cargo prints one per test binary); a
# test that skipped itself returned early and cargo counted it as passed.
if [[ -s "$skips" ]]; then
    echo "skipped tests:"
    sed 's/^/  /' "$skips"
fi
awk -v k="$(wc -l <"$skips")" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - k, f, s + k }' "$log"
exit "$status"
