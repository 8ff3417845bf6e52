"""The memory-design contract: what every design (hand-written seed or evolved genome) implements.

A design is one Python module that defines exactly one subclass of :class:`MemoryDesign`::

    from harness.design import MemoryDesign, Toolkit
    from harness.types import Episode, Task

    class MyMemory(MemoryDesign):
        def __init__(self, toolkit: Toolkit):
            super().__init__(toolkit)
            ...                                   # open self.toolkit.db_path, create tables, ...

        async def retrieve(self, task: Task) -> dict:
            return {"text": "..."}                # shown to the task agent before the episode

        async def update(self, episode: Episode) -> None:
            ...                                   # learn from the finished episode

The harness calls ``retrieve`` once before every episode and ``update`` once after it (during collection, and
during sequential deployment). Both are ``async``; a design awaits the toolkit's LLM and embedding calls.
:data:`CONTRACT` is the machine-readable form of this contract; the loader here and the engine's validator
both check it, and :func:`contract_text` renders it for the meta agent, so the three cannot disagree.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.types import Episode, Task

#: Upper bound of the memory text handed to the task agent (characters). Longer text is cut.
MAX_MEMORY_CHARS = 4000


@runtime_checkable
class LLM(Protocol):
    """Chat completion, text in and text out."""

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        json_mode: bool = False,
        max_tokens: int = 512,
        temperature: float = 0.0,
    ) -> str:
        """Return the model's reply to ``prompt``. With ``json_mode`` the reply is a JSON object (as text)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings."""

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one unit-length vector per text, in order."""
        ...


@dataclass
class Toolkit:
    """Everything a design may use besides its own code.

    Attributes:
        llm: chat completion (:class:`LLM`).
        embedder: sentence embeddings (:class:`Embedder`).
        scratch_dir: a private directory the design may read and write; it persists across the episodes of
            one evaluation and nothing else can see it.
    """

    llm: LLM
    embedder: Embedder
    scratch_dir: Path

    @property
    def db_path(self) -> Path:
        """A SQLite file inside ``scratch_dir`` reserved for the design's database."""
        return self.scratch_dir / "memory.sqlite"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Shorthand for ``self.embedder.embed(texts)``."""
        return await self.embedder.embed(texts)


class MemoryDesign:
    """Base class of every memory design.

    Subclasses keep the constructor signature ``__init__(self, toolkit)`` and call ``super().__init__(toolkit)``.
    State lives in attributes and/or in files under ``toolkit.scratch_dir`` (e.g. SQLite at ``toolkit.db_path``).
    A design must work on an empty memory: ``retrieve`` before any ``update`` returns a (possibly empty) dict.
    """

    def __init__(self, toolkit: Toolkit):
        self.toolkit = toolkit

    async def retrieve(self, task: Task) -> dict:
        """Called before an episode with the task's goal and first observation only.

        Returns a JSON-serialisable dict. Its ``"text"`` entry (a str) is what the task agent reads as memory;
        other entries are kept in the evaluation logs. Return ``{}`` when there is nothing useful.
        """
        return {}

    async def update(self, episode: Episode) -> None:
        """Called after an episode with the whole trajectory and its outcome (won, reward, progress)."""
        return None


#: The contract in machine-readable form (used by the loader, the validator and the meta agent's prompt).
CONTRACT: dict[str, Any] = {
    "base_class": "MemoryDesign",
    "base_module": "harness.design",
    "constructor": {"name": "__init__", "params": ["self", "toolkit"]},
    "methods": {
        "retrieve": {"async": True, "params": ["self", "task"], "returns": "dict"},
        "update": {"async": True, "params": ["self", "episode"], "returns": "None"},
    },
    "retrieved_text_key": "text",
    "max_memory_chars": MAX_MEMORY_CHARS,
}


def memory_text(retrieved: dict[str, Any] | None) -> str:
    """The text the task agent reads for a design's ``retrieve`` result (bounded to MAX_MEMORY_CHARS)."""
    if not retrieved:
        return ""
    text = retrieved.get(CONTRACT["retrieved_text_key"])
    if not isinstance(text, str):
        rest = {k: v for k, v in retrieved.items() if k != CONTRACT["retrieved_text_key"]}
        text = json.dumps(rest, default=str, ensure_ascii=False) if rest else ""
    return text[:MAX_MEMORY_CHARS]


def contract_text() -> str:
    """The contract as prose + signatures, rendered from :data:`CONTRACT` and the docstrings above."""
    lines = [
        f"Write one Python module that defines exactly one subclass of `{CONTRACT['base_class']}` "
        f"(import it with `from {CONTRACT['base_module']} import {CONTRACT['base_class']}`).",
        f"Constructor: `def __init__({', '.join(CONTRACT['constructor']['params'])})` and call "
        "`super().__init__(toolkit)` first.",
    ]
    for name, spec in CONTRACT["methods"].items():
        method = getattr(MemoryDesign, name)
        kind = "async def" if spec["async"] else "def"
        lines.append(f"`{kind} {name}({', '.join(spec['params'])}) -> {spec['returns']}`: "
                     f"{inspect.getdoc(method)}")
    lines.append("Toolkit: " + (inspect.getdoc(Toolkit) or ""))
    lines.append("Toolkit.llm.complete: " + (inspect.getdoc(LLM.complete) or "")
                 + " Signature: `await self.toolkit.llm.complete(prompt, system=None, json_mode=False, "
                 "max_tokens=512, temperature=0.0) -> str`.")
    lines.append("Toolkit.embed: `await self.toolkit.embed(list_of_texts) -> list[list[float]]` (unit vectors).")
    lines.append("Task fields: " + (inspect.getdoc(Task) or ""))
    lines.append("Episode fields: " + (inspect.getdoc(Episode) or ""))
    lines.append(f"The agent reads at most {CONTRACT['max_memory_chars']} characters of the returned text.")
    return "\n\n".join(lines)
