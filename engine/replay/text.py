"""The replay's comparison with the archived evaluation, and its report for a person (see :mod:`engine.replay.cli`)."""

from __future__ import annotations

from typing import Any

from engine.audit.static import capability_lines
from engine.audit.verdict import runtime_lines
from harness.jobspec import EvalResult


def compare(archived: EvalResult | None, archived_outcome: str, replayed: EvalResult | None,
            outcome: str) -> dict[str, Any]:
    """How the replay differs from the archived evaluation: score, outcome, and the first diverging episode
    (and step) by actions, outcome or design error, and the first episode whose retrieved memory differs."""
    out: dict[str, Any] = {"archived_outcome": archived_outcome, "outcome": outcome,
                           "archived_score": archived.score if archived else None,
                           "score": replayed.score if replayed else None, "divergence": None,
                           "retrieved_divergence": None}
    if archived is None or replayed is None:
        out["exact"] = archived is None and replayed is None and archived_outcome == outcome
        out["identical_episodes"] = 0
        return out
    a_eps, b_eps = archived.episodes, replayed.episodes
    same = 0
    for i, (a, b) in enumerate(zip(a_eps, b_eps, strict=False)):
        where = {"episode": i, "task_id": a.task_id, "phase": a.phase, "repeat": a.repeat}
        if (a.task_id, a.phase, a.repeat) != (b.task_id, b.phase, b.repeat):
            out["divergence"] = {**where, "what": f"a different task was played ({b.phase} {b.task_id} repeat "
                                                  f"{b.repeat})", "step": None}
            break
        if a.retrieved != b.retrieved and out["retrieved_divergence"] is None:
            out["retrieved_divergence"] = {**where, "archived": str(a.retrieved)[:300],
                                           "replayed": str(b.retrieved)[:300]}
        if a.actions != b.actions or a.won != b.won or (a.error is None) != (b.error is None):
            step = next((j for j, (x, y) in enumerate(zip(a.actions, b.actions, strict=False)) if x != y),
                        min(len(a.actions), len(b.actions)))
            if a.actions == b.actions:
                what, step = ("won" if a.won != b.won else "design error") + " differs", None
            else:
                what = (f"step {step}: archived {a.actions[step]!r} vs replay {b.actions[step]!r}"
                        if step < min(len(a.actions), len(b.actions)) else
                        f"step {step}: one trajectory ends ({len(a.actions)} vs {len(b.actions)} steps)")
            out["divergence"] = {**where, "step": step, "what": what,
                                 "archived_error": (a.error or "")[-300:], "replay_error": (b.error or "")[-300:]}
            break
        same += 1
    if out["divergence"] is None and len(a_eps) != len(b_eps):
        out["divergence"] = {"episode": same, "step": None, "what": f"{len(a_eps)} archived episodes vs "
                                                                    f"{len(b_eps)} replayed"}
    out["identical_episodes"], out["episodes"] = same, len(a_eps)
    out["exact"] = (archived.score == replayed.score and out["divergence"] is None
                    and out["retrieved_divergence"] is None and archived_outcome == outcome)
    return out



def render_text(doc: dict[str, Any]) -> str:
    """The replay report for a person."""
    d, ev = doc["design"], doc["evaluation"]
    lines = [f"alma-engine replay of {d['name']} ({d['id']}) from {doc['run_dir']}",
             f"mode: {doc['mode_text']}; limits: {'strict' if doc['strict'] else 'as the run'}",
             f"evaluation: {ev['benchmark']}/{ev['split']} attempt {ev['attempt']} ({ev['job']})", ""]
    integ = doc["integrity"]
    lines.append("INTEGRITY: " + ("ok" if not integ["problems"] else "FAILED -- nothing was replayed"))
    lines += [f"  - {p}" for p in integ["problems"]] + [f"  (warning) {w}" for w in integ["warnings"]]
    if integ.get("cassette"):
        c = integ["cassette"]
        lines.append(f"  cassette: {c['verified']}/{c['entries']} entries verified"
                     + ("" if c["indexed"] else " (no index: responses unverifiable)"))
    if doc["replayed"]:
        c = doc["comparison"]
        head = "REPRODUCED EXACTLY" if c["exact"] else ("DIFFERS (live)" if doc["mode"] == "live" else "MISMATCH")
        lines += ["", f"{head}: score {c['score']} (archived {c['archived_score']}), outcome {c['outcome']} "
                      f"(archived {c['archived_outcome']}), {c['identical_episodes']}/{c.get('episodes', 0)} "
                      "episodes identical"]
        if c["divergence"]:
            v = c["divergence"]
            lines.append(f"  first divergence: episode {v['episode']} ({v.get('phase', '')} {v.get('task_id', '')} "
                         f"repeat {v.get('repeat', '')}): {v['what']}")
        if c["retrieved_divergence"]:
            v = c["retrieved_divergence"]
            lines.append(f"  retrieved memory first differs at episode {v['episode']} ({v['task_id']}):\n"
                         f"    archived: {v['archived'][:200]}\n    replay:   {v['replayed'][:200]}")
    a = doc["audit"]
    lines += ["", f"AUDIT VERDICT: {a['verdict'].upper()}"] + [f"  - {r}" for r in a["reasons"]]
    lines += ["", "Static audit:"] + [f"  {x}" for x in capability_lines(a["static"])]
    if a.get("runtime"):
        lines += ["", "Runtime audit:"] + [f"  {x}" for x in runtime_lines(a["runtime"])]
    lines += ["", f"Archive: {doc['archive']['note']}", f"Files: {doc['out_dir']}"]
    return "\n".join(lines) + "\n"
