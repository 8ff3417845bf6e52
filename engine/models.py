"""One description per model role (:class:`engine.config.ModelConfig`: ``meta`` and ``task``) and the one
function per consumer that derives what that consumer needs from it:

* :func:`meta_settings` -- the meta agent's in-process clients (:class:`harness.models.factory.ModelSettings`);
* :func:`task_model_spec` -- what the harness inside a sandbox is told (:class:`harness.jobspec.ModelSpec`): the
  model name it sends and the broker socket's timeout, which covers every upstream attempt the broker makes,
  so the harness itself never retries (the broker does);
* :func:`task_broker_config` -- the host broker that serves the task role (:class:`sandbox.broker.BrokerConfig`):
  the one model it serves and sends upstream, its timeouts, retries, reply cap and rate limits; live, or replaying
  a cassette.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import EvolveConfig, ModelConfig
from harness.jobspec import ModelSpec
from harness.models.factory import ModelSettings
from sandbox.broker import BrokerConfig

#: slack on top of the broker's own attempts before the harness gives up on a request
BROKER_SLACK_S = 30.0


def meta_settings(role: ModelConfig) -> ModelSettings:
    """The meta agent's clients: the role's endpoint (or the embedded model) called from the engine's process."""
    return ModelSettings(chat_base_url=role.base_url, chat_model=role.model, api_key_env=role.api_key_env,
                         local_model=role.local_model, embedder="hashing", threads=role.threads,
                         timeout=role.timeout, ctx=role.ctx, max_attempts=role.max_attempts)


def task_model_spec(config: EvolveConfig) -> ModelSpec:
    """The task role as the sandboxed harness sees it (it reaches the model only through the broker)."""
    role = config.task
    return ModelSpec(chat_model=role.model, embedder=config.eval.embedder, threads=role.threads,
                     timeout=role.timeout * role.max_attempts + BROKER_SLACK_S, max_attempts=1)


def _local_embedder(embedder: str) -> str | None:
    return embedder if embedder in ("minilm", "hashing") else None


def task_broker_config(config: EvolveConfig, *, cassette_dir: Path | None, cassette_mode: str = "auto",
                       chat_model: str | None = None, base_url: str | None = None, embedder: str | None = None,
                       embed_model: str | None = None) -> BrokerConfig:
    """The broker serving the task role. ``cassette_mode="replay"``: no upstream at all (every answer comes from
    ``cassette_dir``); otherwise ``base_url`` (default: the role's endpoint, else the embedded model).
    ``chat_model``/``embedder``/``embed_model`` override the config's (a replay serves what was recorded)."""
    role = config.task
    embedder = embedder or config.eval.embedder
    local = _local_embedder(embedder)
    name = chat_model or role.model
    if embed_model is None:
        embed_model = None if local else ModelSpec().embed_model
    common = dict(chat_model=name, models=[name], embed_model=embed_model, cassette_dir=cassette_dir,
                  cassette_mode=cassette_mode, timeout=role.timeout, max_attempts=role.max_attempts,
                  threads=role.threads, max_completion_tokens=max(1024, role.max_tokens),
                  requests_per_minute=role.requests_per_minute, tokens_per_minute=role.tokens_per_minute)
    if cassette_mode == "replay":  # offline: no chat upstream, no key; a miss is an error inside the job
        return BrokerConfig(chat_base_url=None, local_chat_model=None, api_key_env="ALMA_REPLAY_NO_KEY",
                            local_embedder="minilm" if embedder == "minilm" else None, **common)
    url = base_url if base_url is not None else role.base_url
    # one request at a time to an embedded CPU model: queueing here, not in its server, avoids timeouts
    return BrokerConfig(chat_base_url=url, local_chat_model=role.local_model, api_key_env=role.api_key_env,
                        local_embedder=local,
                        max_concurrency=role.max_concurrency or (1 if url is None else 16), **common)
