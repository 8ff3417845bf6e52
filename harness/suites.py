"""Task suites on the host: build (or find) the suite a job plays, before it runs in a sandbox that mounts it
read-only (``sandbox.job.JobRunner(prepare=prepare_suite)``)."""

from __future__ import annotations

from pathlib import Path

from harness.envs import get_benchmark
from harness.jobspec import JobSpec


def prepare_suite(spec: JobSpec, cache_root: Path) -> Path:
    """Build the suite of ``spec`` (its benchmark, seed and sizes) under ``cache_root/<benchmark>`` unless it is
    there already; returns that directory. Raises :class:`harness.errors.BenchmarkError` like the benchmark."""
    cache = Path(cache_root) / spec.benchmark
    cache.mkdir(parents=True, exist_ok=True)
    p = spec.protocol
    get_benchmark(spec.benchmark).build_suite(p.seed, p.n_train, p.n_test, str(cache))
    return cache
