"""Tollgate's shared domain: settings, database, tables, pricing, redaction.

`core` imports no application package; `harness`, `sidecar` and `dashboards` build on it.
"""

__version__ = "0.1.0"
