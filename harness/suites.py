"""Task suites on the host: build (or find) the suite a job plays, before it runs in a sandbox that mounts it
read-only (``sandbox.job.JobRunner(prepare=prepare_suite)``)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.envs import get_benchmark
from harness.jobspec import JobSpec


def cache_name(benchmark: str) -> str:
    """The cache directory's name for a benchmark name (a plug-in's ``module:Class`` has characters a path
    should not: ``my_pkg.envs:X`` -> ``my_pkg.envs_X``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", benchmark)


def prepare_suite(spec: JobSpec, cache_root: Path) -> Path:
    """Build the suite of ``spec`` (its benchmark, seed and sizes) under ``cache_root/<benchmark>`` unless it is
    there already; returns that directory. Raises :class:`harness.errors.BenchmarkError` like the benchmark."""
    cache = Path(cache_root) / cache_name(spec.benchmark)
    cache.mkdir(parents=True, exist_ok=True)
    p = spec.protocol
    get_benchmark(spec.benchmark).build_suite(p.seed, p.n_train, p.n_test, str(cache))
    return cache
