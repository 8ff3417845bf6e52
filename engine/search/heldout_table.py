"""The final table of an evolve run, printed: the best evolved designs against every baseline on the held-out
split. The evaluations behind it are :meth:`engine.search.loop.Evolution.heldout_phase`'s; this module only renders."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from engine.config import EvolveConfig
from engine.search.evaluator import HELDOUT


def print_heldout(config: EvolveConfig, designs: list, console: Console) -> None:
    """Print ``designs`` (archive records, seeds first) with their fitness and held-out scores."""
    c = config.eval
    table = Table(title=f"best designs vs baselines on {c.benchmark} (agent={c.agent}, run seed={config.seed}, "
                        f"fitness suite seed={c.seed})")
    heldout = f"held-out ({c.heldout_split}, suite seed {c.heldout_seed})"
    for col in ("design", "proposer", f"{c.split} score (fitness)", heldout, "reward", "audit"):
        table.add_column(col)
    for d in designs:
        s1, s2 = d.score_on(c.benchmark, c.split), d.score_on(c.benchmark, HELDOUT)
        table.add_row(d.name, d.proposer, _fmt(s1), _fmt(s2),
                      f"{s1.reward:+.3f}" if s1 and s1.reward is not None else "-", d.audit or "-")
    console.print(table)


def _fmt(score) -> str:
    return f"{score.score:.3f} ± {score.stderr:.3f}" if score else "-"
