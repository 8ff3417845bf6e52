"""The Meta Agent (LLM): analyse a parent design -> plan (JSON) -> implement -> verify, with a bounded fix loop.

Two edit modes: ``"patch"`` (the default) asks the model for only the changed or new definitions and merges
them into the design with :func:`engine.code.patch.apply_patch` (a fix is merged into the failed attempt, or into
the parent when the attempt has no code), which fits a small local model's output budget; ``"rewrite"`` asks
for the whole module. Every attempt (broken or not) is returned, so the caller can archive both the broken
design and its fix.
Verification = the validator (libcst contract + safety policy + ruff) and, when given, a smoke evaluation
callback that returns an error text (traceback) or None.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.code.genome import Genome, GenomeError, design_class_name
from engine.code.patch import PatchError, apply_patch
from engine.code.validate import ValidationReport, policy_text, validate
from engine.search.prompts import load_prompt
from harness.design import CONTRACT, contract_text
from harness.errors import ModelError

#: How the model edits a design: only the changed definitions (merged), or the whole module.
EDIT_MODES = ("patch", "rewrite")


@dataclass
class Attempt:
    """One implementation attempt: its genome (None when no code could be extracted, or a patch could not be
    merged: ``patch_error``) and what failed."""

    genome: Genome | None
    report: ValidationReport | None = None
    smoke_error: str | None = None
    patch_error: str | None = None
    reply: str = ""  # the model's raw reply (kept for the logs when no genome came out of it)

    @property
    def ok(self) -> bool:
        return self.genome is not None and self.report is not None and self.report.ok and not self.smoke_error

    def problems(self) -> str:
        if self.genome is None and self.patch_error:
            return f"The reply could not be merged into the design: {self.patch_error}"
        if self.genome is None:
            return "No Python code block was found in the reply."
        if self.report is not None and not self.report.ok:
            return self.report.text()
        return f"The design raised during a smoke evaluation:\n{self.smoke_error}"


@dataclass
class Proposal:
    analysis: str = ""
    plan: str = ""
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Genome | None:
        last = self.attempts[-1] if self.attempts else None
        return last.genome if last is not None and last.ok else None


class MetaAgent:
    """Drives a chat client (``harness.models.chat.ChatClient``) through analyse/implement/fix."""

    def __init__(self, chat, *, fix_rounds: int = 3, temperature: float = 0.7, max_tokens: int = 1500,
                 edit_mode: str = "patch", agent_notes: str = ""):
        if edit_mode not in EDIT_MODES:
            raise ValueError(f"edit_mode must be one of {', '.join(EDIT_MODES)}, not {edit_mode!r}")
        self.edit_mode = edit_mode
        self.agent_notes = agent_notes or "(not described)"
        self.chat = chat
        self.fix_rounds = fix_rounds
        self.temperature = temperature
        self.max_tokens = max_tokens

    def _ask(self, prompt: str, *, json_mode: bool = False, max_tokens: int | None = None) -> str:
        messages = [{"role": "system", "content": load_prompt("system").strip()},
                    {"role": "user", "content": prompt}]
        return self.chat.chat(messages, json_mode=json_mode, max_tokens=max_tokens or self.max_tokens,
                              temperature=self.temperature)

    def analyse(self, parent: Genome, *, score: float | None, baseline: float | None, benchmark: str,
                logs: str, example: str = "") -> tuple[str, str]:
        prompt = load_prompt("analyse").format(
            design_id=parent.id, score="n/a" if score is None else f"{score:.3f}", benchmark=benchmark,
            baseline="n/a" if baseline is None else f"{baseline:.3f}", source=parent.source, logs=logs,
            example=example, agent_notes=self.agent_notes)
        reply = self._ask(prompt, json_mode=True, max_tokens=600)
        try:
            data = json.loads(reply)
            analysis, plan = str(data.get("analysis", "")), str(data.get("plan", ""))
        except (ValueError, AttributeError):
            analysis, plan = "", reply.strip()
        return analysis, plan or "Improve retrieval relevance and store the successful action sequences."

    @property
    def _patch(self) -> bool:
        return self.edit_mode == "patch"

    def _implement(self, parent: Genome, plan: str) -> str:
        name = "implement_patch" if self._patch else "implement"
        prompt = load_prompt(name).format(contract=contract_text(), policy=policy_text(), plan=plan,
                                          agent_notes=self.agent_notes,
                                          source=parent.source, class_name=_class_name(parent.source))
        return self._ask(prompt)

    def _attempt(self, reply: str, parent: Genome, verify: Callable[[Genome], str | None] | None,
                 base: str | None = None) -> Attempt:
        """Verify the reply (patch mode: merged into ``base``, by default the parent's source)."""
        raw = reply
        if self._patch:
            try:
                reply = apply_patch(parent.source if base is None else base, reply)
            except PatchError as exc:
                return Attempt(genome=None, patch_error=str(exc), reply=raw)
        try:
            genome = Genome.from_text(reply, operator="meta", parents=(parent.id,))
        except GenomeError:
            return Attempt(genome=None, reply=raw)
        if not genome.source.strip():
            return Attempt(genome=None, reply=raw)
        attempt = Attempt(genome=genome, report=validate(genome.source), reply=raw)
        if attempt.report.ok and verify is not None:
            attempt.smoke_error = verify(genome)
        return attempt

    def propose(self, parent: Genome, *, score: float | None, baseline: float | None, benchmark: str,
                logs: str, example: str = "", verify: Callable[[Genome], str | None] | None = None,
                deadline: float | None = None, stop: Callable[[], bool] | None = None) -> Proposal:
        """Analyse, plan, implement, and fix up to ``fix_rounds`` times; no fix round starts after ``deadline``
        (a ``time.monotonic()`` value) or once ``stop()`` is true (the money budget). Raises ModelError when
        the model cannot be reached (the caller decides whether that ends the step)."""
        proposal = Proposal()
        proposal.analysis, proposal.plan = self.analyse(parent, score=score, baseline=baseline,
                                                        benchmark=benchmark, logs=logs, example=example)
        attempt = self._attempt(self._implement(parent, proposal.plan), parent, verify)
        proposal.attempts.append(attempt)
        for _ in range(self.fix_rounds):
            if attempt.ok or (deadline is not None and time.monotonic() >= deadline) or (stop and stop()):
                break
            if self._patch:
                base = attempt.genome.source if attempt.genome is not None else parent.source
                reply = self._ask(load_prompt("fix_patch").format(source=base, problems=attempt.problems(),
                                                                  class_name=_class_name(base)))
                attempt = self._attempt(reply, parent, verify, base=base)
            else:
                source = attempt.genome.source if attempt.genome is not None else "(no code)"
                reply = self._ask(load_prompt("fix").format(source=source, problems=attempt.problems()))
                attempt = self._attempt(reply, parent, verify)
            proposal.attempts.append(attempt)
        return proposal


def _class_name(source: str) -> str:
    return design_class_name(source) or f"Your{CONTRACT['base_class']}"


__all__ = ["EDIT_MODES", "Attempt", "MetaAgent", "ModelError", "Proposal"]
