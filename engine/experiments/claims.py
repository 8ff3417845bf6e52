"""``claims.json``: the three claims measured from an experiment's records (nothing is evaluated here).

Every figure carries its provenance: the command lines that planned its runs, the run ids and the config the
runs share (each run's resolved config is its ``config.toml``). Layout::

    {"experiment", "written_at", "commands", "resumed", "complete",
     "runs": {cell: {"run_id", "run_dir", "config_file", "benchmark", "variant", "seed", "steps_done", ...}},
     "claims": {"1": {"title", "statement", "paper", "method", "benchmarks": {name: {...}}, "verdict", "text"},
                "2": ..., "3": ...}}

Verdicts are ``reproduced``, ``partly`` or ``not reproduced``; ``text`` says why, with the numbers.
"""

from __future__ import annotations

import time

from engine.experiments.layout import Experiment
from engine.experiments.plan import PAPER_RULE
from engine.experiments.settings import paper
from engine.experiments.stats import band, compare, fmt_cmp, mean, pool, resolved

NO_MEMORY = "no_memory"
EVOLVED = "best evolved"


def build(exp: Experiment, plan: dict) -> dict:
    records = {k: exp.finished(k) for k in plan["cells"]}
    done = {k: r for k, r in records.items() if r is not None}
    runs = {}
    for key, cell in plan["cells"].items():
        r = done.get(key)
        runs[key] = {"benchmark": cell["benchmark"], "variant": cell["variant"], "seed": cell["seed"],
                     "run_id": key, "run_dir": str(exp.run_dir(key)), "finished": r is not None,
                     "config_file": str(exp.run_dir(key) / "config.toml"),
                     "command": plan["invocations"][cell["invocation"]]["command"]}
        if r is not None:
            runs[key].update({k: r[k] for k in ("steps", "steps_done", "evaluations", "search_minutes",
                                                "heldout_seed", "n_tasks", "verdict")})
    texts = paper()
    doc = {"experiment": exp.id, "directory": str(exp.root), "written_at": time.time(),
           "commands": [i["command"] for i in plan["invocations"] if not i.get("resume")],
           "resumed": [i["command"] for i in plan["invocations"] if i.get("resume")],
           "complete": len(done) == len(plan["cells"]), "runs": runs, "claims": {}}
    for n, fn in (("1", claim1), ("2", claim2), ("3", claim3)):
        benches = [b for b, info in plan["benchmarks"].items() if int(n) in info["claims"]]
        if not benches:
            continue
        claim = {k: texts[f"claim{n}"][k] for k in ("title", "statement", "paper", "method")}
        claim["benchmarks"] = {b: fn(exp, plan, b, done) for b in benches}
        claim.update(overall(n, claim["benchmarks"]))
        doc["claims"][n] = claim
    return doc


# ------------------------------------------------------------------------------------------------ helpers
def _cells(plan: dict, bench: str, variant: str | None = None) -> list[dict]:
    return sorted((c for c in plan["cells"].values() if c["benchmark"] == bench
                   and (variant is None or c["variant"] == variant)), key=lambda c: (c["variant"], c["seed"]))


def provenance(plan: dict, cells: list[dict], done: dict) -> dict:
    """The command lines, run ids and shared config behind a figure (``varies_by_run``: the config keys, dotted,
    whose values differ between its runs)."""
    commands = []
    for c in cells:
        cmd = plan["invocations"][c["invocation"]]["command"]
        if cmd not in commands:
            commands.append(cmd)
    flat = [_flatten(c["config"]) for c in cells]
    varying = sorted({k for f in flat for k in f if any(g.get(k) != f.get(k) for g in flat)})
    config = {k: v for k, v in (flat[0] if flat else {}).items() if k not in varying and k != "runs_dir"}
    return {"commands": commands, "run_ids": [c["key"] for c in cells],
            "finished": sum(c["key"] in done for c in cells), "planned": len(cells),
            "config": config, "varies_by_run": varying}


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _design_successes(record: dict) -> dict[str, dict]:
    """Held-out rows of a run by name (baselines) plus ``EVOLVED`` for its pick, with successes."""
    best = (record.get("best_evolved") or {}).get("id")
    out = {}
    for d in record["heldout_designs"]:
        if d["kind"] == "seed":
            out[d["name"]] = d
        if d["id"] == best:
            out[EVOLVED] = d
    return out


def _best_baseline(scores: dict[str, float | None]) -> str | None:
    named = {n: s for n, s in scores.items() if n not in (NO_MEMORY, EVOLVED) and s is not None}
    return max(sorted(named), key=lambda n: named[n]) if named else None


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


# ------------------------------------------------------------------------------------------------ claim 1
def claim1(exp: Experiment, plan: dict, bench: str, done: dict) -> dict:
    cells = _cells(plan, bench, PAPER_RULE)
    recs = [done[c["key"]] for c in cells if c["key"] in done]
    per_seed, tables = [], {}
    for r in recs:
        rows = _design_successes(r)
        for name, d in rows.items():
            tables.setdefault(name, {})[r["seed"]] = d["successes"]
        ev = rows.get(EVOLVED)
        vs = {n: compare(ev["successes"] or {}, d["successes"] or {}) for n, d in rows.items()
              if n != EVOLVED and ev is not None}
        per_seed.append({"seed": r["seed"], "run_id": r["run_id"], "heldout_seed": r["heldout_seed"],
                         "n_tasks": r["n_tasks"], "scores": {n: d["score"] for n, d in rows.items()},
                         "best_evolved": None if ev is None else {k: ev[k] for k in ("id", "name", "score")},
                         "vs": vs, "heldout_verdict": r["verdict"]})
    pooled = {n: pool(t) for n, t in tables.items()}
    scores = {n: mean(p) for n, p in pooled.items()}
    baselines = sorted(n for n in pooled if n != EVOLVED)
    best = _best_baseline(scores)
    out = {"provenance": provenance(plan, cells, done), "per_seed": per_seed, "baselines": baselines,
           "pooled": {"scores": scores, "n_pairs": {n: len(p) for n, p in pooled.items()}}}
    nm = pooled.get(NO_MEMORY)
    if EVOLVED in pooled:
        out["pooled"]["vs"] = {n: compare(pooled[EVOLVED], pooled[n]) for n in baselines}
    if nm is not None:
        out["pooled"]["gain_over_no_memory"] = {n: compare(p, nm) for n, p in pooled.items() if n != NO_MEMORY}
    out["best_baseline"] = best
    room = compare(pooled[best], nm) if best and nm is not None else None
    out["memory_room"] = {"measured": room, "has_room": resolved(room) == "better",
                          "note": plan["benchmarks"][bench]["settings"]["room_note"]}
    gains = out["pooled"].get("gain_over_no_memory", {})
    if EVOLVED in gains and best in gains:
        denom = gains[best]["diff"]
        out["gain_ratio"] = round(gains[EVOLVED]["diff"] / denom, 3) if denom > 0 else "undefined"
        out["gain_ratio_terms"] = {"evolved_gain": gains[EVOLVED]["diff"], "best_baseline_gain": denom}
    else:
        out["gain_ratio"] = "undefined"
    out["by_rule"] = _by_rule(plan, bench, done, pooled, best)
    out.update(_verdict1(bench, out, scores))
    return out


def _by_rule(plan: dict, bench: str, done: dict, pooled: dict[str, dict], best: str | None) -> dict:
    """The same comparison for every search rule run on ``bench`` (claim 2's runs share the seeds' held-out
    suites): each rule's pooled pick against each baseline, and its gain ratio."""
    out = {}
    nm = pooled.get(NO_MEMORY)
    for variant in plan["benchmarks"][bench]["variants"]:
        recs = [done[c["key"]] for c in _cells(plan, bench, variant) if c["key"] in done]
        table = pool({r["seed"]: (_design_successes(r).get(EVOLVED) or {}).get("successes") for r in recs})
        if not table:
            continue
        row = {"runs": len(recs), "score": mean(table),
               "vs": {n: compare(table, p) for n, p in pooled.items() if n != EVOLVED}}
        if nm is not None and best in pooled:
            same = {k: v for k, v in pooled[best].items() if k in table}  # the rule's seeds only
            gain, denom = compare(table, nm)["diff"], compare(same, nm)["diff"]
            row["gain_ratio"] = round(gain / denom, 3) if denom > 0 else "undefined"
        out[variant] = row
    return out


def _verdict1(bench: str, out: dict, scores: dict) -> dict:
    vs = out["pooled"].get("vs")
    if not vs:
        return {"verdict": "not reproduced", "text": f"{bench}: no evolved design reached the held-out table"}
    states = {n: resolved(c) for n, c in vs.items()}
    best = out["best_baseline"] or NO_MEMORY
    ratio = out["gain_ratio"]
    ratio_text = ratio if isinstance(ratio, str) else f"{ratio:.2f}"
    detail = (f"best evolved {_num(scores.get(EVOLVED))} vs {best} {_num(scores.get(best))}, "
              f"{fmt_cmp(vs.get(best))}; gain ratio {ratio_text}")
    others = {n: s for n, s in states.items() if n != NO_MEMORY}  # beating no memory alone is no claim
    if all(s == "better" for s in states.values()):
        verdict = "reproduced"
    elif any(s == "better" for s in others.values()) or (best in vs and vs[best]["diff"] > 0):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    return {"verdict": verdict, "text": f"{bench}: {detail}"}


# ------------------------------------------------------------------------------------------------ claim 2
def claim2(exp: Experiment, plan: dict, bench: str, done: dict) -> dict:
    variants = [v for v in plan["benchmarks"][bench]["variants"]]
    out = {"provenance": provenance(plan, _cells(plan, bench), done), "variants": {}, "differences": {}}
    best_tables = {}
    for v in variants:
        recs = [done[c["key"]] for c in _cells(plan, bench, v) if c["key"] in done]
        curves = {r["seed"]: r["fitness_curve"] for r in recs}
        best = {r["seed"]: (_design_successes(r).get(EVOLVED) or {}).get("successes") for r in recs}
        best_tables[v] = pool(best)
        fitness_spent = [r["evaluations"].get(plan["cells"][r["key"]]["config"].get("eval", {}).get("split", "id"), 0)
                         for r in recs]
        out["variants"][v] = {
            "run_ids": [r["run_id"] for r in recs], "seeds": sorted(curves), "curve": band(list(curves.values())),
            "curves": {str(s): c for s, c in sorted(curves.items())},
            "final_fitness": mean([c[-1] for c in curves.values() if c and c[-1] is not None]),
            "heldout": {"pooled": mean(best_tables[v]),
                        "per_seed": {str(r["seed"]): (r.get("best_evolved") or {}).get("score") for r in recs}},
            "no_evolved": [r["seed"] for r in recs if not r.get("best_evolved")],
            "steps_done": [r["steps_done"] for r in recs],
            "fitness_evaluations": mean([float(x) for x in fitness_spent]),
            "evaluations": mean([float(sum(r["evaluations"].values())) for r in recs])}
    for other in variants:
        if other != PAPER_RULE and PAPER_RULE in best_tables:
            out["differences"][f"{PAPER_RULE}-{other}"] = compare(best_tables[PAPER_RULE], best_tables[other])
    steps = {s for v in out["variants"].values() for s in v["steps_done"]}
    out["same_budget"] = len(steps) <= 1
    out.update(_verdict2(bench, out))
    return out


def _verdict2(bench: str, out: dict) -> dict:
    cmp = out["differences"].get(f"{PAPER_RULE}-greedy")
    if not cmp or not cmp.get("n"):
        return {"verdict": "not reproduced", "text": f"{bench}: no paired softmax and greedy results"}
    state = resolved(cmp)
    verdict = "reproduced" if state == "better" else "partly" if cmp["diff"] > 0 else "not reproduced"
    v = out["variants"]
    text = (f"{bench}: softmax - greedy {fmt_cmp(cmp)} on the held-out suites (softmax "
            f"{_num(v[PAPER_RULE]['heldout']['pooled'])}, greedy {_num(v['greedy']['heldout']['pooled'])})")
    if not out["same_budget"]:
        text += "; note: the runs did not all get the same number of steps (a time budget stopped some)"
    return {"verdict": verdict, "text": text}


# ------------------------------------------------------------------------------------------------ claim 3
def claim3(exp: Experiment, plan: dict, bench: str, done: dict) -> dict:
    agents = [{"name": "learned", "label": "as learned (the run's own agent)"}] + [
        {k: a[k] for k in ("name", "label")} for a in plan["benchmarks"][bench]["transfer_agents"]]
    cells = _cells(plan, bench)
    recs = [done[c["key"]] for c in cells if c["key"] in done]
    # design label -> agent -> seed -> successes
    tables: dict[str, dict[str, dict[int, dict | None]]] = {}
    missing = 0
    for r in sorted(recs, key=lambda r: (r["variant"] != PAPER_RULE, r["variant"], r["seed"])):
        for name, d in _design_successes(r).items():
            label = f"{EVOLVED} ({r['variant']})" if name == EVOLVED else name
            if name != EVOLVED and r["seed"] in tables.get(label, {}).get("learned", {}):
                continue  # a baseline on this seed's suite: the same design on the same tasks in every run
            tables.setdefault(label, {}).setdefault("learned", {})[r["seed"]] = d["successes"]
            for a in agents[1:]:
                t = exp.transfer(r["key"], d["id"], a["name"])
                if t is None:
                    missing += 1
                tables[label].setdefault(a["name"], {})[r["seed"]] = None if t is None else (
                    t["successes"] if t["successes"] is not None else "failed")
    rows = []
    nm = tables.get(NO_MEMORY, {})
    for label in sorted(tables, key=lambda n: (n == NO_MEMORY, n.startswith(EVOLVED), n)):
        cells_ = {}
        for a in agents:
            per_seed = {}
            for seed, succ in tables[label].get(a["name"], {}).items():
                ref = nm.get(a["name"], {}).get(seed)
                if succ == "failed":  # the design broke under this agent: every task failed
                    succ = {t: 0.0 for t in (ref if isinstance(ref, dict) else {})}
                per_seed[seed] = succ
            p = pool(per_seed)
            ref = pool({s: v for s, v in nm.get(a["name"], {}).items() if isinstance(v, dict)})
            cells_[a["name"]] = {"score": mean(p), "gain": compare(p, ref) if label != NO_MEMORY else None,
                                 "n": len(p), "_pooled": p}
        rows.append({"design": label, "cells": cells_})
    for a in agents:
        scores = {r["design"]: r["cells"][a["name"]]["score"] for r in rows if not r["design"].startswith(EVOLVED)}
        best = _best_baseline(scores)
        for r in rows:
            c = r["cells"][a["name"]]
            c["best_baseline"] = best
            if r["design"].startswith(EVOLVED) and best:
                base = next(x for x in rows if x["design"] == best)["cells"][a["name"]]["_pooled"]
                c["vs_best_baseline"] = compare(c["_pooled"], base)
    for r in rows:
        for c in r["cells"].values():
            c.pop("_pooled")
    out = {"provenance": provenance(plan, cells, done), "agents": agents, "rows": rows,
           "missing_evaluations": missing}
    out.update(_verdict3(bench, out))
    return out


def _verdict3(bench: str, out: dict) -> dict:
    evolved = [r for r in out["rows"] if r["design"].startswith(EVOLVED)]
    if not evolved:
        return {"verdict": "not reproduced", "text": f"{bench}: no evolved design to transfer"}
    paper_row = next((r for r in evolved if r["design"] == f"{EVOLVED} ({PAPER_RULE})"), evolved[0])
    ahead = [r for r in evolved if resolved(r["cells"]["learned"].get("vs_best_baseline")) == "better"]
    row = paper_row if paper_row in ahead or not ahead else ahead[0]
    learned = row["cells"]["learned"]
    parts = [f"{a}: vs {row['cells'][a].get('best_baseline') or '-'} {fmt_cmp(row['cells'][a].get('vs_best_baseline'))}"
             for a in row["cells"]]
    text = f"{bench}, {row['design']}: " + "; ".join(parts)
    if resolved(learned.get("vs_best_baseline")) != "better":
        return {"verdict": "not reproduced", "text": text + " (no evolved design beat the best baseline with the "
                                                            "agent it was learned with: nothing to transfer)"}
    stronger = row["cells"].get("stronger") or {}
    if resolved(stronger.get("vs_best_baseline")) == "better":
        return {"verdict": "reproduced", "text": text}
    if resolved(stronger.get("gain")) == "better" or (stronger.get("vs_best_baseline") or {}).get("diff", 0) > 0:
        return {"verdict": "partly", "text": text}
    return {"verdict": "not reproduced", "text": text}


# ------------------------------------------------------------------------------------------------ overall
def overall(n: str, benches: dict[str, dict]) -> dict:
    """The claim's verdict over its benchmarks. Claim 1 counts the benchmarks where this experiment measured
    room for memory (the best baseline above no memory), or all of them when none has any."""
    considered = benches
    if n == "1":
        roomy = {b: v for b, v in benches.items() if v["memory_room"]["has_room"]}
        considered = roomy or benches
    verdicts = [v["verdict"] for v in considered.values()]
    if verdicts and all(v == "reproduced" for v in verdicts):
        verdict = "reproduced"
    elif any(v in ("reproduced", "partly") for v in verdicts):
        verdict = "partly"
    else:
        verdict = "not reproduced"
    text = "; ".join(v["text"] for v in considered.values())
    if n == "1" and len(considered) < len(benches):
        text += (" (benchmarks without measured room for memory, not counted: "
                 + ", ".join(sorted(set(benches) - set(considered))) + ")")
    return {"verdict": verdict, "text": text, "counted": sorted(considered)}
