"""What profiling found behind each missed target: report.py prints a
target's cause here beside its "missed" verdict (only while it is missed),
and `NOTES` under Findings in docs/performance.md.

Keyed by (target, dialect) with dialect None for both; targets are the keys
of report.TARGET_TITLES. Keep each cause to what the profile showed and the
fix it points to.
"""

from __future__ import annotations

CAUSES: dict[tuple[str, str | None], str] = {}

NOTES = ""


def cause(target: str, dialect: str) -> str | None:
    return CAUSES.get((target, dialect)) or CAUSES.get((target, None))


def notes() -> str:
    return NOTES
