# The one Kubernetes release the test environment runs (see controlplane/go.mod).
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
KWOK_VERSION=v0.7.0
