"""The experiments' fixed inputs: per-benchmark settings (``benchmarks.toml``) and the paper's claims
(``paper.toml``), both data files next to this module."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BenchmarkSettings:
    """How the claims are measured on one benchmark (see ``benchmarks.toml`` for each field's meaning)."""

    name: str
    n_train: int
    n_test: int
    heldout_n_test: int
    fitness_seed: int
    heldout_base: int
    transfer_weaker: int
    transfer_stronger: int
    llm_n_train: int
    llm_n_test: int
    room_note: str
    install: str

    def heldout_seed(self, run_seed: int) -> int:
        """The held-out suite of run seed ``run_seed`` (the same for every search rule)."""
        return self.heldout_base + run_seed

    def as_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def _benchmarks_file() -> dict:
    return tomllib.loads((HERE / "benchmarks.toml").read_text(encoding="utf-8"))


def benchmark_settings(name: str, table: str | None = None, **overrides: int | None) -> BenchmarkSettings:
    """The settings of the benchmark called ``name`` in configs: the table ``table`` (default ``name``; a plug-in
    named by module path uses its benchmark's own ``name``) over ``[default]``, with ``overrides`` (None: keep)."""
    data = _benchmarks_file()
    merged = {**data["default"], **data.get(table or name, {})}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(BenchmarkSettings)} - {"name"}
    return BenchmarkSettings(name=name, **{k: merged[k] for k in known})


@functools.lru_cache(maxsize=1)
def paper() -> dict:
    """The paper's claims: ``{"claim1": {"title", "statement", "paper", "method", ...}, ...}``."""
    return tomllib.loads((HERE / "paper.toml").read_text(encoding="utf-8"))
