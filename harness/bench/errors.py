"""The root of every error the bench tool raises on purpose."""

from __future__ import annotations

from harness.errors import HarnessError


class BenchError(HarnessError):
    """Bad bench input (option, rule, SLO, file) or a run that produced nothing; one readable line."""
