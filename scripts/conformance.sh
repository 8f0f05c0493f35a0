#!/usr/bin/env bash
# Upstream's own end-to-end tests of a scheduler, against Berth, against
# kube-scheduler, and against no scheduler at all: builds e2e.test from the
# pinned k8s.io/kubernetes module (testenv/build e2e), then, for each suite
# and each scheduler, starts a fresh test environment with KWOK nodes, runs
# the scheduler as the cluster's only one (Berth with a profile named
# default-scheduler; `none` runs none), runs
#   e2e.test --ginkgo.focus=<the suite's focus> --ginkgo.skip=<the suite's skip>
# and keeps its JUnit report in target/conformance/<suite>/<name>/. The
# suites (CONFORMANCE_SUITES, default both):
#   scheduling  '\[sig-scheduling\]'
#   dra         '\[DRA\] control plane': dynamic resource allocation without
#               a kubelet (upstream's test driver publishes the ResourceSlices)
# Then each scheduler's failed tests are run again, in a fresh environment,
# up to CONFORMANCE_RERUNS times (default 1; the same for both schedulers),
# into .../<name>/rerun-<n>/. Finally writes first runs, reruns and the
# no-scheduler run side by side into CONFORMANCE.md, one section per suite
# (scripts/conformance-report.py); a suite not run keeps its section.
#
# With no scheduler most tests wait out their 5-minute timeouts, one after
# the other: that run is split across CONFORMANCE_SHARDS (default 8) test
# environments at once, each running a share of the tests (listed by a
# ginkgo dry run) into target/conformance/none/shard-<k>/. It runs first,
# alone, so that it does not load the machine under either scheduler.
#
#   scripts/conformance.sh                 # all three (about 2 hours on 2 cores)
#   scripts/conformance.sh berth           # some of them: berth | kube-scheduler | none
#   CONFORMANCE_SUITES=dra scripts/conformance.sh berth kube-scheduler
#   E2E_FOCUS='validates basic preemption' scripts/conformance.sh berth   # narrower
#
# Not part of CI: it does not fit its 90 minutes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
base="$repo/target/conformance"
mkdir -p "$base"
reruns="${CONFORMANCE_RERUNS:-1}"
schedulers=("$@")
[[ ${#schedulers[@]} -eq 0 ]] && schedulers=(none berth kube-scheduler)

bin="$(testenv/build e2e | tail -n 1)"
cp="$bin/controlplane"
cargo build --release -q -p berth
read -r -a suites <<<"${CONFORMANCE_SUITES:-scheduling dra}"
suite_focus() { # suite
  local f
  case $1 in
    scheduling) f='\[sig-scheduling\]' ;;
    dra) f='\[DRA\] control plane' ;;
    *) echo "conformance: unknown suite $1 (scheduling | dra)" >&2; exit 2 ;;
  esac
  [[ -n "${E2E_FOCUS:-}" ]] && f="$f.*${E2E_FOCUS}"
  echo "$f"
}
# What no suite runs: disruptive and flaky tests; in dra, the tests of the
# API server's ResourcePoolStatusRequest (alpha, off in the test environment;
# no scheduler takes part).
suite_skip() { # suite
  case $1 in
    dra) echo 'Disruptive|Flaky|FeatureGate:DRAResourcePoolStatus' ;;
    *) echo 'Disruptive|Flaky' ;;
  esac
}

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

run_suite() { # name dir focus (and $skip)
  local name=$1 dir=$2 focus=$3 sched=
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
    none) ;;
    kube-scheduler)
      # The release's feature gates, as the API server has them (testenv/versions.sh).
      # shellcheck source=../testenv/versions.sh
      gates=$(. testenv/versions.sh && echo "$KUBE_FEATURE_GATES")
      "$cp" kube-scheduler --kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig" \
        --authorization-kubeconfig "$kubeconfig" --leader-elect=false --secure-port 0 ${gates:+--feature-gates "$gates"} \
        >"$dir/scheduler.log" 2>&1 &
      ;;
    *) echo "conformance: unknown scheduler $name (berth | kube-scheduler | none)" >&2; exit 2 ;;
  esac
  [[ $name == none ]] || sched=$!
  echo "conformance: running $focus with $name (log: $dir/e2e.log)" >&2
  local start=$SECONDS
  # The suite's exit status is its failures, which the report lists.
  "$bin/e2e.test" --kubeconfig "$kubeconfig" --provider skeleton \
    --ginkgo.focus "$focus" --ginkgo.skip "$skip" \
    --ginkgo.junit-report "$dir/junit.xml" --ginkgo.timeout 3h --ginkgo.no-color --ginkgo.silence-skips \
    --minStartupPods 0 --e2e-verify-service-account=false --report-dir "$dir" >"$dir/e2e.log" 2>&1 || true
  echo "conformance: $name took $((SECONDS - start)) s" >&2
  if [[ -n $sched ]]; then
    kill "$sched" 2>/dev/null || true
    wait "$sched" 2>/dev/null || true
  fi
  testenv/down >/dev/null 2>&1 || true
}

run_none() { # base focus: the no-scheduler run, in shards
  local focus=$2 shards="${CONFORMANCE_SHARDS:-8}" k dir="$1/none"
  rm -rf "$dir" && mkdir -p "$dir"
  "$bin/e2e.test" --ginkgo.dry-run --ginkgo.focus "$focus" --ginkgo.skip "$skip" \
    --ginkgo.junit-report "$dir/tests.xml" --ginkgo.no-color --ginkgo.silence-skips >"$dir/dry-run.log" 2>&1 || true
  for ((k = 0; k < shards; k++)); do
    local share
    share="$(python3 scripts/conformance-report.py --shard "$k" "$shards" "$dir/tests.xml")"
    [[ -z $share ]] && continue
    run_suite none "$dir/shard-$k" "$share" &
  done
  wait
}

for suite in "${suites[@]}"; do
  focus="$(suite_focus "$suite")" skip="$(suite_skip "$suite")"
  for s in "${schedulers[@]}"; do
    if [[ $s == none ]]; then
      run_none "$base/$suite" "$focus"
      continue
    fi
    run_suite "$s" "$base/$suite/$s" "$focus"
    last="$base/$suite/$s"
    for ((n = 1; n <= reruns; n++)); do
      failed="$(python3 scripts/conformance-report.py --failed "$last/junit.xml")"
      [[ -z $failed ]] && break
      echo "conformance: rerun $n of $s's failures" >&2
      run_suite "$s" "$base/$suite/$s/rerun-$n" "$failed"
      last="$base/$suite/$s/rerun-$n"
    done
  done
done
python3 scripts/conformance-report.py "$base" CONFORMANCE.md >"$base/CONFORMANCE.md"
mv "$base/CONFORMANCE.md" CONFORMANCE.md
echo "conformance: wrote CONFORMANCE.md" >&2
