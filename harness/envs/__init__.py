"""Benchmarks behind the text-environment contract (see :mod:`harness.envs.base`).

Names resolve through :mod:`harness.plugins`: a built-in (:data:`REGISTRY`), an installed plug-in's entry point
(group ``alma_engine.benchmarks``) or a module path ``my_pkg.envs:MyBenchmark``.
"""

from __future__ import annotations

from harness.plugins import BUILTIN_BENCHMARKS, get_benchmark

#: built-in benchmark name -> "module:ClassName"; imported lazily so a missing optional package only hurts its user
REGISTRY: dict[str, str] = BUILTIN_BENCHMARKS

__all__ = ["REGISTRY", "get_benchmark"]
