# The Kubernetes releases the test environment runs. The newest is the
# default: everything is tested and benchmarked on it (controlplane/go.mod).
# The oldest API server Berth supports is tested too (controlplane-v1.34/go.mod):
# BERTH_KUBE_VERSION=v1.34.4 testenv/up starts that one instead.
KUBE_NEWEST=v1.37.2
KUBE_OLDEST=v1.34.4
KUBE_VERSION="${BERTH_KUBE_VERSION:-$KUBE_NEWEST}"
# KUBE_FEATURE_GATES: what every component of that release runs with (testenv/up;
# scripts/conformance.sh gives kube-scheduler the same). On 1.37: the native
# PodGroup API (GenericWorkload, beta, off by default), and toleration
# operators Gt/Lt (TaintTolerationComparisonOperators, alpha), which Berth
# does not read: the live tests check what it does then.
case "$KUBE_VERSION" in
  "$KUBE_NEWEST") CONTROLPLANE_MODULE=controlplane KUBE_FEATURE_GATES=GenericWorkload=true,TaintTolerationComparisonOperators=true ;;
  "$KUBE_OLDEST") CONTROLPLANE_MODULE=controlplane-v1.34 KUBE_FEATURE_GATES= ;;
  *) echo "testenv: no control plane for Kubernetes $KUBE_VERSION ($KUBE_NEWEST or $KUBE_OLDEST)" >&2; exit 2 ;;
esac
KWOK_VERSION=v0.7.0
