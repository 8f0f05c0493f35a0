#!/usr/bin/env bash
# Upstream's own scheduling end-to-end tests, against Berth and against
# kube-scheduler: builds e2e.test from the pinned k8s.io/kubernetes module
# (testenv/build e2e), then, for each scheduler, starts a fresh test
# environment with KWOK nodes, runs the scheduler as the cluster's only one
# (Berth with a profile named default-scheduler), runs
#   e2e.test --ginkgo.focus='\[sig-scheduling\]' --ginkgo.skip='Disruptive|Flaky'
# and keeps its JUnit report. Finally writes the two pass lists side by side
# into CONFORMANCE.md (scripts/conformance-report.py).
#
#   scripts/conformance.sh                 # both schedulers (about an hour on 2 cores)
#   scripts/conformance.sh berth           # one of them: berth | kube-scheduler
#   E2E_FOCUS='validates basic preemption' scripts/conformance.sh berth   # narrower
#
# CONFORMANCE_RERUN=1 keeps the earlier reports and writes this run's to
# target/conformance/rerun-<n>/; the report takes each test's latest outcome
# and says which came from a rerun.
#
# Not part of CI: it does not fit its 90 minutes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
base="$repo/target/conformance"
out="$base"
if [[ -n "${CONFORMANCE_RERUN:-}" ]]; then
  n=1
  while [[ -d "$base/rerun-$n" ]]; do n=$((n + 1)); done
  out="$base/rerun-$n"
fi
mkdir -p "$out"
schedulers=("$@")
[[ ${#schedulers[@]} -eq 0 ]] && schedulers=(berth kube-scheduler)

bin="$(testenv/build e2e | tail -n 1)"
cp="$bin/controlplane"
cargo build --release -q -p berth
focus='\[sig-scheduling\]'
[[ -n "${E2E_FOCUS:-}" ]] && focus="$focus.*${E2E_FOCUS}"

nodes() { # kubeconfig: four KWOK nodes in two zones, as a small real cluster
  local kubeconfig=$1 i zone
  for i in 1 2 3 4; do
    zone=zone-$(((i - 1) % 2 + 1))
    cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: node-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels:
    kubernetes.io/hostname: node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: $zone
    topology.kubernetes.io/region: region-1
spec: {}
status:
  allocatable: {cpu: "4", memory: 16Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "4", memory: 16Gi, pods: "110", ephemeral-storage: 100Gi}
---
NODE
  done | "$cp" kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null
}

run_suite() { # name
  local name=$1 dir="$out/$1" sched
  rm -rf "$dir" && mkdir -p "$dir"
  basename "$(dirname "$bin")" >"$dir/kubernetes-version"
  export BERTH_TESTENV_DIR="$dir/env"
  local kubeconfig
  kubeconfig="$(BERTH_TESTENV_OWNER_PID=$$ testenv/up | tail -n 1)"
  nodes "$kubeconfig"
  case $name in
    berth)
      cat >"$dir/config.yaml" <<CONFIG
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {leaderElect: false}
profiles:
- schedulerName: default-scheduler
CONFIG
      target/release/berth run --kubeconfig "$kubeconfig" --config "$dir/config.yaml" --secure-port 0 >"$dir/scheduler.log" 2>&1 &
      ;;
    kube-scheduler)
      # The release's feature gates, as the API server has them (testenv/versions.sh).
      # shellcheck source=../testenv/versions.sh
      gates=$(. testenv/versions.sh && echo "$KUBE_FEATURE_GATES")
      "$cp" kube-scheduler --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" \
        --authorization-kubeconfig "$kubeconfig" --leader-elect=false --secure-port 0 ${gates:+--feature-gates "$gates"} \
        >"$dir/scheduler.log" 2>&1 &
      ;;
    *) echo "conformance: unknown scheduler $name (berth | kube-scheduler)" >&2; exit 2 ;;
  esac
  sched=$!
  echo "conformance: running [sig-scheduling] with $name (log: $dir/e2e.log)" >&2
  local start=$SECONDS
  # The suite's exit status is its failures, which the report lists.
  "$bin/e2e.test" --kubeconfig "$kubeconfig" --provider skeleton \
    --ginkgo.focus "$focus" --ginkgo.skip 'Disruptive|Flaky' \
    --ginkgo.junit-report "$dir/junit.xml" --ginkgo.timeout 3h --ginkgo.no-color --ginkgo.silence-skips \
    --minStartupPods 0 --e2e-verify-service-account=false --report-dir "$dir" >"$dir/e2e.log" 2>&1 || true
  echo "conformance: $name took $((SECONDS - start)) s" >&2
  kill "$sched" 2>/dev/null || true
  wait "$sched" 2>/dev/null || true
  testenv/down >/dev/null 2>&1 || true
}

for s in "${schedulers[@]}"; do
  run_suite "$s"
done
python3 scripts/conformance-report.py "$base" >CONFORMANCE.md
echo "conformance: wrote CONFORMANCE.md" >&2
