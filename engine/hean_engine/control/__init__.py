"""The engine's HTTP surface: health, readiness, metrics, status and control."""
