"""Prompt templates of the task agent, loaded by name (``load_prompt("step")``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path


def prompt_loader(directory: Path) -> Callable[[str], str]:
    """A cached ``load_prompt(name)`` reading ``directory/NAME.txt`` (raises FileNotFoundError naming it)."""

    @cache
    def load_prompt(name: str) -> str:
        path = directory / f"{name}.txt"
        if not path.exists():
            raise FileNotFoundError(f"no prompt named {name!r} in {directory}")
        return path.read_text(encoding="utf-8")

    return load_prompt


load_prompt = prompt_loader(Path(__file__).parent)


def memory_notes(agent: str) -> str:
    """What the task agent ``agent`` makes of a design's retrieved text: shown to the meta agent, so that it
    designs for the reader it has. The built-in agents' notes are ``reads_<agent>.txt`` here; any other agent
    (a plug-in) describes itself (:func:`harness.agents.factory.reads_memory`)."""
    if (Path(__file__).parent / f"reads_{agent}.txt").is_file():
        return load_prompt(f"reads_{agent}").strip()
    from harness.agents.factory import reads_memory

    return reads_memory(agent)
