"""Domain rules: who may do what, transaction boundaries, hub events.

A service function takes the `Database`, opens at most one transaction,
calls queries/ inside it, and tells the hub about changes only after the
commit. It raises `errors.ApiError`s that the HTTP layer renders as is.
"""
