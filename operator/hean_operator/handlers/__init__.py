"""kopf handlers, registered on an explicit registry by the operator's entry point."""
