"""The two documents that cross the sandbox boundary: the job spec (host -> harness) and the result
(harness -> host). One versioned schema each (pydantic); the host validates the result before trusting it.

A job directory holds ``job.json`` (a :class:`JobSpec`); ``python -m harness.run job.json --out result.json``
plays it and writes a :class:`EvalResult`. ``harness.evaluate`` writes the same result document.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.models import DEFAULT_LOCAL_MODEL, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT_S
from harness.plugins import PluginName

SCHEMA_VERSION = 1


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: PluginName = Field("heuristic", description="the task agent: heuristic | llm | random | an installed "
                                                       "plug-in's name | module:Class (harness.plugins)")
    history: int = Field(8, ge=0, le=64, description="past steps shown to the LLM agent")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(48, ge=1, le=4096)


class ModelSpec(BaseModel):
    """Model settings as the harness sees them. Never holds a key: inside a sandbox the broker holds it."""

    model_config = ConfigDict(extra="forbid")

    chat_base_url: str | None = None
    chat_model: str = DEFAULT_LOCAL_MODEL
    embedder: Literal["minilm", "hashing", "remote"] = "minilm"
    embed_base_url: str | None = None
    embed_model: str = "text-embedding-3-small"
    threads: int = Field(1, ge=1, le=64)
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="seconds per model request (local CPU models are slow)")
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1, le=20, description="attempts per model request")
    uds: str | None = Field(None, description="Unix socket of the host broker; set by the sandbox")


class ProtocolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_train: int = Field(6, ge=0, le=10_000)
    n_test: int = Field(4, ge=1, le=10_000)
    repeats: int = Field(3, ge=1, le=100)
    mode: Literal["batched", "sequential"] = "batched"
    split: Literal["id", "ood"] = "id"
    seed: int = 0
    concurrency: int = Field(1, ge=1, le=64, description="concurrent episodes in batched deployment")
    design_call_timeout_s: float = Field(600.0, gt=0, description="limit on one retrieve/update call")
    step_limit: int | None = Field(None, ge=1, description="override the benchmark's step limit")


class DesignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    source: str


class JobSpec(BaseModel):
    """Everything ``harness.run`` needs to evaluate one design; JSON-serialisable, holds no secrets."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    design: DesignSpec
    benchmark: PluginName = Field("textworld", description="a built-in benchmark, an installed plug-in's name, or "
                                                           "module:Class (harness.plugins)")
    agent: AgentSpec = Field(default_factory=AgentSpec)
    models: ModelSpec = Field(default_factory=ModelSpec)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    cache_dir: str | None = None
    scratch_dir: str | None = Field(None, description="where design scratch dirs go (default: a temp dir)")
    isolate_design: bool = Field(True, description="run the design in its own process (score integrity)")


class EpisodeRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: str
    phase: Literal["collect", "deploy"]
    split: str
    repeat: int = 0
    won: bool
    steps: int
    progress: float = 0.0
    reward: float = 0.0
    retrieved: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    actions: list[str] = Field(default_factory=list)
    unparsed: int = Field(0, ge=0, description="the agent's model replies that named no admissible action "
                                               "(an agent's ``unparsed`` counter; 0 for agents without a model)")
    retrieve_s: float = 0.0
    update_s: float = 0.0
    wall_s: float = 0.0


class EvalResult(BaseModel):
    """The result of one evaluation (``harness.evaluate --out`` and ``harness.run --out`` write this)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str | None = None
    design: str
    design_hash: str
    benchmark: str
    agent: str
    mode: Literal["batched", "sequential"]
    split: str
    seed: int
    score: float = Field(ge=0.0, le=1.0)
    stderr: float = Field(ge=0.0)
    progress: float = Field(ge=0.0, le=1.0)
    n_train: int
    n_test: int
    repeats: int
    episodes: list[EpisodeRecord]
    usage: dict[str, dict[str, int]] = Field(default_factory=dict)
    design_errors: int = 0
    wall_s: float = 0.0
