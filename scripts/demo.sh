#!/usr/bin/env bash
# The demo: a real control plane (etcd, kube-apiserver, KWOK from testenv/),
# 100 fake nodes in three zones (ten of them GPU nodes behind a taint), 300
# pods of mixed shapes, and `berth run` scheduling them. Shows progress, then
# where the pods went and why the rest are pending. Installs what it needs;
# the first run builds the control plane from the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ensure-tools.sh
. scripts/ensure-tools.sh
ensure_tools
cargo build --release --locked -p berth >&2
bin="$(testenv/build | tail -n 1)"
kubectl() { "$bin/controlplane" kubectl --kubeconfig "$KUBECONFIG" "$@"; }
export BERTH_TESTENV_DIR="$PWD/target/testenv-demo"
work="$PWD/target/demo"
mkdir -p "$work"
berth_pid=""
cleanup() {
    [[ -n "$berth_pid" ]] && kill -TERM "$berth_pid" 2>/dev/null && wait "$berth_pid" 2>/dev/null
    testenv/down >/dev/null 2>&1 || true
}
trap cleanup EXIT
KUBECONFIG="$(testenv/up | tail -n 1)"
export KUBECONFIG

# ---- the cluster -------------------------------------------------------------
{
    for i in $(seq -w 0 99); do
        zone=$(( 10#$i % 3 )); zone=$(printf "\\x$(printf %x $((97 + zone)))")
        if (( 10#$i >= 90 )); then cpu=16; extra_labels="accelerator: gpu"; taints='[{key: dedicated, value: gpu, effect: NoSchedule}]'
        else cpu=8; extra_labels="tier: general"; taints='[]'; fi
        cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: node-$i
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: node-$i, topology.kubernetes.io/zone: zone-$zone, $extra_labels}
spec:
  taints: $taints
status:
  allocatable: {cpu: "$cpu", memory: 64Gi, pods: "110"}
  capacity: {cpu: "$cpu", memory: 64Gi, pods: "110"}
NODE
    done
} >"$work/nodes.yaml"
pod() { # name app cpu memory extra-spec-yaml
    cat <<POD
---
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: demo, labels: {app: $2}}
spec:
  schedulerName: berth
  containers: [{name: main, image: registry.k8s.io/pause:3.10, resources: {requests: {cpu: "$3", memory: $4}}}]
$5
POD
}
{
    echo "apiVersion: v1"; echo "kind: Namespace"; echo "metadata: {name: demo}"
    for i in $(seq -w 1 150); do pod "web-$i" web 250m 256Mi "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]"; done
    for i in $(seq -w 1 50); do pod "cache-$i" cache 500m 1Gi "  affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: [{labelSelector: {matchLabels: {app: cache}}, topologyKey: kubernetes.io/hostname}]}}"; done
    for i in $(seq -w 1 60); do pod "batch-$i" batch 2 4Gi ""; done
    for i in $(seq -w 1 24); do pod "train-$i" train 6 16Gi "  nodeSelector: {accelerator: gpu}
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]"; done
    for i in $(seq -w 1 10); do pod "ssd-$i" ssd 100m 128Mi "  nodeSelector: {disk: ssd}"; done
    for i in $(seq -w 1 6); do pod "huge-$i" huge 64 8Gi ""; done
} >"$work/pods.yaml"

echo "== 100 KWOK nodes (zones a/b/c; node-90..99 are GPU nodes, tainted dedicated=gpu:NoSchedule)" >&2
kubectl create -f "$work/nodes.yaml" >/dev/null
echo "== berth run (log: $work/berth.log)" >&2
./target/release/berth run --kubeconfig "$KUBECONFIG" --secure-port 0 --http-address 127.0.0.1:0 >"$work/berth.log" 2>&1 &
berth_pid=$!
echo "== 300 pods: 150 web (spread over zones), 50 cache (one per node), 60 batch (2 CPU)," >&2
echo "   24 train (GPU nodes, 6 CPU), 10 ssd (no such node), 6 huge (64 CPU)" >&2
kubectl create -f "$work/pods.yaml" >/dev/null &

# ---- progress: until every pod is bound or has been reported unschedulable ---
total=300
started=$SECONDS
deadline=$((SECONDS + 180))
while :; do
    read -r bound failed < <(kubectl get pods -n demo -o jsonpath='{range .items[*]}{.spec.nodeName}{"|"}{range .status.conditions[?(@.type=="PodScheduled")]}{.reason}{end}{"\n"}{end}' |
        awk -F'|' '$1 != "" { b++ } $1 == "" && $2 == "Unschedulable" { f++ } END { print b + 0, f + 0 }')
    printf '\r  bound %3d/%d   unschedulable %3d   (%ds)' "$bound" "$total" "$failed" "$((SECONDS - started))" >&2
    (( bound + failed >= total )) && break
    if (( SECONDS > deadline )); then echo; echo "demo: pods still undecided after 180s; see $work/berth.log" >&2; exit 1; fi
    sleep 0.5
done
echo >&2

# ---- summary -------------------------------------------------------------------
echo
echo "Where the pods went (app: pods bound, nodes used, per zone):"
kubectl get pods -n demo -o jsonpath='{range .items[*]}{.metadata.labels.app}{" "}{.spec.nodeName}{"\n"}{end}' |
    awk '$2 != "" { n = substr($2, 6) + 0; z = substr("abc", n % 3 + 1, 1); bound[$1]++; nodes[$1 " " $2] = 1; zone[$1 " " z]++ }
         END { for (k in nodes) { split(k, a, " "); used[a[1]]++ }
               for (app in bound) printf "  %-6s %3d bound on %3d nodes   zone-a %3d  zone-b %3d  zone-c %3d\n", app, bound[app], used[app], zone[app " a"], zone[app " b"], zone[app " c"] }' | sort
echo
echo "Why the others are pending (FailedScheduling, pods with that message):"
kubectl get pods -n demo -o jsonpath='{range .items[*]}{.spec.nodeName}{"|"}{range .status.conditions[?(@.type=="PodScheduled")]}{.message}{end}{"\n"}{end}' |
    awk -F'|' '$1 == "" { c[$2]++ } END { for (m in c) printf "  %3d  %s\n", c[m], m }' | sort -rn
echo
echo "Scheduler metrics:"
port=$(sed -n 's/.*serving .*address=\([0-9.:]*\).*/\1/p' "$work/berth.log" | head -n 1)
curl -fs "http://$port/metrics" | grep -E '^scheduler_(schedule_attempts_total|pending_pods|preemption_attempts_total)' | sed 's/^/  /'
