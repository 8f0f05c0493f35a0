# The Kubernetes releases the test environment runs. The newest is the
# default: everything is tested and benchmarked on it (controlplane/go.mod).
# The oldest API server Berth supports is tested too (controlplane-v1.34/go.mod):
# BERTH_KUBE_VERSION=v1.34.4 testenv/up starts that one instead.
KUBE_NEWEST=v1.37.2
KUBE_OLDEST=v1.34.4
KUBE_VERSION="${BERTH_KUBE_VERSION:-$KUBE_NEWEST}"
case "$KUBE_VERSION" in
  "$KUBE_NEWEST") CONTROLPLANE_MODULE=controlplane ;;
  "$KUBE_OLDEST") CONTROLPLANE_MODULE=controlplane-v1.34 ;;
  *) echo "testenv: no control plane for Kubernetes $KUBE_VERSION ($KUBE_NEWEST or $KUBE_OLDEST)" >&2; exit 2 ;;
esac
KWOK_VERSION=v0.7.0
