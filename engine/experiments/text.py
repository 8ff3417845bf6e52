"""claims.json as Markdown tables for the terminal (and for pasting into a README): one table per claim and
benchmark, each followed by the command lines and run ids that made it."""

from __future__ import annotations

import json

from engine.experiments.stats import fmt_cmp


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _prov(p: dict) -> list[str]:
    lines = [f"command: `{c}`" for c in p["commands"]]
    lines.append(f"runs ({p['finished']}/{p['planned']} finished): {', '.join(p['run_ids'])}")
    shared = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(p["config"].items()))
    lines.append(f"config shared by these runs: {shared}; varies by run: {', '.join(p['varies_by_run'])} "
                 "(each run's resolved config: runs/<run id>/config.toml)")
    return lines


def claim1_text(b: dict, bench: str) -> list[str]:
    names = [*b["baselines"], "best evolved"]
    out = [f"Claim 1, {bench}: held-out success (95% paired bootstrap intervals)", "",
           "| run seed | " + " | ".join(names) + " | " + " | ".join(f"evolved − {n}" for n in b["baselines"]) + " |",
           "|---" * (1 + len(names) + len(b["baselines"])) + "|"]
    for s in b["per_seed"]:
        out.append(f"| {s['seed']} | " + " | ".join(_num(s["scores"].get(n)) for n in names) + " | "
                   + " | ".join(fmt_cmp(s["vs"].get(n)) for n in b["baselines"]) + " |")
    p = b["pooled"]
    out.append("| pooled | " + " | ".join(_num(p["scores"].get(n)) for n in names) + " | "
               + " | ".join(fmt_cmp((p.get("vs") or {}).get(n)) for n in b["baselines"]) + " |")
    ratio = b["gain_ratio"]
    terms = b.get("gain_ratio_terms") or {}
    gains = p.get("gain_over_no_memory") or {}
    out += ["", f"gain over no memory: evolved {fmt_cmp(gains.get('best evolved'))}, best baseline "
                f"({b['best_baseline']}) {fmt_cmp(gains.get(b['best_baseline']))}; gain ratio "
                + (f"{ratio:.2f}" if not isinstance(ratio, str) else "undefined"
                   + (f" (denominator {terms['best_baseline_gain']:+.3f} <= 0)" if terms else ""))
                + " (paper: 2.48)",
            *[f"pick of the {v} runs ({r['runs']}): {_num(r['score'])}; "
              + ", ".join(f"− {n} {fmt_cmp(c)}" for n, c in r["vs"].items())
              + (f"; gain ratio {r['gain_ratio']:.2f}" if isinstance(r.get("gain_ratio"), float)
                 else f"; gain ratio {r.get('gain_ratio', '-')}") for v, r in b.get("by_rule", {}).items()],
            f"memory room: {'yes' if b['memory_room']['has_room'] else 'not resolved'} "
            f"({fmt_cmp(b['memory_room']['measured'])}); earlier: {b['memory_room']['note']}"]
    return out + _prov(b["provenance"])


def claim2_text(b: dict, bench: str) -> list[str]:
    out = [f"Claim 2, {bench}: same step budget per run", "",
           "| search rule | runs | steps done | fitness evaluations | final best fitness | held-out (pooled) | "
           "held-out per seed |", "|---|---|---|---|---|---|---|"]
    for v, d in b["variants"].items():
        per_seed = ", ".join(f"{s}: {_num(x)}" for s, x in d["heldout"]["per_seed"].items())
        out.append(f"| {v} | {len(d['run_ids'])} | {', '.join(map(str, d['steps_done']))} | "
                   f"{_num(d['fitness_evaluations'])} | {_num(d['final_fitness'])} | {_num(d['heldout']['pooled'])} | "
                   f"{per_seed} |")
    out.append("")
    out += [f"{k.replace('-', ' − ')}: {fmt_cmp(c)} (held-out, paired over {c.get('n', 0)} (seed, task) pairs)"
            for k, c in b["differences"].items()]
    return out + _prov(b["provenance"])


def claim3_text(b: dict, bench: str) -> list[str]:
    agents = b["agents"]
    out = [f"Claim 3, {bench}: score and gain over no memory, designs deployed unchanged", "",
           "| design | " + " | ".join(a["label"] for a in agents) + " |", "|---" * (1 + len(agents)) + "|"]
    for r in b["rows"]:
        cells = []
        for a in agents:
            c = r["cells"][a["name"]]
            cells.append(_num(c["score"]) + ("" if c["gain"] is None else f" ({fmt_cmp(c['gain'])})"))
        out.append(f"| {r['design']} | " + " | ".join(cells) + " |")
    for r in b["rows"]:
        if r["design"].startswith("best evolved"):
            out.append(f"| {r['design']} − best baseline | "
                       + " | ".join(f"{fmt_cmp(r['cells'][a['name']].get('vs_best_baseline'))} vs "
                                    f"{r['cells'][a['name']].get('best_baseline')}" for a in agents) + " |")
    return out + [""] + _prov(b["provenance"])


def render_text(doc: dict) -> str:
    fns = {"1": claim1_text, "2": claim2_text, "3": claim3_text}
    lines: list[str] = []
    for n, claim in doc["claims"].items():
        for bench, b in claim["benchmarks"].items():
            lines += ["", *fns[n](b, bench)]
    lines.append("")
    for n, claim in doc["claims"].items():
        lines.append(f"Claim {n} ({claim['title']}): {claim['verdict'].upper()}: {claim['text']}")
    return "\n".join(lines)
