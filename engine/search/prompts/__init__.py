"""Meta-agent prompt templates, loaded by name (``load_prompt("analyse")``)."""

from __future__ import annotations

from pathlib import Path

from harness.agents.prompts import prompt_loader

load_prompt = prompt_loader(Path(__file__).parent)
