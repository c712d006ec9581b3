"""The store's SQL, written once for both engines.

Each module here is one concern of the store (events, history, the
enrollment registry, the schema) as SQL with `?` placeholders, run through
a Dialect (dialect.py) that the engine hands in: it knows the engine's
placeholders, type names, index hints, how a new row's id comes back, how
a write transaction starts and which errors are the driver's. What truly
differs stays in store/sqlite/ and store/postgres/: connecting (the only
modules that import a driver), the engine's locking across collectors,
and the migrations and report upserts that have no common form.
"""
