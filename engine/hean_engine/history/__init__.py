"""The engine's durable books and history: orders, fills, positions, equity, events.

One schema (`schema`) on two backends (`store`): an SQLite file on the
engine's volume (the default) or a PostgreSQL database. The `recorder` is fed
by the kernel and the live venue and writes from a thread of its own, so that
the event loop never waits for a disk or a database.
"""
