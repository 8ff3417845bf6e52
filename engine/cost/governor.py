"""The cost governor of an evolve run: records what the run spends (:mod:`engine.cost.ledger`), estimates the
rest (:mod:`engine.cost.estimate`) and enforces ``budget_usd`` (``--budget-usd``).

**The cap.** Every model call of a run belongs to a unit of work that is never cut in the middle (an evaluation
whose half-played episodes would be thrown away, or a model reply half paid for), so the budget is enforced at
the points where new work starts, against what was spent plus what the work about to start is expected to cost
at most (the most expensive evaluation and meta-agent proposal of the run so far):

* no new **step** starts when the money spent, the evaluations in flight, the next step and the held-out
  evaluations still to come would pass the budget (the held-out table is reserved for: it is the run's result);
* no further meta-agent **fix round** starts when one more round (its largest call so far, and its smoke
  evaluation) would pass it;
* no **held-out evaluation** starts that would pass it (the table shows that design without a held-out score);
* evaluations in flight **finish** and are archived, paid and counted; a crash or Ctrl-C leaves them
  ``running``, and ``--resume`` re-runs them on their rows with every call already paid served from the run's
  cassette.

* no **seed evaluation** starts that would pass it (the first one by the prior estimate, the others calibrated
  by those that ran); a run that could not evaluate all its seeds starts no step, and ``--resume`` with a larger
  budget evaluates the rest.

Before anything is spent, :func:`preflight` prints the estimate and warns when the seeding may not fit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.config import ConfigError, EvolveConfig
from engine.cost.charge import Charge
from engine.cost.estimate import Estimator, RunEstimate, meta_steps
from engine.cost.ledger import (
    PENDING_KEY,
    Ledger,
    broker_charge,
    meter_charge,
    model_names,
    record_cost,
)
from engine.cost.prices import PriceError, PriceTable, fmt_usd, load_prices

HELDOUT = "heldout"  # engine.search.evaluator.HELDOUT (not imported: the loop imports this module)
VALIDATION = "validation"  # engine.search.evaluator.VALIDATION: paid in the held-out phase


def used_models(config: EvolveConfig) -> list[str]:
    """The priced names of the models a run may call: the task model (the LLM agent, or any design's
    ``toolkit.llm``), the embedding model, and the meta model when some step may use it."""
    names = model_names(config)
    used = [names["task"], names["embed"]]
    if config.meta_share > 0 and config.steps > 0:
        used.append(names["meta"])
    return used


def open_prices(config: EvolveConfig) -> PriceTable:
    """The run's price table; :class:`ConfigError` when it cannot be read, or when ``budget_usd`` is set and a
    model the run uses has no price."""
    try:
        prices = load_prices(config.prices)
    except PriceError as exc:
        raise ConfigError(str(exc)) from exc
    unknown = prices.unknown(used_models(config))
    if unknown and config.budget_usd is not None:
        raise ConfigError(
            f"--budget-usd needs a price for every model the run calls; the price table ({prices.source}) has none "
            f"for {', '.join(unknown)}. Add a table models.\"{unknown[0]}\" with `input` and `output` (USD per 1M "
            "tokens) to it, or point the config's `prices` (or ALMA_PRICES) at a table that has them")
    return prices


def preflight(config: EvolveConfig, seeds, run_dir: Path | None = None) -> list[str]:
    """The pre-run estimate as lines to print, computed before anything is spent (from the archive of a resumed
    run: calibrated). Raises :class:`ConfigError` for an unreadable price table or a model without a price under
    a budget."""
    prices = open_prices(config)
    ledger, steps_done, seeded = Ledger([]), set(), {}
    if run_dir is not None and (Path(run_dir) / "archive.sqlite").is_file():
        from archive import Archive

        with Archive.open(run_dir, lock=False) as archive:
            ledger = Ledger.read(archive)
            steps_done = {e.step for e in archive.events("step_done")}
            seeded = {d.id: d.source for d in archive.designs() if d.proposer == "seed"}
    sources = seeded or {g.id: g.source for g in seeds}
    estimator = Estimator(config, prices, ledger, sources)
    estimate = estimator.run(steps_done, config.budget_usd)
    lines = estimate.lines(prices)
    unknown = prices.unknown(used_models(config))
    if unknown:
        lines.append(f"  warning: no price for {', '.join(unknown)} in {prices.source}: their tokens are counted, "
                     "their cost is unknown (add them to the table; see engine/cost/prices.toml)")
    budget = config.budget_usd
    if budget is not None:
        spent = ledger.total().cost(prices).usd
        evaluated = ledger.evaluations()
        seeding_left = sum((estimator.evaluation(d, conservative=True) for d in sources if d not in evaluated),
                           Charge()).cost(prices).usd
        if spent + seeding_left > budget:
            lines.append(f"  warning: evaluating the seeds may pass the budget (~{fmt_usd(seeding_left)} at most by "
                         f"the {estimate.basis.split(',')[0]} estimate): a seed whose evaluation would pass it is "
                         "not started, and then no step either")
        elif spent + estimate.remaining.cost(prices).usd > budget:
            lines.append(f"  the budget will stop the run early: the whole run is estimated at "
                         f"~{fmt_usd(estimate.total.cost(prices).usd)}")
    return lines


class _Proposal:
    def __init__(self, step: int, meter: Charge, smoke: Charge):
        self.step, self.meter, self.smoke = step, meter, smoke
        self.largest_call = Charge()


class CostGovernor:
    """The evolve loop's cost hooks. ``evaluator`` (for smoke evaluations' usage) and ``meta_models`` (their
    ``meter``) may be None."""

    def __init__(self, config: EvolveConfig, archive, *, evaluator=None, meta_models=None,
                 log: Callable[[str], None] = print):
        self.config, self.archive, self.log = config, archive, log
        self.evaluator, self.meta_models = evaluator, meta_models
        try:
            self.prices = load_prices(config.prices)
        except PriceError as exc:
            raise ConfigError(str(exc)) from exc
        self.names = model_names(config)
        self.budget = config.budget_usd
        self.in_flight = 0
        self._proposal: _Proposal | None = None
        #: seeds whose evaluation the budget did not let start (no step may start then)
        self.cut_seeds: list[str] = []
        self.flush_pending()  # a proposal a crash cut short is paid for: on the ledger before anything else

    # ------------------------------------------------------------------ reading
    def ledger(self) -> Ledger:
        return Ledger.read(self.archive)

    def estimator(self, ledger: Ledger | None = None) -> Estimator:
        seeds = {d.id: d.source for d in self.archive.designs() if d.proposer == "seed"}
        return Estimator(self.config, self.prices, ledger or self.ledger(), seeds)

    def spent(self) -> Charge:
        """Everything paid so far, the proposal under way included (its pending record is the same money)."""
        return self.ledger().total(with_pending=False) + self._proposal_charge()

    def spent_usd(self) -> float | None:
        return self.spent().usd(self.prices)

    def estimate(self) -> RunEstimate:
        steps_done = {e.step for e in self.archive.events("step_done")}
        return self.estimator().run(steps_done, self.budget)

    # ------------------------------------------------------------------ evaluations
    def record_evaluation(self, evaluation_id: int, design_id: str, split: str, broker_usage: dict,
                          *, cached: bool = False) -> None:
        """Put an archived evaluation's cost on the ledger (inside the transaction that archives it)."""
        ev = self.archive.evaluation(evaluation_id)
        design = self.archive.get(design_id)
        restarted = ev.runs > 1
        charge = broker_charge(broker_usage, self.names, include_replayed=restarted)
        phase = HELDOUT if split in (HELDOUT, VALIDATION) else "seeding" if design.proposer == "seed" else "steps"
        record_cost(self.archive, charge, what="evaluation", step=design.step, phase=phase, design=design_id,
                    split=split, evaluation=evaluation_id, cached=cached, restarted=restarted)

    # ------------------------------------------------------------------ meta-agent proposals
    def _meter(self) -> Charge:
        meter = getattr(self.meta_models, "meter", None)
        return meter_charge(meter.snapshot(), self.names, embedded=not self.config.meta.base_url) if meter \
            else Charge()

    def _smoke(self) -> Charge:
        usage = getattr(self.evaluator, "smoke_usage", None) or {}
        return broker_charge(usage, self.names)

    def _proposal_charge(self) -> Charge:
        p = self._proposal
        return (self._meter() - p.meter) + (self._smoke() - p.smoke) if p else Charge()

    def begin_proposal(self, step: int) -> None:
        self.flush_pending()
        self._proposal = _Proposal(step, self._meter(), self._smoke())

    def _save_pending(self) -> None:
        if self._proposal is not None:
            self.archive.set_meta(PENDING_KEY, {"step": self._proposal.step,
                                                "lines": self._proposal_charge().to_json()})

    def metered_chat(self, chat):
        """``chat`` (an object with ``.chat(...)``) whose every call is kept on the archive as it is paid."""
        return _MeteredChat(chat, self)

    def metered_verify(self, verify):
        """``verify`` (the smoke evaluation) whose cost is kept on the archive as it is paid."""
        if verify is None:
            return None

        def run(genome):
            try:
                return verify(genome)
            finally:
                self._save_pending()

        return run

    def end_proposal(self, design_id: str | None) -> None:
        """Put the proposal's cost on the ledger (inside the transaction that archives the proposal)."""
        p, self._proposal = self._proposal, None
        if p is None:
            return
        charge = (self._meter() - p.meter) + (self._smoke() - p.smoke)
        record_cost(self.archive, charge, what="proposal", step=p.step, phase="steps", design=design_id)
        self.archive.set_meta(PENDING_KEY, None)

    def flush_pending(self) -> None:
        """Record a proposal that ended without being archived (a model error, a crash): it was paid for."""
        p, self._proposal = self._proposal, None
        pending = self.archive.get_meta(PENDING_KEY, None)
        charge = ((self._meter() - p.meter) + (self._smoke() - p.smoke)) if p else \
            Charge.from_json(pending.get("lines")) if isinstance(pending, dict) else Charge()
        step = p.step if p else pending.get("step") if isinstance(pending, dict) else None
        if not charge and pending is None:
            return
        with self.archive.transaction():
            if charge:
                record_cost(self.archive, charge, what="proposal", step=step, phase="steps", interrupted=True)
            self.archive.set_meta(PENDING_KEY, None)

    def _note_call(self, call: Charge) -> None:
        if self._proposal is not None:
            if call.cost(self.prices).usd >= self._proposal.largest_call.cost(self.prices).usd:
                self._proposal.largest_call = call
            self._save_pending()

    def meta_should_stop(self) -> bool:
        """Whether the budget forbids another fix round of the proposal under way."""
        if self.budget is None or self._proposal is None:
            return False
        est = self.estimator()
        round_cost = self._proposal.largest_call
        if self.config.smoke_test:
            round_cost = round_cost + est.evaluation(conservative=True).scaled(2 / max(1, _episodes(est)))
        need = round_cost + est.evaluation(conservative=True) + est.heldout_reserve() \
            + est.evaluation(conservative=True).scaled(self.in_flight)
        spent = self.spent()
        if self._passes(spent + need):
            self.log(f"step {self._proposal.step}: no further fix round: it would pass the USD budget "
                     f"({self._usd(spent)} spent of {fmt_usd(self.budget)})")
            self.archive.record_event("budget_usd", {"stopped": "fix_round", "spent_usd": spent.usd(self.prices)},
                                      step=None)
            return True
        return False

    # ------------------------------------------------------------------ gates
    def _passes(self, charge: Charge) -> bool:
        cost = charge.cost(self.prices)
        return bool(cost.unknown) or cost.usd > self.budget

    def _usd(self, charge: Charge) -> str:
        cost = charge.cost(self.prices)
        return fmt_usd(cost.usd) + (f" + unknown ({', '.join(cost.unknown)})" if cost.unknown else "")

    def stop_reason(self, in_flight: int = 0) -> str | None:
        """Why no further step may start under ``budget_usd`` (None: it may). ``in_flight``: evaluations under
        way, counted at the most an evaluation has cost."""
        self.in_flight = in_flight
        if self.budget is None:
            return None
        ledger = self.ledger()
        spent = ledger.total()
        if self.cut_seeds:
            return (f"USD budget reached while seeding: {len(self.cut_seeds)} seed(s) not evaluated "
                    f"({self._usd(spent)} spent of {fmt_usd(self.budget)}); resume with a larger --budget-usd")
        if self._passes(spent):
            return f"USD budget reached ({self._usd(spent)} spent of {fmt_usd(self.budget)})"
        est = self.estimator(ledger)
        upcoming = max(self.archive.last_step() or 0, 0) + 1
        step = est.step(upcoming, conservative=True)
        reserve = est.heldout_reserve()
        committed = est.evaluation(conservative=True).scaled(in_flight)
        if self._passes(spent + step + reserve + committed):
            kind = "meta-agent step" if meta_steps(self.config, [upcoming]) else "step"
            return (f"USD budget reached: {self._usd(spent)} spent of {fmt_usd(self.budget)}; the next {kind} "
                    f"(up to ~{self._usd(step)}) and the held-out table (~{self._usd(reserve)})"
                    + (f" with {in_flight} evaluation(s) under way" if in_flight else "") + " would pass it")
        return None

    def admit(self, design_id: str, split: str, in_flight: int = 0) -> bool:
        """Whether the evaluation of ``design_id`` on ``split`` (a seed's, or a held-out one) may start under the
        budget: True without a budget or when it is done already; else logged and recorded as skipped."""
        if self.budget is None:
            return True
        if any(e.status == "done" for e in self.archive.evaluations(design_id, split=split)):
            return True
        est = self.estimator()
        if split in (HELDOUT, VALIDATION):
            this = est.heldout_evaluation(design_id, conservative=True)
            committed = est.heldout_evaluation(conservative=True).scaled(in_flight)
        else:
            this = est.evaluation(design_id, conservative=True)
            committed = est.evaluation(conservative=True).scaled(in_flight)
        spent = self.spent()
        if not self._passes(spent + this + committed):
            return True
        design = self.archive.get(design_id)
        seed = split not in (HELDOUT, VALIDATION) and design.proposer == "seed"
        if seed:
            self.cut_seeds.append(design_id)
        self.log(f"{'seed' if seed else split} evaluation of {design.name} not started: ~{self._usd(this)} "
                 f"{'(by the prior estimate) ' if not est.calibrated else ''}would pass the USD budget "
                 f"({self._usd(spent)} spent of {fmt_usd(self.budget)})")
        self.archive.record_event("budget_usd", {"skipped": split, "design": design_id,
                                                 "spent_usd": spent.usd(self.prices)})
        return False

    # ------------------------------------------------------------------ display
    def progress(self) -> str:
        """`` | $0.012 spent, run ~$0.034`` for the step's log line (tokens when a price is unknown)."""
        estimate = self.estimate()
        spent, total = estimate.spent.cost(self.prices), estimate.total.cost(self.prices)
        if spent.unknown:
            return f" | {estimate.spent.tokens:,.0f} tokens paid (no price for {', '.join(spent.unknown)})"
        text = f" | {fmt_usd(spent.usd)} spent, run ~{fmt_usd(total.usd)}"
        return text + (f" of {fmt_usd(self.budget)}" if self.budget is not None else "")

    def estimate_lines(self) -> list[str]:
        return self.estimate().lines(self.prices)

    def annotate_heldout(self, doc: dict) -> dict:
        """Add each design's cost and the run's costs (per phase, per step) to the held-out document."""
        ledger = self.ledger()
        per_design, heldout = ledger.by_design(), ledger.by_design(HELDOUT)
        for row in doc.get("designs", []):
            c = per_design.get(row["id"], Charge())
            row["cost"] = {"usd": c.usd(self.prices), "tokens": round(c.tokens),
                           "heldout_usd": heldout.get(row["id"], Charge()).usd(self.prices)}
        doc["costs"] = costs_document(ledger, self.prices, self.budget)
        return doc


def costs_document(ledger: Ledger, prices: PriceTable, budget: float | None = None) -> dict:
    """The run's costs as JSON: total, per phase, per step, per model (dollars None where a price is unknown)."""
    total = ledger.total()

    def money(c: Charge) -> dict:
        return {"usd": c.usd(prices), "tokens": round(c.tokens)}

    models = {}
    for (role, model), line in sorted(total.lines.items()):
        price = prices.lookup(model)
        models[f"{role}:{model}"] = {"prompt_tokens": round(line.prompt), "completion_tokens": round(line.completion),
                                     "usd": None if price is None else price.usd(line.prompt, line.completion)}
    return {"prices": prices.source, "budget_usd": budget, **money(total),
            "unknown_prices": list(total.cost(prices).unknown),
            "phases": {p: money(c) for p, c in ledger.by_phase().items()},
            "steps": [{"step": s, **money(c)} for s, c in ledger.by_step().items()], "models": models}


def _episodes(est: Estimator) -> int:
    from engine.cost.estimate import episodes

    return episodes(est.config)


class _MeteredChat:
    """A meta chat client whose calls are put on the archive as pending cost when they return."""

    def __init__(self, inner, governor: CostGovernor):
        self.inner, self.governor = inner, governor

    def chat(self, *args, **kwargs) -> str:
        before = self.governor._meter()
        try:
            return self.inner.chat(*args, **kwargs)
        finally:
            self.governor._note_call(self.governor._meter() - before)
