"""HEAN simulators: a stateful exchange that speaks a real exchange's REST protocol."""
