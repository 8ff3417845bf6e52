"""Evaluation logs as the meta agent reads them: score, errors and sampled trajectories per outcome."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def load_result(path: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def summarise_result(result: dict[str, Any] | None, *, rng: random.Random | None = None,
                     max_actions: int = 25, max_chars: int = 6000) -> str:
    """A compact, readable account of one evaluation: totals, errors, one won and one lost deploy episode."""
    if not result:
        return "(no evaluation logs: the design has not been evaluated successfully)"
    rng = rng or random.Random(0)
    episodes = result.get("episodes", [])
    deploy = [e for e in episodes if e.get("phase") == "deploy"]
    collect = [e for e in episodes if e.get("phase") == "collect"]
    lines = [
        f"score {result.get('score', 0):.3f} ± {result.get('stderr', 0):.3f} on {result.get('benchmark')} "
        f"({result.get('split')}, {result.get('mode')}); collection success "
        f"{sum(e['won'] for e in collect)}/{len(collect)}, deployment success "
        f"{sum(e['won'] for e in deploy)}/{len(deploy)}",
    ]
    errors = [e for e in episodes if e.get("error")]
    if errors:
        lines.append(f"{len(errors)} episode(s) raised in retrieve/update; first traceback:")
        lines.append(str(errors[0]["error"])[-1500:])
    for label, pool in (("a WON deployment episode", [e for e in deploy if e["won"]]),
                        ("a LOST deployment episode", [e for e in deploy if not e["won"] and not e.get("error")])):
        if not pool:
            continue
        e = rng.choice(pool)
        actions = e.get("actions", [])
        shown = " -> ".join(actions[:max_actions]) + (" ..." if len(actions) > max_actions else "")
        retrieved = str((e.get("retrieved") or {}).get("text", ""))[:600]
        lines.append(f"\n{label} ({e['task_id']}, {e['steps']} steps):\n  memory shown to the agent: "
                     f"{retrieved or '(empty)'}\n  actions: {shown or '(none)'}")
    return "\n".join(lines)[:max_chars]
