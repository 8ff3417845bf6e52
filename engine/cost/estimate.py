"""How much a run will cost: a prior from the configuration, calibrated from what the run has spent.

Units of work, each a :class:`~engine.cost.charge.Charge` (tokens by role and model):

* an **evaluation** of a design (task-agent and design calls through the broker, embeddings included). A design
  evaluated before costs what it cost; an unseen one (a step's child) costs the mean of the evolved designs'
  evaluations so far, else of the seeds'. Before any evaluation ran, a prior from the protocol's size
  (:func:`prior_evaluation`). A held-out evaluation of a design is its fitness evaluation scaled by the ratio of
  the two protocols' episodes.
* a **meta-agent proposal** (analyse, implement, fix rounds, their smoke evaluations): the mean of this run's
  proposals, else :func:`prior_proposal`.
* a **step** = its proposal (for the steps the meta agent takes: that is decided by the run seed, so it is known
  beforehand) + the evaluation of its child. A structural proposal costs nothing.

``conservative=True`` takes the most expensive evaluation or proposal seen instead of the mean: what the budget's
gates use. The priors are rough on purpose (the constants below say what they assume); the first evaluations
replace them.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from engine.config import EvolveConfig
from engine.cost.charge import Charge, largest, mean
from engine.cost.ledger import Ledger, model_names
from engine.cost.prices import PriceTable, fmt_usd

#: characters per token assumed by the priors (code and English text for GPT-style tokenizers: 3-4)
CHARS_PER_TOKEN = 3.5
#: LLM task agent: characters of one step's prompt (system, goal, memory, 8 history entries, observation, actions)
#: and tokens of its reply (one command; at most the task model's max_tokens)
AGENT_PROMPT_CHARS = 4000
AGENT_COMPLETION_TOKENS = 24
#: a design's own LLM call (``toolkit.llm.complete``): prompt characters and reply tokens; one per episode
DESIGN_LLM_PROMPT_CHARS = 3000
DESIGN_LLM_COMPLETION_TOKENS = 300
#: a design's embedding calls per episode (retrieve + update) and the characters each one embeds
EMBED_CALLS_PER_EPISODE = 2
EMBED_CHARS_PER_CALL = 1500
#: characters of the evaluation logs and of the validator's findings in the meta agent's prompts
META_LOGS_CHARS = 6000
META_PROBLEMS_CHARS = 2000
#: the smoke evaluation's step limit (engine.search.evaluator.Evaluator.job_spec)
SMOKE_STEP_LIMIT = 10
#: designs of the held-out table besides the seeds (engine.search.loop.Evolution.heldout_phase's ``top``)
HELDOUT_TOP = 3
DEFAULT_STEP_LIMIT = 30


def _tokens(chars: float) -> float:
    return chars / CHARS_PER_TOKEN


def episodes(config: EvolveConfig, kind: str = "fitness") -> int:
    """Episodes of one evaluation: ``fitness``, ``heldout`` (the held-out suite's test tasks) or ``smoke``."""
    e = config.eval
    if kind == "smoke":
        return 2
    n_test = (getattr(e, "heldout_n_test", None) or e.n_test) if kind == "heldout" else e.n_test
    return e.n_train + n_test * e.repeats


def step_limit(config: EvolveConfig) -> int:
    return _step_limit(config.eval.benchmark)


@functools.cache
def _step_limit(benchmark: str) -> int:
    try:
        from harness.envs import get_benchmark

        return int(get_benchmark(benchmark).step_limit)
    except Exception:  # noqa: BLE001 - an estimate must not stop a run; the benchmark check is elsewhere
        return DEFAULT_STEP_LIMIT


def prior_evaluation(config: EvolveConfig, source: str = "", kind: str = "fitness") -> Charge:
    """What one evaluation of ``source`` is assumed to cost before any ran: the LLM agent calls the task model
    once per step (every step of every episode: an upper bound), a design that calls ``toolkit.llm`` once per
    episode, one that embeds twice per episode (the source is read for ``.llm`` and ``embed(``)."""
    names = model_names(config)
    n = episodes(config, kind)
    steps = SMOKE_STEP_LIMIT if kind == "smoke" else step_limit(config)
    charge = Charge()
    if config.eval.agent == "llm":
        calls = n * steps
        reply = min(AGENT_COMPLETION_TOKENS, config.task.max_tokens)
        charge.add("task", names["task"], calls * _tokens(AGENT_PROMPT_CHARS), calls * reply, calls)
    if ".llm" in source:
        charge.add("task", names["task"], n * _tokens(DESIGN_LLM_PROMPT_CHARS), n * DESIGN_LLM_COMPLETION_TOKENS, n)
    if "embed(" in source:
        calls = n * EMBED_CALLS_PER_EPISODE
        charge.add("embed", names["embed"], calls * _tokens(EMBED_CHARS_PER_CALL), 0, calls)
    return charge


def prior_proposal(config: EvolveConfig, parent_source: str) -> Charge:
    """A meta-agent proposal with every fix round used: analyse (600-token reply), implement and each fix round
    (``meta.max_tokens`` each), and a smoke evaluation per attempt when ``smoke_test`` is on."""
    from engine.code.validate import policy_text
    from engine.search.prompts import load_prompt
    from harness.agents.prompts import memory_notes
    from harness.design import contract_text

    patch = config.meta_edit == "patch"
    system, notes, src = len(load_prompt("system")), len(memory_notes(config.eval.agent)), len(parent_source)
    analyse = system + len(load_prompt("analyse")) + src + notes + META_LOGS_CHARS
    implement = (system + len(load_prompt("implement_patch" if patch else "implement")) + len(contract_text())
                 + len(policy_text()) + src + notes)
    fix = system + len(load_prompt("fix_patch" if patch else "fix")) + src + META_PROBLEMS_CHARS
    rounds = config.fix_rounds
    model = model_names(config)["meta"]
    charge = Charge().add("meta", model, _tokens(analyse), min(600, config.meta.max_tokens), 1)
    charge.add("meta", model, _tokens(implement) + rounds * _tokens(fix), (1 + rounds) * config.meta.max_tokens,
               1 + rounds)
    if config.smoke_test:
        charge = charge + prior_evaluation(config, parent_source, "smoke").scaled(1 + rounds)
    return charge


def meta_steps(config: EvolveConfig, steps) -> list[int]:
    """Which of ``steps`` the meta agent proposes (the loop draws it from the run seed: known beforehand; a
    step may still fall back to a structural operator, which only makes it cheaper)."""
    from harness.protocol import stable_seed

    return [s for s in steps if random.Random(stable_seed(config.seed, "propose", s)).random() < config.meta_share]


@dataclass
class RunEstimate:
    """A run's cost, spent and projected. Charges are tokens by role and model; :meth:`lines` prices them."""

    basis: str
    seeds: int
    seeding: Charge
    meta_proposal: Charge
    evaluation: Charge
    step: Charge
    meta_step_count: int
    steps: int
    heldout: Charge
    heldout_evaluations: int
    spent: Charge
    remaining: Charge
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> Charge:
        return self.spent + self.remaining

    def lines(self, prices: PriceTable) -> list[str]:
        def money(c: Charge) -> str:
            cost = c.cost(prices)
            text = fmt_usd(cost.usd)
            if cost.unknown:
                text = (f"{text} + unknown ({', '.join(cost.unknown)}: {cost.unknown_tokens:,.0f} tokens "
                        "without a price)") if cost.usd else "unknown (no price for " + ", ".join(cost.unknown) + ")"
            return text

        def row(label: str, c: Charge) -> str:
            return f"  {label:<44} ~{c.tokens:>13,.0f} tokens  ~{money(c)}"

        structural = self.steps - self.meta_step_count
        out = [f"cost estimate ({self.basis}; prices: {prices.source})",
               row(f"seeding ({self.seeds} evaluations)", self.seeding),
               row(f"one step (mean of {self.meta_step_count} meta + {structural} structural)", self.step),
               row("  a meta-agent proposal", self.meta_proposal),
               row("  an evaluation of a new design", self.evaluation),
               row(f"held-out table ({self.heldout_evaluations} evaluations)", self.heldout),
               row(f"whole run ({self.steps} steps, at most)", self.total)]
        if self.spent:
            out.append(row("spent so far", self.spent))
        if self.budget_usd is not None:
            out.append(f"  budget: {fmt_usd(self.budget_usd)} (no seed evaluation, step, fix round or held-out evaluation "
                       "starts that the estimate says would pass it; evaluations under way finish)")
        out.extend(f"  note: {n}" for n in self.notes)
        return out


class Estimator:
    """Estimates for one run: ``config``, its price table, what it spent (``ledger``), its seed designs and
    (``designs``) the source of any design by id, for priors."""

    def __init__(self, config: EvolveConfig, prices: PriceTable, ledger: Ledger | None = None,
                 seeds: dict[str, str] | None = None):
        self.config, self.prices = config, prices
        self.ledger = ledger or Ledger([])
        self.seeds = dict(seeds or {})  # seed design id -> source
        self.fitness = self.ledger.evaluations()
        self.held = self.ledger.evaluations(heldout=True)
        seeded = {e.design for e in self.ledger.entries if e.phase == "seeding"}
        self.evolved_evals = [c for d, c in self.fitness.items() if d not in seeded and d not in self.seeds]
        self.seed_evals = [c for d, c in self.fitness.items() if d in seeded or d in self.seeds]
        self.proposals = self.ledger.proposals()
        self._memo: dict[tuple, Charge] = {}

    def _cached(self, key: tuple, compute) -> Charge:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def calibrated(self) -> bool:
        return bool(self.fitness)

    def _pick(self, charges: list[Charge], conservative: bool) -> Charge:
        return largest(charges, self.prices) if conservative else mean(charges)

    def evaluation(self, design: str | None = None, source: str = "", *, conservative: bool = False) -> Charge:
        """One fitness evaluation of ``design`` (its own if it ran), else of a new design."""
        return self._cached(("evaluation", design, source, conservative),
                            lambda: self._evaluation(design, source, conservative))

    def _evaluation(self, design: str | None, source: str, conservative: bool) -> Charge:
        if design is not None and design in self.fitness:
            return self.fitness[design]
        if design is not None and design in self.seeds and not self.seed_evals:
            return prior_evaluation(self.config, self.seeds[design])
        samples = self.evolved_evals or self.seed_evals
        if samples:
            return self._pick(samples, conservative)
        sources = [source] if source else list(self.seeds.values()) or [""]
        priors = [prior_evaluation(self.config, s) for s in sources]
        return self._pick(priors, conservative)

    def heldout_evaluation(self, design: str | None = None, *, conservative: bool = False) -> Charge:
        """One held-out evaluation of ``design`` still to run (nothing if it ran)."""
        if design is not None and design in self.held:
            return Charge()
        ratio = episodes(self.config, "heldout") / max(1, episodes(self.config, "fitness"))
        return self.evaluation(design, conservative=conservative).scaled(ratio)

    def proposal(self, *, conservative: bool = False) -> Charge:
        """One meta-agent proposal (smoke evaluations included)."""
        return self._cached(("proposal", conservative), lambda: self._proposal(conservative))

    def _proposal(self, conservative: bool) -> Charge:
        if self.proposals:
            return self._pick(self.proposals, conservative)
        sources = list(self.seeds.values()) or [""]
        return self._pick([prior_proposal(self.config, s) for s in sources], conservative)

    def step(self, step: int, *, conservative: bool = False) -> Charge:
        """Step ``step``: its proposal (a meta-agent step) and its child's evaluation."""
        child = self.evaluation(conservative=conservative)
        return child + self.proposal(conservative=conservative) if meta_steps(self.config, [step]) else child

    def heldout_reserve(self, *, conservative: bool = True, evolved: int | None = None) -> Charge:
        """The held-out evaluations still to run: every seed's, ``evolved`` (default: as many as the table takes)
        new designs', and the validation re-evaluations before the final pick (``eval.validation_top``)."""
        out = Charge()
        for seed in self.seeds:
            out = out + self.heldout_evaluation(seed, conservative=conservative)
        done_evolved = sum(1 for d in self.held if d not in self.seeds)
        slots = min(HELDOUT_TOP, self.config.steps) if evolved is None else evolved
        for _ in range(max(0, slots - done_evolved)):
            out = out + self.heldout_evaluation(conservative=conservative)
        validated = {e.design for e in self.ledger.entries if e.what == "evaluation" and e.split == "validation"}
        for _ in range(max(0, min(self.config.eval.validation_top, self.config.steps) - len(validated))):
            out = out + self.heldout_evaluation(conservative=conservative)  # validation suite: held-out size
        return out

    def run(self, steps_done: set[int] | None = None, budget_usd: float | None = None) -> RunEstimate:
        """The whole run: what is spent, and what the seeds, steps and held-out table still to run will cost."""
        c = self.config
        steps_done = steps_done or set()
        all_steps = range(1, c.steps + 1)
        seeding_left = Charge()
        seeding = Charge()
        for seed in self.seeds:
            cost = self.evaluation(seed)
            seeding = seeding + cost
            if seed not in self.fitness:
                seeding_left = seeding_left + cost
        steps_left = Charge()
        for s in all_steps:
            if s not in steps_done:
                steps_left = steps_left + self.step(s)
        n_meta = len(meta_steps(c, all_steps))
        evaluation, proposal = self.evaluation(), self.proposal()
        step = (evaluation.scaled(c.steps) + proposal.scaled(n_meta)).scaled(1 / c.steps) if c.steps else Charge()
        heldout_left = self.heldout_reserve(conservative=False)
        heldout_all = Charge()
        for seed in self.seeds:
            heldout_all = heldout_all + (self.held.get(seed) or self.heldout_evaluation(seed))
        evolved_held = [ch for d, ch in self.held.items() if d not in self.seeds]
        slots = min(HELDOUT_TOP, c.steps)
        for i in range(slots):
            heldout_all = heldout_all + (evolved_held[i] if i < len(evolved_held) else self.heldout_evaluation())
        n_fit = sum(1 for e in self.ledger.entries if e.what == "evaluation" and "cached" not in e.flags)
        basis = (f"calibrated from {n_fit} evaluations and {len(self.proposals)} meta-agent proposals of this run"
                 if self.calibrated else "prior, from the configuration alone; the first evaluations calibrate it")
        notes = []
        if c.budget_minutes is not None and c.steps:
            notes.append(f"the time budget ({c.budget_minutes:g} min) may stop the run before all {c.steps} steps")
        if c.eval.agent != "llm" and not self.calibrated:
            notes.append("the heuristic task agent calls no model: only designs that call toolkit.llm or "
                         "embed spend task tokens")
        return RunEstimate(basis=basis, seeds=len(self.seeds), seeding=seeding, meta_proposal=proposal,
                           evaluation=evaluation, step=step, meta_step_count=n_meta, steps=c.steps,
                           heldout=heldout_all, heldout_evaluations=len(self.seeds) + slots,
                           spent=self.ledger.total(), remaining=seeding_left + steps_left + heldout_left,
                           budget_usd=budget_usd, notes=notes)
