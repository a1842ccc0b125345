"""HTTP handlers, one module per resource, plus the middleware they share.

Handlers parse and validate input and shape output; they never run SQL or
decide permissions (services/ does), and never import a database driver.
"""
