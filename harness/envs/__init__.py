"""Benchmarks behind the text-environment contract (see :mod:`harness.envs.base`)."""

from __future__ import annotations

from harness.envs.base import Benchmark
from harness.errors import BenchmarkError

#: benchmark name -> "module:ClassName"; imported lazily so a missing optional package only hurts its user.
REGISTRY: dict[str, str] = {
    "textworld": "harness.envs.textworld_env:TextWorldBenchmark",
    "babaisai": "harness.envs.babaisai.benchmark:BabaIsAIBenchmark",
    "minihack": "harness.envs.minihack_env:MiniHackBenchmark",
    "alfworld": "harness.envs.alfworld_env:ALFWorldBenchmark",
}


def get_benchmark(name: str) -> Benchmark:
    """Return the benchmark called ``name`` (raises BenchmarkError naming the known ones)."""
    import importlib

    if name not in REGISTRY:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    module_name, _, cls_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BenchmarkError(
            f"benchmark {name!r} needs a package that is not installed ({exc.name}); run the README's setup command"
        ) from exc
    return getattr(module, cls_name)()
