"""The evaluation cache: a finished evaluation is never computed twice, across runs and resumes.

A sandbox job is fully described by its spec (the design's source, the benchmark, the protocol with its suite
seed and sizes, the task agent, the model ids and their settings; not how many deployment episodes it plays at
once, which changes its wall time only) and by the code that plays it (the harness:
the task agents, environments and step limits; and the files of a plug-in benchmark or agent). The key is a sha256 over both, without the job's id; the value
is the job's report as the host validated it. Only ``ok`` reports are kept: a timeout or a crash may not
repeat, and the archive records those as they happened.

Where the task agent or the design calls a sampled model, a cached report is one sample of that evaluation's
distribution, the same one the first run archived: reusing it is what a resumed run does with its own results.
``--no-eval-cache`` (``eval_cache = false``, or ``ALMA_EVAL_CACHE=off`` in the environment) turns it off.

Entries live under ``~/.cache/alma-engine/evals/<key[:2]>/<key>.json`` (``$ALMA_EVAL_CACHE`` moves them), are
written atomically by the host only (a design never reaches this directory) and are read back through the same
schema check as a fresh report.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

from harness.files import write_text_atomic
from harness.jobspec import JobSpec
from sandbox.job import JobReport
from sandbox.outcome import Outcome


def default_root() -> Path | None:
    """``$ALMA_EVAL_CACHE`` or ``~/.cache/alma-engine/evals``; None when the environment says ``off``."""
    env = os.environ.get("ALMA_EVAL_CACHE", "")
    if env.lower() == "off":
        return None
    return Path(env or Path.home() / ".cache" / "alma-engine" / "evals")


@functools.lru_cache(maxsize=1)
def harness_hash() -> str:
    """sha256 over the harness's files (the measuring instrument): a change to any of them is a new cache."""
    from sandbox.image import harness_files

    h = hashlib.sha256()
    for path in harness_files():
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def plugin_hash(spec: JobSpec) -> str:
    """sha256 over the files of the job's plug-in benchmark and agent (none for built-ins): editing a plug-in
    is a new cache, like editing the harness. Raises PluginError when a plug-in's code cannot be found."""
    from harness.plugins import import_locations, plugin_names

    h = hashlib.sha256()
    for kind, name in plugin_names(spec.benchmark, spec.agent.kind):
        for loc in import_locations(kind, name):
            files = sorted(loc.path.rglob("*")) if loc.path.is_dir() else [loc.path]
            for path in files:
                if path.is_file() and "__pycache__" not in path.parts:
                    h.update(str(path.relative_to(loc.root)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cache_key(spec: JobSpec) -> str:
    """The key of ``spec``'s evaluation: its content without the job id, the harness that plays it and the
    code of its plug-ins."""
    data = spec.model_dump(mode="json")
    data.pop("job_id", None)
    # how many deployment episodes run at once changes the wall time, not the result: each episode has its own
    # agent (seeded by task and repeat) and env, and batched memory is frozen (tests/test_episode_concurrency.py;
    # a design that writes in retrieve sees its calls in another order: one sample, as above). Written as 1,
    # the keys of reports made before the engine could raise it stay valid
    data["protocol"]["concurrency"] = 1
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{harness_hash()}\n{plugin_hash(spec)}\n{blob}".encode()).hexdigest()


class EvalCache:
    """Reports of finished evaluations by :func:`cache_key`; ``hits``/``stores`` count this process's use."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits = self.stores = 0

    @classmethod
    def open(cls) -> EvalCache | None:
        """The cache at :func:`default_root`, or None when the environment turned it off."""
        root = default_root()
        return None if root is None else cls(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, spec: JobSpec) -> JobReport | None:
        """The cached report of ``spec`` (with ``spec``'s job id), or None. A damaged entry is a miss."""
        path = self._path(cache_key(spec))
        try:
            report = JobReport.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if report.outcome is not Outcome.OK or report.result is None:
            return None
        self.hits += 1
        # nothing was spent this time: no broker usage to count against a budget
        return report.model_copy(update={"job_id": spec.job_id, "broker_usage": {},
                                         "detail": f"from the evaluation cache ({path.stem[:12]})"})

    def put(self, spec: JobSpec, report: JobReport) -> bool:
        """Keep ``report`` when it is ``ok`` with a result; returns whether it was stored."""
        if report.outcome is not Outcome.OK or report.result is None:
            return False
        path = self._path(cache_key(spec))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, report.model_dump_json())
        except OSError:
            return False  # a full or read-only cache costs a re-evaluation later, never the run
        self.stores += 1
        return True
