"""`hean sandbox`: a real Kubernetes control plane built from pinned Go modules, a node that
runs pods as local processes, and HEAN installed in it with helm."""
