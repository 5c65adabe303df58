"""A Kubernetes API emulator and pod runner for trying HEAN without a cluster (`hean sandbox`)."""
