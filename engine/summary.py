"""The final table of an evolve run: the best evolved designs against every baseline on the held-out split."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from engine.evaluator import HELDOUT


def final_table(evo, console: Console, top: int = 3) -> None:
    """Evaluate the best evolved designs and all seeds on the held-out split (once), then print the table."""
    c = evo.config.eval
    archive = evo.archive
    seeds = [d for d in archive.designs() if d.proposer == "seed"]
    evolved = [d for d in archive.best(len(archive.designs()), benchmark=c.benchmark, split=c.split)
               if d.proposer != "seed" and d.audit != "hostile"][:top]
    rows = seeds + evolved
    for d in rows:
        if archive.get(d.id).status in ("evaluated", "failed"):
            evo.evaluate(d.id, HELDOUT)
    table = Table(title=f"best designs vs baselines on {c.benchmark} (agent={c.agent}, run seed={evo.config.seed}, "
                        f"fitness suite seed={c.seed})")
    heldout = f"held-out ({c.heldout_split}, suite seed {c.heldout_seed})"
    for col in ("design", "proposer", f"{c.split} score (fitness)", heldout, "reward", "audit"):
        table.add_column(col)
    for d in rows:
        d = archive.get(d.id)
        s1, s2 = d.score_on(c.benchmark, c.split), d.score_on(c.benchmark, HELDOUT)
        table.add_row(d.name, d.proposer, _fmt(s1), _fmt(s2),
                      f"{s1.reward:+.3f}" if s1 and s1.reward is not None else "-", d.audit or "-")
    console.print(table)


def _fmt(score) -> str:
    return f"{score.score:.3f} ± {score.stderr:.3f}" if score else "-"
