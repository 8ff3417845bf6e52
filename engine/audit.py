"""A design's audit verdict from its runtime events (sandbox limit hits + the worker's audit hooks).

``hostile``: it tried something refused to a design (network, subprocess, fork, ctypes, signals, tampering
with the interpreter, writing outside its scratch directory) or exhausted the pids limit. ``suspicious``: it read
files outside its allowed roots, imported risky modules, or hit the memory or time limit. ``clean``: none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HOSTILE_KINDS = frozenset({"network", "subprocess", "fork", "ctypes", "signal", "tamper", "file_write"})
SUSPICIOUS_KINDS = frozenset({"file_read", "import"})
HOSTILE_OUTCOMES = frozenset({"pids_exhausted"})
SUSPICIOUS_OUTCOMES = frozenset({"oom", "timeout"})


def verdict(events: Iterable[dict[str, Any]], outcome: str = "ok") -> tuple[str, list[str]]:
    """(verdict, reasons) for a job's events and outcome."""
    hostile, suspicious = [], []
    for e in events:
        kind = str(e.get("kind", ""))
        what = f"{kind}: {e.get('event', '')} {str(e.get('detail', ''))[:120]}".strip()
        if kind in HOSTILE_KINDS and e.get("refused", True):
            hostile.append(what)
        elif kind in SUSPICIOUS_KINDS:
            suspicious.append(what)
    if outcome in HOSTILE_OUTCOMES:
        hostile.append(f"outcome {outcome}")
    elif outcome in SUSPICIOUS_OUTCOMES:
        suspicious.append(f"outcome {outcome}")
    if hostile:
        return "hostile", hostile[:20]
    if suspicious:
        return "suspicious", suspicious[:20]
    return "clean", []
