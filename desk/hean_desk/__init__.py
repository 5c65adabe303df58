"""HEAN's trading desk: the `kubectl hean` plugin and its web console."""
