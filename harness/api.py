"""The Python API of the harness: evaluate a memory design from code, without a sandbox.

::

    from harness.api import evaluate

    result = evaluate("seeds/trajectory_retrieval.py", benchmark="support_desk", agent="heuristic",
                      n_train=12, n_test=8, repeats=1, embedder="hashing")
    result.score, result.stderr, result.episodes[0].actions

It plays the same protocol as ``python -m harness.evaluate`` (collection, then deployment) and returns the same
:class:`~harness.jobspec.EvalResult` that the CLI writes with ``--out``. The design runs in its own worker process
(``isolate=True``, the default); this process runs the benchmark and the agent, so plug-ins need only be
importable here. For an isolated, resource-limited evaluation use ``python -m sandbox.run`` (same options).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.errors import DesignError
from harness.jobspec import AgentSpec, DesignSpec, EpisodeRecord, EvalResult, JobSpec, ModelSpec, ProtocolSpec
from harness.loader import load_design_source
from harness.models import DEFAULT_LOCAL_MODEL

#: what :func:`evaluate` returns (the result document of every evaluation)
Result = EvalResult


def design_source(design: str | Path) -> tuple[str, str]:
    """``(name, source)`` of ``design``: a :class:`~pathlib.Path` or a one-line str is a file to read (its stem
    is the name); a str of several lines is the source text itself (named "design").

    Raises DesignError when the file cannot be read."""
    if isinstance(design, str) and "\n" in design:
        return "design", design
    path = Path(design)
    try:
        return path.stem, path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DesignError(str(path), f"cannot read the design file ({exc.strerror}); pass a path, or the "
                                     "design's source text") from exc


def evaluate(design: str | Path, *, benchmark: str = "textworld", agent: str = "heuristic", n_train: int = 6,
             n_test: int = 4, repeats: int = 3, mode: str = "batched", split: str = "id", seed: int = 0,
             step_limit: int | None = None, concurrency: int = 1, design_timeout_s: float = 600.0,
             embedder: str = "minilm", chat_base_url: str | None = None, chat_model: str = DEFAULT_LOCAL_MODEL,
             embed_base_url: str | None = None, embed_model: str = "text-embedding-3-small", threads: int = 1,
             agent_temperature: float = 0.0, agent_max_tokens: int = 48, cache_dir: str | None = None,
             isolate: bool = True, name: str | None = None,
             on_episode: Callable[[EpisodeRecord], None] | None = None) -> EvalResult:
    """Evaluate ``design`` on ``benchmark`` with ``agent`` and return the result.

    Args:
        design: the design's source text, or the path of its file (see :func:`design_source`).
        benchmark, agent: built-in names, installed plug-ins' names, or ``module:Class`` (:mod:`harness.plugins`).
        n_train, n_test, repeats, mode, split, seed, step_limit, concurrency, design_timeout_s: the protocol
            (as the CLI's ``--train --test --repeats --mode --split --seed --step-limit --concurrency
            --design-timeout``).
        embedder, chat_base_url, chat_model, embed_base_url, embed_model, threads: the models
            (``chat_base_url=None``: the embedded local model, started only if something chats).
        agent_temperature, agent_max_tokens: the LLM agent's sampling settings.
        cache_dir: where benchmarks cache generated games (default ``$ALMA_CACHE_DIR`` or ``~/.cache/alma-engine``).
        isolate: run the design in its own worker process (score integrity); False runs it in this process
            (development only: a design could then change its own score).
        name: the design's label in the result (default: the file's stem, or "design").
        on_episode: called with each episode's record as it finishes.

    Raises:
        harness.errors.DesignError: the design cannot be read, does not load, or breaks the contract.
        harness.errors.PluginError: the benchmark or agent name does not resolve or its plug-in does not load.
        harness.errors.BenchmarkError: the benchmark cannot build or play its tasks.
        harness.errors.ModelError: a model call failed after its retries.
        harness.isolation.proxy.DesignTimeout: a design call ran past ``design_timeout_s``.
        pydantic.ValidationError: an option is out of range (e.g. ``n_test=0``).
    """
    label, source = design_source(design)
    job = JobSpec(
        job_id="api", design=DesignSpec(name=name or label, source=source), benchmark=benchmark,
        agent=AgentSpec(kind=agent, temperature=agent_temperature, max_tokens=agent_max_tokens),
        models=ModelSpec(chat_base_url=chat_base_url, chat_model=chat_model, embedder=embedder,
                         embed_base_url=embed_base_url, embed_model=embed_model, threads=threads),
        protocol=ProtocolSpec(n_train=n_train, n_test=n_test, repeats=repeats, mode=mode, split=split, seed=seed,
                              step_limit=step_limit, concurrency=concurrency,
                              design_call_timeout_s=design_timeout_s),
        cache_dir=cache_dir, isolate_design=isolate)
    return run_job(job, on_episode=on_episode)


def run_job(job: JobSpec, *, on_episode: Callable[[EpisodeRecord], None] | None = None,
            on_start: Callable[[object], None] | None = None) -> EvalResult:
    """Play ``job`` (a whole :class:`~harness.jobspec.JobSpec`) in this process and return its result: what
    :func:`evaluate` and ``python -m harness.evaluate`` do once the job is built. ``on_start`` is called with the
    protocol run (its suite built) before the first episode. Raises like :func:`evaluate`."""
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    if not job.isolate_design:
        load_design_source(job.design.source, job.design.name)  # the contract error before any episode
    settings = ModelSettings(**job.models.model_dump(exclude={"uds"}))
    with open_models(settings) as models:
        run = ProtocolRun(job, models, on_episode=on_episode)
        if on_start is not None:
            on_start(run)
        return run.run_sync()
