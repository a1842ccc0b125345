"""Query functions, one module per table family.

Each function runs one named query from sql/ and returns plain values; no
permission checks, no business rules (services/ decides), no driver imports
(db/ adapts). Every function takes an `Executor`: the `Database` itself or
an open `Transaction`, so a service chooses the transaction boundaries.
"""
