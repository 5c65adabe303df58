"""The contract between the HEAN engine and the HEAN operator, typed once.

Both sides import these models and nothing else of each other: the
`TradingEngine` spec (what a user asks for), the engine's report (its
`GET /status` document, which the operator reads), the control commands the
operator sends (`POST /control`), and the resource's status (what the
operator writes). Everything is camelCase on the wire. A change here breaks
the type checker on both sides, not a deployment.

This package imports nothing of HEAN's: the engine and the operator sit above it.
"""
