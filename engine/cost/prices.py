"""The price table: US dollars per 1 million input / output tokens per model, read from TOML.

The packaged table is ``engine/cost/prices.toml`` (free local models, and a few hosted API models as editable
examples). A run uses, in this order: the config's ``prices`` (a path), ``$ALMA_PRICES``, the packaged table::

    [models."gpt-4o-mini"]        # a model name as the run sends it, or a shell-style pattern ("gpt-4o*")
    input = 0.15                  # USD per 1M prompt tokens (embedding models: per 1M input tokens)
    output = 0.60                 # USD per 1M completion tokens

Models that run on this machine are named ``embedded:<name>`` by :mod:`engine.cost.ledger` and always cost 0.
"""

from __future__ import annotations

import fnmatch
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("prices.toml")
ENV_VAR = "ALMA_PRICES"
#: the prefix :mod:`engine.cost.ledger` gives models that run on this machine: free whatever the table says
EMBEDDED = "embedded:"


class PriceError(ValueError):
    """The price table cannot be read or holds an invalid entry (the message names the file and the entry)."""


@dataclass(frozen=True)
class Price:
    """USD per 1 million tokens."""

    input: float
    output: float = 0.0

    def usd(self, prompt_tokens: float, completion_tokens: float = 0.0) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000

    def text(self) -> str:
        if self.input == 0 and self.output == 0:
            return "free"
        return f"${self.input:g} in / ${self.output:g} out per 1M tokens"


FREE = Price(0.0, 0.0)


class PriceTable:
    """Prices by model name: exact keys (case-insensitive) first, then pattern keys in the file's order."""

    def __init__(self, entries: dict[str, Price], source: str):
        self.source = source
        self.entries = dict(entries)
        self._exact = {k.lower(): p for k, p in entries.items() if not _is_pattern(k)}
        self._patterns = [(k.lower(), p) for k, p in entries.items() if _is_pattern(k)]

    def lookup(self, model: str) -> Price | None:
        """The price of ``model``; None when the table has no entry for it (an unknown price)."""
        if model.startswith(EMBEDDED):
            return FREE
        name = model.lower()
        if name in self._exact:
            return self._exact[name]
        return next((p for pattern, p in self._patterns if fnmatch.fnmatchcase(name, pattern)), None)

    def unknown(self, models) -> list[str]:
        """The models of ``models`` without a price, sorted."""
        return sorted({m for m in models if self.lookup(m) is None})

    def __repr__(self) -> str:
        return f"PriceTable({self.source}, {len(self.entries)} models)"


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def table_path(configured: str | None = None) -> Path:
    """Which table a run uses: ``configured`` (the config's ``prices``), else ``$ALMA_PRICES``, else the
    packaged one."""
    chosen = configured or os.environ.get(ENV_VAR) or None
    return Path(chosen).expanduser() if chosen else DEFAULT_TABLE


def load_prices(configured: str | None = None) -> PriceTable:
    """Read the table :func:`table_path` names. Raises :class:`PriceError` with the file and entry at fault."""
    path = table_path(configured)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceError(f"cannot read the price table {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"the price table {path} is not valid TOML: {exc}") from exc
    models = data.get("models", {})
    extra = sorted(set(data) - {"models"})
    if extra or not isinstance(models, dict):
        raise PriceError(f"the price table {path} must hold only tables named models.\"<model name>\" "
                         f"(found {', '.join(extra) or type(models).__name__})")
    entries = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or "input" not in entry or set(entry) - {"input", "output"}:
            raise PriceError(f"{path}: models.\"{name}\" needs `input` (and optionally `output`), USD per 1M "
                             f"tokens, and nothing else; found {entry!r}")
        values = []
        for key in ("input", "output"):
            value = entry.get(key, 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise PriceError(f"{path}: models.\"{name}\": {key} must be a number >= 0 (USD per 1M tokens), "
                                 f"not {value!r}")
            values.append(float(value))
        entries[str(name)] = Price(*values)
    return PriceTable(entries, "packaged default" if path == DEFAULT_TABLE else str(path))


def fmt_usd(value: float | None) -> str:
    """``$1,234``, ``$12.34``, ``$0.0123``, ``$0.000012``: three significant digits below a dollar."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = min(12, max(2, 2 - math.floor(math.log10(value))))
    return f"${value:.{decimals}f}"
