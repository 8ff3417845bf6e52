"""Flags shared by ``harness.evaluate`` and ``sandbox.run`` (task, agent, protocol and model options)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.models import DEFAULT_LOCAL_MODEL


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("task and protocol")
    g.add_argument("--design", required=True, help="path of the memory design (a Python file)")
    g.add_argument("--benchmark", default="textworld",
                   help="benchmark: textworld | alfworld | minihack | babaisai | an installed plug-in's name | "
                        "module:Class, e.g. my_pkg.envs:MyBenchmark (default: %(default)s)")
    g.add_argument("--agent", default="heuristic",
                   help="task agent: heuristic | llm | random | an installed plug-in's name | module:Class "
                        "(default: %(default)s)")
    g.add_argument("--train", type=int, default=6, help="collection tasks N (default: %(default)s)")
    g.add_argument("--test", type=int, default=4, help="held-out deployment tasks M (default: %(default)s)")
    g.add_argument("--repeats", type=int, default=3, help="deployment repeats R (default: %(default)s)")
    g.add_argument("--mode", choices=["batched", "sequential"], default="batched",
                   help="deployment mode (default: %(default)s)")
    g.add_argument("--split", choices=["id", "ood"], default="id",
                   help="held-out split: in- or out-of-distribution (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="suite and agent seed (default: %(default)s)")
    g.add_argument("--step-limit", type=int, default=None, help="override the benchmark's step limit")
    g.add_argument("--concurrency", type=int, default=1,
                   help="concurrent episodes in batched deployment (default: %(default)s)")
    g.add_argument("--design-timeout", type=float, default=600.0,
                   help="seconds allowed for one retrieve/update call (default: %(default)s)")
    g.add_argument("--cache-dir", default=None, help="game cache (default: $ALMA_CACHE_DIR or ~/.cache/alma-engine)")
    m = parser.add_argument_group("models")
    m.add_argument("--chat-base-url", default=os.environ.get("ALMA_CHAT_BASE_URL"),
                   help="OpenAI-compatible endpoint for chat (default: $ALMA_CHAT_BASE_URL, else the embedded "
                        "local Qwen2.5-Coder-0.5B via llama.cpp)")
    m.add_argument("--chat-model", default=os.environ.get("ALMA_CHAT_MODEL", DEFAULT_LOCAL_MODEL),
                   help="chat model name (default: %(default)s)")
    m.add_argument("--embedder", choices=["minilm", "hashing", "remote"],
                   default=os.environ.get("ALMA_EMBEDDER", "minilm"),
                   help="embeddings: in-process MiniLM, hashed bag of words, or the remote endpoint "
                        "(default: %(default)s)")
    m.add_argument("--embed-base-url", default=os.environ.get("ALMA_EMBED_BASE_URL"),
                   help="OpenAI-compatible endpoint for embeddings (with --embedder remote)")
    m.add_argument("--embed-model", default="text-embedding-3-small", help="embedding model name")
    m.add_argument("--threads", type=int, default=1, help="CPU threads for local models (default: %(default)s)")


def job_from_args(args: argparse.Namespace, job_id: str = "cli") -> JobSpec:
    """Build a JobSpec from parsed flags; raises OSError when the design cannot be read."""
    path = Path(args.design)
    source = path.read_text(encoding="utf-8")
    return JobSpec(
        job_id=job_id,
        design=DesignSpec(name=path.stem, source=source),
        benchmark=args.benchmark,
        agent=AgentSpec(kind=args.agent),
        models=ModelSpec(chat_base_url=args.chat_base_url, chat_model=args.chat_model, embedder=args.embedder,
                         embed_base_url=args.embed_base_url, embed_model=args.embed_model, threads=args.threads),
        protocol=ProtocolSpec(n_train=args.train, n_test=args.test, repeats=args.repeats, mode=args.mode,
                              split=args.split, seed=args.seed, step_limit=args.step_limit,
                              concurrency=args.concurrency, design_call_timeout_s=args.design_timeout),
        cache_dir=args.cache_dir,
    )
