"""HEAN's Kubernetes operator (kopf). Filled by the operator issue; empty until then.

Installed with the `operator` extra (`pip install 'hean[operator]'`) so that
engine images carry neither kopf nor the Kubernetes client.
"""
