"""Level-triggered reconcile logic, split by concern: children, status, deletion."""
