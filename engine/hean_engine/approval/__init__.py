"""Signed LiveApprovals: the only way an engine may trade live.

An approval binds one engine (namespace, name, uid) and one trading spec (its
hash) to a time window, and is signed with Ed25519 by N of the M trusted
keys. The operator and the engine each check it with `verify.verify`, so a
bug in one of them, or a pod made by hand, cannot enable live trading alone.
"""
