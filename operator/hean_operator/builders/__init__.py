"""Pure functions that return the Kubernetes manifests for one TradingEngine.

No I/O, no cluster: each builder takes the engine's identity and spec (plus
settings) and returns a dict, so every manifest is unit-tested on its own.
"""
