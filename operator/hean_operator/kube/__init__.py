"""The operator's view of the cluster: the few API calls it makes, behind one protocol."""
