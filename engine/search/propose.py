"""Proposing a step's child: select its parents, then a libcst operator or the meta agent writes the child, and
the design is archived together with its ``propose`` event (a resumed step finds both or neither).

:class:`Proposing` is the proposal half of :class:`engine.search.loop.Evolution` (which supplies ``config``,
``archive``, ``selector``, ``flights``, ``meta``, ``meta_models``, ``cost``, ``evaluator``, ``deadline``,
``log`` and ``_add_tokens``); the loop decides when a step starts, this module what it proposes.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

from engine.code.descriptors import code_vector
from engine.code.genome import Genome
from engine.code.mutate import OPERATORS
from engine.search.logs import load_result, summarise_result
from harness.errors import ModelError
from harness.protocol import stable_seed


def child_name(parent: str, operator: str, step: int, attempt: int | None = None) -> str:
    """A child's display name: its lineage's seed, the operator and the step (``trajectory_retrieval~mutate:
    constants@28``; a meta attempt adds ``.i``). Bounded, unlike a chain of every ancestor's operator; the
    archive keeps the lineage itself (parent ids)."""
    root = re.split(r"[~+>]", parent, maxsplit=1)[0]
    return f"{root}~{operator}@{step}" + (f".{attempt}" if attempt is not None else "")


class EngineError(Exception):
    """The run cannot go on (bad seeds, broken infrastructure); the message says what to do."""


class NeedsResults(Exception):
    """A proposal needs the result of an evaluation still in flight (no design can be a parent yet)."""


class Proposing:
    """Parent selection and proposals for the evolve loop (see the module docstring)."""

    def _parents(self, step: int) -> list[str]:
        recorded = self.archive.events("select", step=step)
        if recorded:
            return list(recorded[-1].payload["selected"])
        k = max(2, self.config.parents)
        k = min(k, len(self.selector.candidates(self.archive)))
        if k == 0 and len(self.flights):
            raise NeedsResults(f"step {step} waits for an evaluation in flight: no design can be a parent yet")
        if k == 0:
            raise EngineError(f"no design in {self.run_dir} can be a parent: none was evaluated successfully "
                              "(see the seeds' evaluations under evals/ and their status in the archive)")
        return [d.id for d in self.selector.select(self.archive, k=k, step=step)]

    def _propose(self, step: int) -> str | None:
        parents = self._parents(step)
        rng = random.Random(stable_seed(self.config.seed, "propose", step))
        use_meta = rng.random() < self.config.meta_share
        started = time.monotonic()
        expected = self._meta_seconds()
        if use_meta and self.deadline is not None and expected and started + expected > self.deadline:
            self.log(f"step {step}: a meta-agent step takes ~{expected / 60:.1f} min here, more than the time "
                     "budget has left; using a structural operator")
            self.archive.record_event("meta_skipped", {"expected_s": round(expected, 1)}, step=step)
            use_meta = False
        if use_meta:
            try:
                return self._propose_meta(step, parents[0], started)
            except ModelError as exc:
                self.cost.flush_pending()  # what it spent before the error stays on the ledger
                self.log(f"step {step}: meta model unavailable ({str(exc)[:200]}); using a structural operator")
                self.archive.record_event("meta_error", {"error": str(exc)[:2000]}, step=step)
        return self._propose_structural(step, parents, rng)

    def _propose_structural(self, step: int, parents: list[str], rng: random.Random) -> str | None:
        genomes = [Genome.from_text(self.archive.get(p).source, name=self.archive.get(p).name) for p in parents]
        names = sorted(self.config.operators or OPERATORS)
        rng.shuffle(names)
        for name in names:
            op = OPERATORS[name]
            if op.arity > len(genomes):
                continue
            child = op(genomes[: op.arity], rng)
            if child is None or child.id in self.archive:
                continue
            used = list(parents[: op.arity])
            with self.archive.transaction():  # the design and its proposal together: a resume finds both
                self.archive.add_design(child.id, child.source, proposer=name, parents=used, step=step,
                                        name=child_name(genomes[0].name, name, step),
                                        code_vector=code_vector(child.source))
                self.archive.record_event("propose", {"design": child.id, "operator": name, "parents": used},
                                          step=step)
            return child.id
        self.archive.record_event("propose", {"design": None, "operator": "none-applicable"}, step=step)
        return None

    def _propose_meta(self, step: int, parent_id: str, started: float) -> str | None:
        parent = self.archive.get(parent_id)
        genome = Genome.from_text(parent.source, name=parent.name)
        result = None
        for path in parent.artefacts:
            candidate = load_result(Path(path) / "result.json")
            if candidate is not None:
                result = candidate
        s = parent.score_on(self.config.eval.benchmark, self.config.eval.split)
        base = self.archive.get(self.archive.baseline).score_on(self.config.eval.benchmark, self.config.eval.split)
        before = self.meta_models.meter.total_tokens()
        verify = self.cost.metered_verify(self.evaluator.smoke_error if self.config.smoke_test else None)
        self.cost.begin_proposal(step)
        proposal = self.meta.propose(genome, score=s.score if s else None, baseline=base.score if base else None,
                                     benchmark=self.config.eval.benchmark,
                                     logs=summarise_result(result, rng=random.Random(step)),
                                     example=self._improvement_example(parent), verify=verify,
                                     deadline=self.deadline, stop=self.cost.meta_should_stop)
        tokens = self.meta_models.meter.total_tokens() - before
        with self.archive.transaction():  # the whole proposal at once: a resume finds all of it or none
            design = self._archive_proposal(step, parent, proposal, tokens, started)
            self.cost.end_proposal(design)
            return design

    def _archive_proposal(self, step: int, parent, proposal, tokens: int, started: float) -> str | None:
        """Archive a meta-agent proposal (its tokens, every attempt, the ``propose`` event); returns the id of
        its valid design, if any."""
        self._add_tokens(tokens)
        final_id = None
        for i, attempt in enumerate(proposal.attempts):
            if attempt.genome is None or attempt.genome.id in self.archive:
                continue
            g = attempt.genome
            self.archive.add_design(g.id, g.source, proposer="meta_agent", parents=[parent.id], step=step,
                                    name=child_name(parent.name, "meta", step, i), analysis=proposal.analysis,
                                    plan=proposal.plan, code_vector=code_vector(g.source),
                                    tokens={self.config.meta.model: {"total_tokens": tokens}} if i == 0 else None,
                                    wall_s=time.monotonic() - started if i == 0 else 0.0)
            if attempt.ok:
                final_id = g.id
            else:
                if attempt.report is not None:
                    self.archive.set_findings(g.id, [f.__dict__ for f in attempt.report.findings])
                self.archive.set_status(g.id, "invalid", attempt.problems()[:1000])
        # replies that gave no design at all (unparsable, unmergeable) are kept here, for the person reading
        unusable = [{"attempt": i, "problem": a.problems()[:500], "reply": a.reply[:2000]}
                    for i, a in enumerate(proposal.attempts) if a.genome is None]
        self.archive.record_event("propose", {"design": final_id, "operator": "meta_agent",
                                              "attempts": len(proposal.attempts), "unusable": unusable,
                                              "seconds": round(time.monotonic() - started, 1)}, step=step)
        return final_id

    def _meta_seconds(self) -> float | None:
        """The median duration of this run's earlier meta-agent proposals (None before the first)."""
        took = sorted(e.payload["seconds"] for e in self.archive.events("propose")
                      if e.payload.get("operator") == "meta_agent" and "seconds" in e.payload)
        return took[len(took) // 2] if took else None

    def _improvement_example(self, parent) -> str:
        if not parent.parents:
            return ""
        grand = self.archive.get(parent.parents[0])
        b, sp = self.config.eval.benchmark, self.config.eval.split
        ps, gs = parent.score_on(b, sp), grand.score_on(b, sp)
        if ps is None or gs is None:
            return ""
        return (f"## Example of an earlier change (its parent scored {gs.score:.3f}, the change scored "
                f"{ps.score:.3f})\nPlan that was applied: {parent.plan or parent.proposer}")
