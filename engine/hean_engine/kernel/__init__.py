"""The kernel: one synchronous event path shared by replay, paper and live."""
