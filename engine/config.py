"""The evolve run's configuration: one typed model, read from TOML, overridden by CLI flags.

Every default works offline: the meta agent and the task model use the embedded local model, the task agent
is the heuristic one, evaluations run in the sandbox (``auto``: Docker when a daemon answers, else bubblewrap).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.models import DEFAULT_LOCAL_MODEL, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S
from harness.plugins import PluginName


class ConfigError(ValueError):
    """The configuration file or a flag is invalid (the message names the field and the problem)."""


class ModelConfig(BaseModel):
    """One model role (meta or task): any OpenAI-compatible endpoint, or the embedded local model."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; none = embedded local model")
    model: str = DEFAULT_LOCAL_MODEL
    api_key_env: str = "OPENAI_API_KEY"
    local_model: str = DEFAULT_LOCAL_MODEL
    threads: int = Field(1, ge=1, le=64)
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="seconds per request (an embedded CPU model is slow)")
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1, le=20)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(1500, ge=16, le=32768)
    ctx: int = Field(16384, ge=1024, le=131072, description="context window of the embedded local model")
    requests_per_minute: int | None = Field(None, ge=1, description="the endpoint's request limit for this model: "
                                            "the task role's broker spreads its requests to stay under it (they "
                                            "wait, never fail); none = unlimited")
    tokens_per_minute: int | None = Field(None, ge=1, description="the endpoint's token limit for this model (each "
                                          "request's maximum, corrected to its reported usage): the task role's "
                                          "broker holds requests until they fit; none = unlimited")
    max_concurrency: int | None = Field(None, ge=1, le=256, description="requests to this model in flight at once, "
                                        "across every job the run's broker serves (task role); none: 1 for the "
                                        "embedded model (queued here, not in its server), 16 for an endpoint")


class EvalConfig(BaseModel):
    """What one evaluation of a design is (the paper's protocol on one benchmark)."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str = "textworld"
    agent: PluginName = Field("heuristic", description="heuristic | llm | random | an installed plug-in's name | "
                                                       "module:Class (harness.plugins)")
    embedder: Literal["minilm", "hashing", "remote"] = "hashing"
    n_train: int = Field(6, ge=0)
    n_test: int = Field(8, ge=1)
    repeats: int = Field(1, ge=1, description="deployment repeats per test task; a heuristic-agent repeat (a new "
                                              "tie-break seed) had the same outcome in 107 of 120 TextWorld tasks, "
                                              "so the default buys more distinct tasks instead")
    mode: Literal["batched", "sequential"] = "batched"
    split: Literal["id", "ood"] = "id"
    heldout_split: Literal["id", "ood"] = Field(
        "id", description="the final table's held-out evaluation: this split of a fresh suite (heldout_seed), "
                          "never seen while evolving")
    heldout_seed: int = 1000
    heldout_n_test: int | None = Field(None, ge=1, description="test tasks of the held-out suite (default: n_test); "
                                                                "more tasks narrow the held-out table's intervals")
    validation_seed: int = Field(500, description="suite seed of the validation re-evaluation (a third fresh "
                                                  "suite, neither the fitness suite nor the held-out one)")
    validation_top: int = Field(5, ge=0, le=50, description="the best evolved designs by fitness re-evaluated on "
                                "the validation suite before the final pick: the held-out table takes the best "
                                "by fitness and validation pooled (0: by fitness alone)")
    validation_n_test: int | None = Field(None, ge=1, description="test tasks of the validation suite (default: "
                                                                  "heldout_n_test, else n_test)")
    seed: int = 0
    design_timeout_s: float = Field(600.0, gt=0)
    episode_concurrency: int = Field(1, ge=1, le=64, description="deployment episodes played at once in batched "
                                     "mode (ProtocolSpec.concurrency): with a remote task model the "
                                     "latency-bound episodes overlap; collection and sequential "
                                     "deployment stay one episode at a time")

    @model_validator(mode="after")
    def _three_suites(self) -> EvalConfig:
        if self.validation_top and self.validation_seed in (self.seed, self.heldout_seed):
            raise ValueError(f"validation_seed ({self.validation_seed}) must differ from the fitness suite's seed "
                             f"({self.seed}) and the held-out suite's ({self.heldout_seed}): the validation "
                             "suite has to be fresh")
        return self


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["auto", "docker", "bubblewrap", "none"] = "auto"
    memory_mb: int = Field(2048, ge=128)
    pids: int = Field(256, ge=16)
    cpus: float = Field(1.0, gt=0)
    timeout_s: float = Field(900.0, gt=0)


class EvolveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs_dir: str = "runs"
    steps: int = Field(8, ge=0)
    seed: int = 0
    budget_tokens: int | None = Field(None, ge=1, description="stop cleanly once meta+task tokens reach this")
    budget_usd: float | None = Field(None, gt=0, description="hard cap in US dollars over meta, task and embedding "
                                                            "calls, priced by the `prices` table (engine.cost)")
    prices: str | None = Field(None, description="price table (TOML, USD per 1M tokens); none: $ALMA_PRICES, else "
                                                 "the packaged engine/cost/prices.toml")
    budget_minutes: float | None = Field(
        12.0, gt=0, description="no new step starts once seeding and steps have taken this many minutes "
                                "(counted across resumes); the held-out table follows. The default keeps the "
                                "offline default run near 20 minutes on 2 cores")
    selection: Literal["softmax", "greedy", "novelty", "elite"] = Field(
        "greedy", description="parent selection (archive.selection): greedy (the best, ties to fewer visits; measured "
                              "best in benchmarks/search_ablation.py), elite (within one fitness task of the "
                              "best, by visits), softmax (the paper's rule) or novelty")
    tau: float = Field(0.5, gt=0)
    alpha: float = Field(0.5, ge=0)
    parents: int = Field(1, ge=1, le=4)
    meta_share: float = Field(0.25, ge=0.0, le=1.0, description="share of steps proposed by the meta agent; "
                                                                "the rest by libcst mutation/crossover")
    operators: list[str] | None = Field(None, description="the structural operators steps may use (names in "
                                                          "engine.code.mutate.OPERATORS); none = all of them")
    fix_rounds: int = Field(3, ge=0, le=10)
    meta_edit: Literal["patch", "rewrite"] = Field(
        "patch", description="how the meta agent edits a design: 'patch' asks for only the changed or new "
                             "definitions and merges them into the parent (fits a small local model's output "
                             "budget); 'rewrite' asks for the whole module")
    smoke_test: bool = Field(True, description="verify meta-agent designs with a one-task smoke evaluation")
    seeds_dir: str | None = Field(None, description="hand-crafted baselines (default: the packaged seeds/)")
    concurrency: int = Field(1, ge=1, le=64, description="evaluations in flight at once (workers of the executor)")
    eval_cache: bool = Field(True, description="reuse the report of an evaluation already computed with the same "
                                               "job spec and harness, in any run (engine.search.evalcache)")
    executor: Literal["local", "ray"] = Field("local", description="where evaluations run: this machine or Ray")
    ray_address: str | None = Field(None, description="Ray cluster (head:port); none starts Ray here")
    meta: ModelConfig = Field(default_factory=ModelConfig)
    task: ModelConfig = Field(default_factory=lambda: ModelConfig(temperature=0.0, max_tokens=48))
    eval: EvalConfig = Field(default_factory=EvalConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    @field_validator("operators")
    @classmethod
    def _known_operators(cls, names: list[str] | None) -> list[str] | None:
        from engine.code.mutate import OPERATORS

        if names is not None and (not names or set(names) - set(OPERATORS)):
            raise ValueError(f"unknown or no operators {sorted(set(names) - set(OPERATORS))}; choose among "
                             f"{', '.join(sorted(OPERATORS))}")
        return names


def load_config(path: str | Path | None, overrides: dict | None = None) -> EvolveConfig:
    """Read ``path`` (TOML; None = defaults), apply ``overrides`` (dotted keys, e.g. ``"eval.benchmark"``)."""
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        return EvolveConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {problems}") from exc


def to_toml(config: EvolveConfig) -> str:
    """The resolved configuration as TOML (written to the run directory)."""
    lines: list[str] = []
    data = config.model_dump()
    for key, value in data.items():
        if not isinstance(value, dict) and value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None)
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
