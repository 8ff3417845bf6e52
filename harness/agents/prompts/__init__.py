"""Prompt templates of the task agent, loaded by name (``load_prompt("step")``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def load_prompt(name: str) -> str:
    return (Path(__file__).with_name(f"{name}.txt")).read_text(encoding="utf-8")
