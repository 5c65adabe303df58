"""An engine's children (ConfigMaps, control Secret, history claim, pod), made to match its spec.

Not to be confused with *reconcile*, which in HEAN means only the live engine's
comparison of its books with the exchange's.
"""
