"""The final table of an evolve run, printed from ``runs/<id>/heldout.json`` (:mod:`engine.search.heldout`): every
baseline and the best evolved designs on the held-out suite, then the one-line verdict with its interval. The
evaluations behind it are :meth:`engine.search.loop.Evolution.heldout_phase`'s; this module only renders."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.config import EvolveConfig


def print_heldout(config: EvolveConfig, doc: dict, fitness: dict[str, str], console: Console) -> None:
    """Print ``doc`` (heldout.json) with each design's fitness score text (``fitness[id]``)."""
    c = config.eval
    table = Table(title=f"best designs vs baselines on {c.benchmark} (agent={c.agent}, run seed={config.seed}, "
                        f"fitness suite seed={c.seed})")
    heldout = f"held-out ({doc['split']}, suite seed {doc['suite_seed']}, {doc['n_tasks']} tasks)"
    for col in ("design", "kind", f"{c.split} score (fitness)", heldout):
        table.add_column(col)
    for d in doc["designs"]:
        held = "-" if d["score"] is None else f"{d['score']:.3f} ± {d['stderr']:.3f}"
        table.add_row(escape(d["name"]), d["kind"], fitness.get(d["id"], "-"), held)
    console.print(table)
    console.print(f"held-out: {escape(doc['verdict'])}")
