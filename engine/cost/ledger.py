"""What a run spent, kept in its archive: one ``cost`` event per paid unit of work, read back as a :class:`Ledger`.

A ``cost`` event is recorded in the same transaction as what it paid for (a meta-agent proposal with its smoke
evaluations, or one evaluation), so a resumed run counts nothing twice and loses nothing that was archived.
Its payload holds tokens, never dollars: a price table turns them into dollars when read, so editing the table
re-prices a run::

    {"what": "proposal" | "evaluation", "design": id | null, "step": n, "phase": "seeding" | "steps" | "heldout",
     "split": "id" | "heldout" | ..., "evaluation": row id, "cached": bool, "restarted": bool,
     "interrupted": bool, "lines": [{"role", "model", "prompt_tokens", "completion_tokens", "requests"}]}

The event's own ``step`` column stays empty (the loop reads steps from other events); ``step`` is in the payload.
What an evaluation paid is the host broker's count of the tokens it forwarded upstream: replies served from the
run's cassette were paid when recorded, except in an evaluation restarted after a crash, which is charged its
replayed calls too (the interrupted attempt paid for them). An evaluation answered by the evaluation cache paid
nothing. A proposal's meta tokens come from the meta clients' meter; they are also kept under the archive's
``cost_pending`` meta key after every call, so that a crash mid-proposal still leaves them on the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import EvolveConfig
from engine.cost.charge import Charge
from engine.cost.prices import EMBEDDED
from harness.jobspec import ModelSpec

EVENT = "cost"
PENDING_KEY = "cost_pending"
PHASES = ("seeding", "steps", "heldout")


def model_names(config: EvolveConfig) -> dict[str, str]:
    """The name each role is priced under: the configured model, or ``embedded:<name>`` for a model that runs
    on this machine (free)."""
    meta, task = config.meta, config.task
    embedder = config.eval.embedder
    return {"meta": meta.model if meta.base_url else f"{EMBEDDED}{meta.local_model}",
            "task": task.model if task.base_url else f"{EMBEDDED}{task.local_model}",
            "embed": ModelSpec().embed_model if embedder == "remote" else f"{EMBEDDED}{embedder}"}


def broker_charge(usage: dict, names: dict[str, str], *, include_replayed: bool = False) -> Charge:
    """What a job paid, from its broker usage (:meth:`sandbox.broker.BrokerSession.usage`): tokens forwarded
    upstream, by endpoint; ``include_replayed`` adds those the cassette served."""
    u = {k: int(v) for k, v in (usage or {}).items() if isinstance(v, (int, float))}
    if "chat_prompt_tokens" not in u:  # a broker that does not split its counts: all of it as chat
        return Charge().add("task", names["task"], u.get("prompt_tokens", 0), u.get("completion_tokens", 0),
                            u.get("requests", 0) - (0 if include_replayed else u.get("cassette_hits", 0)))

    def paid(key: str) -> int:
        return u.get(key, 0) - (0 if include_replayed else u.get(f"cassette_{key}", 0))

    charge = Charge().add("task", names["task"], paid("chat_prompt_tokens"), paid("chat_completion_tokens"),
                          paid("chat_requests"))
    return charge.add("embed", names["embed"], paid("embed_tokens"), 0, paid("embed_requests"))


def meter_charge(snapshot: dict, names: dict[str, str], embedded: bool) -> Charge:
    """The meta clients' meter (:meth:`harness.models.usage.UsageMeter.snapshot`) as a meta charge."""
    charge = Charge()
    for model, c in (snapshot or {}).items():
        name = f"{EMBEDDED}{model}" if embedded and not str(model).startswith(EMBEDDED) else str(model)
        charge.add("meta", name, c.get("prompt_tokens", 0), c.get("completion_tokens", 0), c.get("requests", 0))
    return charge


def record_cost(archive, charge: Charge, *, what: str, step: int | None, phase: str, design: str | None = None,
                split: str | None = None, evaluation: int | None = None, **flags: bool) -> None:
    """Append a ``cost`` event (call it inside the transaction that archives what was paid for)."""
    payload = {"what": what, "design": design, "step": step, "phase": phase, "split": split,
               "evaluation": evaluation, "lines": charge.to_json(), **{k: bool(v) for k, v in flags.items() if v}}
    archive.record_event(EVENT, payload)


@dataclass(frozen=True)
class Entry:
    """One ``cost`` event, read back."""

    seq: int
    what: str
    design: str | None
    step: int | None
    phase: str
    split: str | None
    charge: Charge
    flags: frozenset[str]
    created_at: float


class Ledger:
    """Every ``cost`` event of a run, and the sums a report or a budget needs."""

    def __init__(self, entries: list[Entry], pending: Charge | None = None):
        self.entries = entries
        #: meta tokens of a proposal under way (or cut short by a crash) not yet on the ledger
        self.pending = pending or Charge()

    @classmethod
    def read(cls, archive) -> Ledger:
        entries = []
        for e in archive.events(EVENT):
            p = e.payload if isinstance(e.payload, dict) else {}
            entries.append(Entry(seq=e.seq, what=str(p.get("what", "")), design=p.get("design"),
                                 step=p.get("step"), phase=str(p.get("phase", "steps")), split=p.get("split"),
                                 charge=Charge.from_json(p.get("lines")),
                                 flags=frozenset(k for k in ("cached", "restarted", "interrupted") if p.get(k)),
                                 created_at=e.created_at))
        pending = archive.get_meta(PENDING_KEY, None)
        return cls(entries, Charge.from_json(pending.get("lines")) if isinstance(pending, dict) else None)

    def total(self, *, with_pending: bool = True) -> Charge:
        out = Charge()
        for e in self.entries:
            out = out + e.charge
        return out + self.pending if with_pending else out

    def by_phase(self) -> dict[str, Charge]:
        out = {p: Charge() for p in PHASES}
        for e in self.entries:
            out[e.phase if e.phase in out else "steps"] = out[e.phase if e.phase in out else "steps"] + e.charge
        return out

    def by_step(self) -> dict[int, Charge]:
        """Steps 1.. (their proposals and their designs' evaluations on the fitness split)."""
        out: dict[int, Charge] = {}
        for e in self.entries:
            if e.phase == "steps" and e.step:
                out[e.step] = out.get(e.step, Charge()) + e.charge
        return dict(sorted(out.items()))

    def by_design(self, phase: str | None = None) -> dict[str, Charge]:
        """Per design: the proposal that made it and its evaluations (``phase``: only those)."""
        out: dict[str, Charge] = {}
        for e in self.entries:
            if e.design and (phase is None or e.phase == phase):
                out[e.design] = out.get(e.design, Charge()) + e.charge
        return out

    def evaluations(self, *, heldout: bool = False) -> dict[str, Charge]:
        """What each design's evaluations paid (fitness split, or the held-out suite; the validation suite's, paid in
        the held-out phase, in neither), summed per design; the
        evaluation cache's answers (nothing paid, nothing learnt about the price) left out."""
        out: dict[str, Charge] = {}
        for e in self.entries:
            if e.what == "evaluation" and e.design and "cached" not in e.flags \
                    and (e.split == "heldout" if heldout else e.phase != "heldout"):
                out[e.design] = out.get(e.design, Charge()) + e.charge
        return out

    def proposals(self) -> list[Charge]:
        """Meta-agent proposals that ran to the end (smoke evaluations included)."""
        return [e.charge for e in self.entries if e.what == "proposal" and "interrupted" not in e.flags]
