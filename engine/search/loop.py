"""The evolve loop: seed the archive, then select -> propose -> validate -> evaluate -> archive, step by step.

Steady state: up to ``config.concurrency`` evaluations are in flight at once (:mod:`engine.search.inflight`);
a new step is selected, proposed and submitted whenever one finishes, and every result is archived as it
comes in. With one in flight the run is the serial one: each step is archived before the next is selected.
A proposal that needs a result still in flight (no design can be a parent yet) waits for it.

Every state change goes to the archive first, so a run killed at any moment resumes with nothing lost and
nothing counted twice: a step is done once its ``step_done`` event is recorded, in the same transaction as its
design's result; an interrupted step reuses its recorded parent selection and the design it archived;
evaluations left ``running`` (those that were in flight) are re-run once each, on their own rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from archive import Archive
from archive.selection import ParentSelector
from engine.audit.static import static_audit
from engine.audit.verdict import full_verdict
from engine.code.descriptors import code_vector
from engine.code.genome import Genome
from engine.code.validate import validate
from engine.config import EvolveConfig
from engine.cost.governor import CostGovernor
from engine.search.evalcache import EvalCache
from engine.search.evaluator import HELDOUT, VALIDATION, Evaluator
from engine.search.heldout import heldout_document, write_heldout
from engine.search.inflight import Flight, InFlight
from engine.search.meta_agent import MetaAgent
from engine.search.propose import EngineError, NeedsResults, Proposing
from harness.agents.prompts import memory_notes
from sandbox import model_health
from sandbox.outcome import Outcome


def load_seeds(seeds_dir: Path) -> list[Genome]:
    """The hand-crafted baselines in ``seeds_dir`` (``*.py``, each named by its file), validated.

    Raises EngineError for an empty directory, an unreadable file or a seed that fails validation."""
    files = sorted(p for p in Path(seeds_dir).glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise EngineError(f"no seed designs (*.py) in {seeds_dir}")
    seeds = []
    for path in files:
        try:
            genome = Genome.from_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise EngineError(f"cannot read the seed {path}: {exc}") from exc
        report = validate(genome.source)
        if not report.ok:
            raise EngineError(f"seed {path} fails validation:\n{report.text()}")
        seeds.append(Genome.from_text(genome.source, name=path.stem, operator="seed"))
    return seeds


class SearchClock:
    """Minutes a run has spent seeding and stepping, across resumes (kept in the archive's meta table)."""

    def __init__(self, archive: Archive):
        self.archive = archive
        self.before = float(archive.get_meta("search_seconds", 0.0))
        self.started = time.monotonic()

    def minutes(self) -> float:
        return (self.before + time.monotonic() - self.started) / 60

    def save(self) -> None:
        self.archive.set_meta("search_seconds", round(self.minutes() * 60, 3))


@dataclass
class RunOutcome:
    """What :meth:`Evolution.run` found: why it stopped early (None: all steps ran), the held-out table's
    designs (seeds first) and the report's path."""

    stopped: str | None
    heldout: list
    report: Path | None


class _LazyChat:
    """A chat client that starts the meta model only when the meta agent first speaks."""

    def __init__(self, models):
        self.models = models

    def chat(self, *args, **kwargs) -> str:
        return self.models.chat.chat(*args, **kwargs)


class Evolution(Proposing):
    def __init__(self, config: EvolveConfig, run_dir: Path, archive: Archive, evaluator: Evaluator, meta_models,
                 log: Callable[[str], None] = print, jobs=None):
        self.config, self.run_dir, self.archive, self.evaluator = config, Path(run_dir), archive, evaluator
        if jobs is None:  # the default executor: evaluations run here, through this run's Evaluator
            from engine.search.executors import job_executor

            jobs = job_executor("local", config, run_dir, evaluator=evaluator, workers=config.concurrency)
        self.jobs = jobs  # an engine.search.executors.JobExecutor
        #: the evaluations submitted and not yet archived (at most config.concurrency)
        self.flights = InFlight(jobs, config.concurrency)
        #: reports of evaluations computed before, in any run (None: every evaluation runs)
        self.cache = EvalCache.open() if config.eval_cache else None
        self.meta_models = meta_models
        self.log = log
        #: money: what the run spends (the archive's ``cost`` events), its estimate and ``budget_usd``
        self.cost = CostGovernor(config, archive, evaluator=evaluator, meta_models=meta_models, log=log)
        #: the task model's replies by kind (ok, empty, truncated, refused), from every evaluation's broker usage
        #: (local or Ray): a model that answers nonsense stops the run instead of being scored
        self.health = model_health.ModelHealth()
        #: time.monotonic() after which the meta agent starts no further fix round (the run's time budget)
        self.deadline: float | None = None
        #: the run's clock (set by :meth:`run` / :meth:`steps`); saved whenever a step is archived
        self.clock: SearchClock | None = None
        c = config
        self.meta = MetaAgent(self.cost.metered_chat(_LazyChat(meta_models)), fix_rounds=c.fix_rounds,
                              temperature=c.meta.temperature, max_tokens=c.meta.max_tokens, edit_mode=c.meta_edit,
                              agent_notes=memory_notes(c.eval.agent))
        self.selector = ParentSelector(c.selection, seed=c.seed, tau=c.tau, alpha=c.alpha,
                                       benchmark=c.eval.benchmark, split=c.eval.split, exclude_suspicious=False,
                                       margin=1.0 / (c.eval.n_test * c.eval.repeats))
        self.selector.restore(archive)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, design_id: str, split: str) -> None:
        """Evaluate a design on ``split`` unless that is already done (re-runs an interrupted evaluation) and
        wait for it, and for every other evaluation in flight, to be archived."""
        self.submit(design_id, split)
        self.drain()

    def submit(self, design_id: str, split: str, *, role: str = "", step: int | None = None) -> bool:
        """Start evaluating a design on ``split``: recorded ``running`` (an interrupted evaluation's own row is
        reused), then handed to the executor. Waits for a free slot first, archiving what finishes meanwhile.
        False when nothing started: the evaluation is done already or in flight. ``role``/``step``: what
        archiving its result also does (:class:`~engine.search.inflight.Flight`)."""
        if self.flights.find(design_id, split):
            return False
        existing = self.archive.evaluations(design_id, benchmark=self.config.eval.benchmark, split=split)
        if any(e.status == "done" for e in existing):
            return False
        while self.flights.full:
            self.archive_finished(block=True)
        ev = self._begin(design_id, split, [e for e in existing if e.status == "running"])
        design = self.archive.get(design_id)
        genome = Genome.from_text(design.source, name=design.name)
        job = self.jobs.job(str(ev.id), genome.id, self.evaluator.job_spec(genome, split), split)
        flight = Flight(ev.id, design_id, split, job, role, step)
        cached = self.cache.get(job.spec) if self.cache else None
        if cached is not None:
            self.flights.answer(flight, cached)
        else:
            self.flights.submit(flight)
        return True

    def _begin(self, design_id: str, split: str, running: list):
        """Record the evaluation as running (restarting an interrupted one) and its design as evaluating, in
        one transaction; returns the evaluation."""
        with self.archive.transaction():
            ev = (self.archive.restart_evaluation(running[0].id) if running
                  else self.archive.begin_evaluation(design_id, self.config.eval.benchmark, split,
                                                     mode=self.config.eval.mode))
            if self.archive.get(design_id).status != "evaluating":
                self.archive.set_status(design_id, "evaluating")
        return ev

    def archive_finished(self, block: bool = False) -> int:
        """Archive every evaluation that finished (``block``: wait for at least one while any is in flight);
        returns how many were archived."""
        finished = self.flights.wait(block)
        for flight, done in finished:
            self._archive(flight, done)
        return len(finished)

    def drain(self) -> None:
        """Wait until every evaluation in flight is archived."""
        while len(self.flights):
            self.archive_finished(block=True)

    def _archive(self, flight: Flight, done) -> None:
        """Record a finished evaluation: its result or failure, the design's status and audit, the tokens its
        job used and, for a step's design, ``step_done``, all in one transaction. An executor or
        infrastructure failure raises :class:`EngineError` and records nothing (the row stays ``running``:
        a resumed run re-runs it)."""
        design = self.archive.get(flight.design_id)
        report, out = done.report, done.job.out_dir
        if report is None:
            raise EngineError(f"the evaluation of {design.name} ({design.id}) was "
                              f"{'lost' if done.lost else 'failed'} on the executor: {done.error}. "
                              f"Resume with --resume {self.run_dir}")
        if report.outcome is Outcome.INFRA_ERROR:
            raise EngineError(f"infrastructure failure while evaluating {design.name} ({design.id}): "
                              f"{report.detail}. Fix it, then resume with --resume {self.run_dir}")
        if self.cache and done.where != "cache":
            self.cache.put(done.job.spec, report)
        audit, reasons = full_verdict(list(report.events), report.outcome.value, static_audit(design.source))
        with self.archive.transaction():
            if report.outcome is Outcome.OK and report.result is not None:
                self.archive.record_result(flight.evaluation_id, report.result.model_dump(), artefacts=[str(out)])
                self.archive.set_status(design.id, "evaluated")
            else:
                reason = f"{report.outcome.value}: {report.detail}"[:500]
                self.archive.finish_evaluation(flight.evaluation_id, outcome=report.outcome.value, error=reason,
                                               wall_s=report.wall_s, artefacts=[str(out)],
                                               usage={"broker": report.broker_usage} if report.broker_usage
                                               else None)
                self.archive.set_status(design.id, "failed", reason)
            self.archive.set_audit(design.id, audit, "; ".join(reasons) or None)
            self._add_tokens(sum(report.broker_usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens")))
            self.cost.record_evaluation(flight.evaluation_id, design.id, flight.split, report.broker_usage,
                                        cached=done.where == "cache")
            if flight.step is not None:
                self.archive.record_event("step_done", {"design": design.id}, step=flight.step)
        self.health.add_usage(self.config.task.model, report.broker_usage or {})
        if report.result is not None and (steps := model_health.parsed_steps(report.result.episodes)):
            self.health.add_parsing(self.config.task.model, *steps)
        if broken := model_health.check(self.health):
            raise EngineError(f"{broken}. The run stopped before scoring more of it; fix the task model (endpoint, "
                              f"model name, max_tokens), then resume with --resume {self.run_dir}")
        if flight.role == "seed":
            self.log(f"seed {design.name:22} {self._score_text(design.id)}")
        if flight.step is not None:
            self._step_finished(flight.step, design.id)

    def _add_tokens(self, n: int) -> None:
        if n:
            self.archive.set_meta("tokens_used", int(self.archive.get_meta("tokens_used", 0)) + int(n))

    def tokens_used(self) -> int:
        return int(self.archive.get_meta("tokens_used", 0))

    # ------------------------------------------------------------------ seeds
    def seed(self, seeds: list[Genome]) -> None:
        """Archive and evaluate the hand-crafted baselines (already validated: :func:`load_seeds`), once: a
        resumed run keeps the seeds it started with, even if the files changed since. Up to ``concurrency``
        seeds are evaluated at once; all are archived when this returns."""
        seeded = bool(self.archive.get_meta("seeded", False))
        for genome in [] if seeded else seeds:
            if genome.id not in self.archive:
                self.archive.add_design(genome.id, genome.source, proposer="seed", name=genome.name, generation=0,
                                        step=0, code_vector=code_vector(genome.source))
            if genome.name == "no_memory" and self.archive.baseline != genome.id:
                self.archive.set_baseline(genome.id)
        if self.archive.baseline is None:
            raise EngineError("the seeds have no no_memory design: the normalised reward needs that baseline")
        self.archive.set_meta("seeded", True)
        baseline = self.archive.baseline
        for design in sorted(self.archive.designs(), key=lambda d: (d.id != baseline, d.created_at)):
            if design.proposer != "seed" or not self._admit(design.id, self.config.eval.split):
                continue
            if not self.submit(design.id, self.config.eval.split, role="seed") \
                    and not self.flights.find(design.id, self.config.eval.split):
                self.log(f"seed {design.name:22} {self._score_text(design.id)}")  # evaluated before a resume
        self.drain()

    def _admit(self, design_id: str, split: str) -> bool:
        """Whether ``budget_usd`` lets this evaluation start, decided once a slot is free (engine.cost.governor)."""
        while self.flights.full:
            self.archive_finished(block=True)
        return self.cost.admit(design_id, split, len(self.flights))

    def _score_text(self, design_id: str) -> str:
        d = self.archive.get(design_id)
        s = d.score_on(self.config.eval.benchmark, self.config.eval.split)
        if s is None:
            return f"status {d.status} ({(d.status_reason or '')[:80]}) audit {d.audit}"
        return f"score {s.score:.3f} ± {s.stderr:.3f} reward {s.reward if s.reward is not None else float('nan'):+.3f} " \
               f"audit {d.audit}"

    def recover(self) -> None:
        """Re-submit every evaluation a crash left ``running`` (each finishes once, on its original row); a
        step's design finishes its step when archived. Returns once they are submitted (not archived)."""
        for ev in self.archive.running_evaluations():
            if self.flights.find(ev.design_id, ev.split):
                continue
            self.log(f"re-running the interrupted evaluation of {self.archive.get(ev.design_id).name} ({ev.split})")
            step = self._step_of(ev.design_id, ev.split)
            self.submit(ev.design_id, ev.split, role="step" if step else "", step=step)

    def _step_of(self, design_id: str, split: str) -> int | None:
        """The unfinished step whose design this is, when ``split`` is the one steps are evaluated on."""
        design = self.archive.get(design_id)
        if design.proposer == "seed" or split != self.config.eval.split or not design.step:
            return None
        return None if self.archive.events("step_done", step=design.step) else design.step

    # ------------------------------------------------------------------ the whole run
    def run(self, seeds: list[Genome]) -> RunOutcome:
        """Seed, step until the step count or a budget stops it, evaluate the held-out table, write the report.
        Progress goes to ``log``; what the run found comes back as a :class:`RunOutcome`."""
        clock = self.clock = SearchClock(self.archive)
        self.seed(seeds)
        self.log("\n".join(self.cost.estimate_lines()))
        clock.save()
        self.refresh_report()
        self.recover()
        stopped = self.steps(clock)
        table = self.heldout_phase()
        return RunOutcome(stopped=stopped, heldout=table, report=self.refresh_report())

    def stop_reason(self, clock: SearchClock) -> str | None:
        """Why no further step may start (a budget is used up), or None."""
        c = self.config
        if c.budget_tokens is not None and self.tokens_used() >= c.budget_tokens:
            return f"token budget reached ({self.tokens_used()} >= {c.budget_tokens})"
        if c.budget_minutes is not None and clock.minutes() >= c.budget_minutes:
            return (f"time budget reached ({clock.minutes():.1f} >= {c.budget_minutes:g} minutes of seeding and "
                    f"steps) after {self.steps_done()} of {c.steps} steps")
        return self.cost.stop_reason(len(self.flights))  # budget_usd (engine.cost.governor)

    def steps(self, clock: SearchClock) -> str | None:
        """Run steps until ``config.steps`` are done or a budget stops them; returns the budget's reason.

        Steady state: while fewer than ``concurrency`` evaluations are in flight and a budget allows, the next
        step (first those a crash interrupted, in order) is selected, proposed and submitted; results are
        archived as they finish. A budget stops new steps; those in flight still finish (the overshoot is at
        most what is in flight)."""
        self.clock = clock
        backlog = self._unfinished_steps()
        upcoming = max(self.archive.last_step() or 0, 0) + 1
        stopped = None
        while True:
            self.archive_finished(block=False)
            step = None
            if stopped is None and not self.flights.full:
                step = backlog[0] if backlog else upcoming if upcoming <= self.config.steps else None
                stopped = self.stop_reason(clock) if step is not None else None
            if step is not None and stopped is None:
                try:
                    self._start(step, clock)
                except NeedsResults:
                    self.archive_finished(block=True)
                    continue
                if backlog:
                    backlog.pop(0)
                else:
                    upcoming += 1
            elif len(self.flights):
                self.archive_finished(block=True)
            else:
                return stopped

    def _start(self, step: int, clock: SearchClock) -> None:
        """Start ``step`` under the time budget's deadline for the meta agent."""
        if self.config.budget_minutes is not None:
            self.deadline = time.monotonic() + (self.config.budget_minutes - clock.minutes()) * 60
        self.start_step(step)

    def _unfinished_steps(self) -> list[int]:
        """Steps a crash interrupted (begun, not done, not in flight), in order, up to ``config.steps``."""
        done = {e.step for e in self.archive.events("step_done")}
        begun = {e.step for e in self.archive.events() if e.step} - done - self.flights.steps()
        return sorted(s for s in begun if 0 < s <= self.config.steps)

    def _step_finished(self, step: int, child: str | None) -> None:
        """Log an archived step, save the clock and refresh the report."""
        c = self.config
        best = self.archive.best(1, benchmark=c.eval.benchmark, split=c.eval.split)
        best_text = f"{best[0].name} {best[0].score:.3f}" if best and best[0].score is not None else "-"
        minutes = f" | {self.clock.minutes():.1f} min" if self.clock else ""
        self.log(f"step {step}/{c.steps}: " + (f"{self.archive.get(child).name}: {self._score_text(child)}"
                                               if child else "nothing new")
                 + f" | best {best_text} | archive {self.archive.count()} | tokens {self.tokens_used()}{minutes}"
                 + self.cost.progress() + self._health_text())
        if self.clock:
            self.clock.save()
        self.refresh_report()

    def heldout_phase(self, top: int = 3) -> list:
        """The final pick and the held-out table. First the ``eval.validation_top`` best evolved designs by
        fitness (never a hostile one) are re-evaluated on a fresh validation suite and ranked by their fitness
        and validation results pooled over tasks, so a design that was lucky on the fitness suite does not count
        as best; then every seed and the ``top`` best of that ranking are evaluated on the held-out suite, once
        each (up to ``concurrency`` at once), and ``heldout.json`` is written (:mod:`engine.search.heldout`).
        Returns their archive records, seeds first."""
        c = self.config.eval
        seeds = [d for d in self.archive.designs() if d.proposer == "seed"]
        evolved = [d for d in self.archive.best(len(self.archive.designs()), benchmark=c.benchmark, split=c.split)
                   if d.proposer != "seed" and d.audit != "hostile"
                   and self.archive.get(d.id).status in ("evaluated", "failed")]
        rank = None
        if c.validation_top and evolved:
            pool = evolved[:max(c.validation_top, top)]
            for d in pool:
                if self._admit(d.id, VALIDATION):
                    self.submit(d.id, VALIDATION)
            self.drain()
            rank = {d.id: self._pooled(d.id) for d in pool}
            evolved = sorted(pool, key=lambda d: -rank[d.id])
            self.log("validation: " + ", ".join(f"{self.archive.get(i).name} {v:.3f}" for i, v in
                                                 sorted(rank.items(), key=lambda kv: -kv[1])[:top]))
        evolved = evolved[:top]
        for d in seeds + evolved:
            if self.archive.get(d.id).status in ("evaluated", "failed"):
                if self._admit(d.id, HELDOUT):
                    self.submit(d.id, HELDOUT)
        self.drain()
        designs = [self.archive.get(d.id) for d in seeds + evolved]
        successes = {}
        for d in designs:
            done = [e for e in self.archive.evaluations(d.id, benchmark=c.benchmark, split=HELDOUT)
                    if e.status == "done" and e.successes]
            if done:
                successes[d.id] = done[-1].successes
        doc = heldout_document(self.config, designs, successes, HELDOUT, rank=rank)
        write_heldout(self.run_dir, self.cost.annotate_heldout(doc))
        return designs

    def _pooled(self, design_id: str) -> float:
        """A design's success rate over its fitness and validation tasks together (a failed or missing
        validation evaluation counts its tasks as failures)."""
        c, design = self.config.eval, self.archive.get(design_id)
        fit, val = design.score_on(c.benchmark, c.split), design.score_on(c.benchmark, VALIDATION)
        n_fit = len(fit.successes or {}) if fit else 0
        n_val = (c.validation_n_test or c.heldout_n_test or c.n_test) * c.repeats
        wins = (fit.score * n_fit if fit else 0.0) + (val.score * n_val if val else 0.0)
        return wins / max(1, n_fit + n_val)

    def refresh_report(self) -> Path | None:
        """Rewrite runs/<id>/report.html; a report problem is logged, never fatal to the run."""
        from engine.report.page import ReportError, write_report

        try:
            return write_report(self.run_dir)
        except (ReportError, OSError) as exc:
            self.log(f"warning: the report could not be written: {exc}")
            return None

    # ------------------------------------------------------------------ steps
    def _health_text(self) -> str:
        """`` | task replies: 3 empty, 1 truncated`` once the task model gave a bad reply, else nothing."""
        bad = [f"{n} {kind}" for counts in self.health.counts().values() for kind, n in counts.items()
               if kind != "ok" and n]
        bad += [f"{c['unparsed']} unparsed" for c in self.health.parsing().values() if c["unparsed"]]
        return f" | task replies: {', '.join(bad)}" if bad else ""

    def steps_done(self) -> int:
        return len(self.archive.events("step_done"))

    def run_step(self, step: int) -> str | None:
        """One step, waited for; returns the id of the design it evaluated (None when it produced nothing
        new)."""
        child = self.start_step(step)
        self.drain()
        return child

    def start_step(self, step: int) -> str | None:
        """Select -> propose -> submit one step; returns its design's id (None: nothing new, and the step is
        done). A step a crash interrupted reuses what it recorded: its parents, its proposal, its design.
        Raises :class:`NeedsResults` when no parent can be selected before an evaluation in flight ends."""
        child_id, proposed = self._recorded_child(step)
        if not proposed:
            child_id = self._propose(step)
        split = self.config.eval.split
        if child_id is not None and (self.submit(child_id, split, role="step", step=step)
                                     or self.flights.find(child_id, split)):
            return child_id
        self.archive.record_event("step_done", {"design": child_id}, step=step)
        self._step_finished(step, child_id)
        return child_id

    def _recorded_child(self, step: int) -> tuple[str | None, bool]:
        """What an interrupted ``step`` already proposed: ``(design id or None, True)``, or ``(None, False)``
        when it proposed nothing yet."""
        proposals = self.archive.events("propose", step=step)
        if proposals:
            return proposals[-1].payload.get("design"), True
        pending = [d for d in self.archive.designs(("proposed", "evaluating")) if d.step == step]
        if pending:  # archived by an older engine that recorded the proposal apart from its design
            return pending[-1].id, True
        return None, False
