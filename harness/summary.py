"""Human-readable summary of an EvalResult (a rich table)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.jobspec import EvalResult


def print_summary(result: EvalResult, console: Console | None = None) -> None:
    console = console or Console()
    deploy = [e for e in result.episodes if e.phase == "deploy"]
    collect = [e for e in result.episodes if e.phase == "collect"]
    table = Table(title=f"{result.design} on {result.benchmark} ({result.split}, {result.mode}, "
                        f"agent={result.agent}, seed={result.seed})")
    for col in ("phase", "episodes", "success", "progress", "mean steps", "errors"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, eps in (("collect", collect), ("deploy", deploy)):
        n = len(eps) or 1
        table.add_row(name, str(len(eps)), f"{sum(e.won for e in eps) / n:.3f}",
                      f"{sum(e.progress for e in eps) / n:.3f}", f"{sum(e.steps for e in eps) / n:.1f}",
                      str(sum(e.error is not None for e in eps)))
    console.print(table)
    console.print(f"score = {result.score:.3f} ± {result.stderr:.3f} (stderr), progress = {result.progress:.3f}, "
                  f"wall = {result.wall_s:.1f} s")
    for model, u in result.usage.items():
        console.print(f"tokens[{model}]: {u.get('prompt_tokens', 0)} in / {u.get('completion_tokens', 0)} out, "
                      f"{u.get('requests', 0)} requests")
    errors = [e for e in result.episodes if e.error]
    if errors:
        console.print(f"[yellow]{len(errors)} episode(s) with design errors; first: "
                      f"{errors[0].task_id}: {errors[0].error.splitlines()[0] if errors[0].error else ''}")
