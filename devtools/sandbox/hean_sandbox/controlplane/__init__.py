"""The control plane: Kubernetes and etcd built from pinned Go modules, started on loopback."""
