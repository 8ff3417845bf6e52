"""``claims.html``: claims.json as one self-contained page (inline CSS and SVG, no script, nothing fetched).

Stable hooks: ``section.claim#claim-N`` with ``p.verdict[data-verdict]``, ``table.claim1[data-benchmark]``,
``table.claim2[data-benchmark]``, ``table.claim3[data-benchmark]``, ``svg.curves`` (:mod:`.charts`),
``div.provenance`` under every figure, ``table#runs``.
"""

from __future__ import annotations

import json
import time
from html import escape

from engine.experiments.charts import curves_svg
from engine.experiments.stats import fmt_cmp

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#fff}
header{background:#24292f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d0d7de}main{padding:8px 24px 40px;max-width:1200px}
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}h3{margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px}th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
.verdict{font-weight:600;padding:6px 10px;border-radius:6px;display:inline-block}
.verdict[data-verdict="reproduced"]{background:#dafbe1;color:#116329}
.verdict[data-verdict="partly"]{background:#fff8c5;color:#7d4e00}
.verdict[data-verdict="not reproduced"]{background:#ffebe9;color:#a40e26}
.summary li{margin:4px 0}.better{color:#116329;font-weight:600}.worse{color:#a40e26;font-weight:600}
.provenance{font-size:12px;color:#57606a;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;
padding:6px 10px;margin:4px 0 16px}.provenance code{white-space:pre-wrap;word-break:break-all;color:#1f2328}
.note{color:#57606a}svg.curves{border:1px solid #d0d7de;border-radius:6px;background:#fff}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#57606a}svg text{font-size:11px;fill:#57606a}svg .label{font-size:12px}
"""


def _cmp_cell(cmp: dict | None) -> str:
    if not cmp or not cmp.get("n"):
        return "<td>-</td>"
    lo, hi = cmp["ci95"]
    cls = "better" if lo > 0 else "worse" if hi < 0 else ""
    return f'<td class="{cls}" title="{cmp["n"]} paired (seed, task)">{escape(fmt_cmp(cmp))}</td>'


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _provenance(p: dict) -> str:
    cmds = "".join(f"<div>command: <code>{escape(c)}</code></div>" for c in p["commands"])
    config = escape(json.dumps(p["config"], sort_keys=True))
    return (f'<div class="provenance">{cmds}<div>runs ({p["finished"]} of {p["planned"]} finished): '
            f'<code>{escape(", ".join(p["run_ids"]))}</code></div><div>config shared by these runs (each run\'s '
            f'resolved config: runs/&lt;run id&gt;/config.toml; varies by run: '
            f'{escape(", ".join(p["varies_by_run"]))}): <code>{config}</code></div></div>')


def _claim_head(n: str, claim: dict) -> str:
    return (f'<section class="claim" id="claim-{n}"><h2>Claim {n}: {escape(claim["title"])}</h2>'
            f'<p>{escape(claim["statement"])}</p><p class="note">Paper: {escape(claim["paper"])}</p>'
            f'<p class="note">How it is measured here: {escape(claim["method"])}</p>'
            f'<p class="verdict" data-verdict="{escape(claim["verdict"])}">{escape(claim["verdict"])}: '
            f'{escape(claim["text"])}</p>')


def claim1_html(claim: dict) -> str:
    out = [_claim_head("1", claim)]
    for bench, b in claim["benchmarks"].items():
        names = [*b["baselines"], "best evolved"]
        out.append(f"<h3>{escape(bench)}</h3>")
        head = "".join(f"<th>{escape(n)}</th>" for n in names)
        vs_head = "".join(f"<th>evolved &minus; {escape(n)}</th>" for n in b["baselines"])
        rows = []
        for s in b["per_seed"]:
            cells = "".join(f"<td>{_num(s['scores'].get(n))}</td>" for n in names)
            vs = "".join(_cmp_cell(s["vs"].get(n)) for n in b["baselines"])
            picked = escape((s["best_evolved"] or {}).get("name", "none"))
            rows.append(f'<tr><td>seed {s["seed"]} <span class="note">({escape(s["run_id"])}, held-out suite '
                        f'{s["heldout_seed"]}, {s["n_tasks"]} tasks; pick: {picked})</span></td>{cells}{vs}</tr>')
        pooled = b["pooled"]
        cells = "".join(f"<td><b>{_num(pooled['scores'].get(n))}</b></td>" for n in names)
        vs = "".join(_cmp_cell((pooled.get("vs") or {}).get(n)) for n in b["baselines"])
        rows.append(f"<tr><td><b>pooled over seeds</b></td>{cells}{vs}</tr>")
        gains = pooled.get("gain_over_no_memory") or {}
        cells = "".join(_cmp_cell(gains.get(n)) if n != "no_memory" else "<td>-</td>" for n in names)
        rows.append(f'<tr><td>gain over no memory</td>{cells}{"<td></td>" * len(b["baselines"])}</tr>')
        out.append(f'<table class="claim1" data-benchmark="{escape(bench, quote=True)}"><tr><th>held-out score'
                   f'</th>{head}{vs_head}</tr>{"".join(rows)}</table>')
        ratio = b["gain_ratio"]
        terms = b.get("gain_ratio_terms")
        ratio_text = (f"{ratio:.2f} ({terms['evolved_gain']:+.3f} / {terms['best_baseline_gain']:+.3f})"
                      if not isinstance(ratio, str) else
                      "undefined" + (f" (best baseline's gain {terms['best_baseline_gain']:+.3f} &le; 0)"
                                     if terms else ""))
        rules = b.get("by_rule") or {}
        if rules:
            head = "".join(f"<th>pick &minus; {escape(n)}</th>" for n in b["baselines"])
            body = "".join(
                f'<tr data-variant="{escape(v)}"><td>{escape(v)} ({r["runs"]} runs)</td><td>{_num(r["score"])}</td>'
                + "".join(_cmp_cell(r["vs"].get(n)) for n in b["baselines"])
                + f'<td>{r["gain_ratio"] if isinstance(r.get("gain_ratio"), str) else _num(r.get("gain_ratio"))}'
                  '</td></tr>' for v, r in rules.items())
            out.append(f'<table class="claim1-rules" data-benchmark="{escape(bench, quote=True)}"><tr><th>search '
                       f'rule (pooled)</th><th>held-out</th>{head}<th>gain ratio</th></tr>{body}</table>')
        room = b["memory_room"]
        out.append(f'<p>Gain ratio (evolved gain over no memory &divide; best baseline\'s, '
                   f'{escape(b["best_baseline"] or "-")}): <b class="gain-ratio">{ratio_text}</b>; the paper: 2.48. '
                   f'Memory room measured here (best baseline &minus; no memory): '
                   f'{escape(fmt_cmp(room["measured"]))} ({"room" if room["has_room"] else "no resolved room"}); '
                   f'earlier: {escape(room["note"])}.</p>')
        out.append(_provenance(b["provenance"]))
    out.append("</section>")
    return "".join(out)


def claim2_html(claim: dict) -> str:
    out = [_claim_head("2", claim)]
    for bench, b in claim["benchmarks"].items():
        out.append(f"<h3>{escape(bench)}</h3>{curves_svg(bench, b['variants'])}")
        rows = []
        for v, d in b["variants"].items():
            per_seed = ", ".join(f"{s}: {_num(x)}" for s, x in d["heldout"]["per_seed"].items())
            rows.append(f'<tr data-variant="{escape(v)}"><td>{escape(v)}</td><td>{len(d["run_ids"])}</td>'
                        f'<td>{escape(", ".join(map(str, d["steps_done"])))}</td>'
                        f'<td>{_num(d["fitness_evaluations"])}</td><td>{_num(d["final_fitness"])}</td>'
                        f'<td><b>{_num(d["heldout"]["pooled"])}</b></td><td>{escape(per_seed)}</td></tr>')
        out.append(f'<table class="claim2" data-benchmark="{escape(bench, quote=True)}"><tr><th>search rule</th>'
                   '<th>runs</th><th>steps done</th><th>fitness evaluations (mean)</th><th>final best fitness '
                   '(mean)</th><th>held-out, pooled</th><th>held-out per seed</th></tr>' + "".join(rows)
                   + "</table>")
        diffs = "".join(f"<tr><td>{escape(k.replace('-', ' − '))}</td>{_cmp_cell(c)}</tr>"
                        for k, c in b["differences"].items())
        out.append(f'<table class="claim2-diff"><tr><th>held-out difference</th><th>paired over (seed, task), '
                   f'95% interval</th></tr>{diffs}</table>')
        out.append(_provenance(b["provenance"]))
    out.append("</section>")
    return "".join(out)


def claim3_html(claim: dict) -> str:
    out = [_claim_head("3", claim)]
    for bench, b in claim["benchmarks"].items():
        agents = b["agents"]
        head = "".join(f"<th>{escape(a['label'])}: score</th><th>gain over no memory</th>" for a in agents)
        rows = []
        for r in b["rows"]:
            cells = "".join(f"<td>{_num(r['cells'][a['name']]['score'])}</td>{_cmp_cell(r['cells'][a['name']]['gain'])}"
                            for a in agents)
            rows.append(f"<tr><td>{escape(r['design'])}</td>{cells}</tr>")
        vs_rows = []
        for r in b["rows"]:
            if r["design"].startswith("best evolved"):
                cells = "".join(_cmp_cell(r["cells"][a["name"]].get("vs_best_baseline")) for a in agents)
                vs_rows.append(f"<tr><td>{escape(r['design'])} &minus; best baseline</td>{cells}</tr>")
        vs_head = "".join(f"<th>{escape(a['label'])}</th>" for a in agents)
        out.append(f'<h3>{escape(bench)}</h3><table class="claim3" data-benchmark="{escape(bench, quote=True)}">'
                   f'<tr><th>design</th>{head}</tr>{"".join(rows)}</table>'
                   f'<table class="claim3-vs"><tr><th>evolved vs best baseline</th>{vs_head}</tr>'
                   f'{"".join(vs_rows)}</table>')
        if b["missing_evaluations"]:
            out.append(f'<p class="note">{b["missing_evaluations"]} transfer evaluations not done yet.</p>')
        out.append(_provenance(b["provenance"]))
    out.append("</section>")
    return "".join(out)


def runs_html(doc: dict) -> str:
    rows = []
    for key, r in doc["runs"].items():
        ev = r.get("evaluations") or {}
        rows.append(f'<tr><td>{escape(key)}</td><td>{escape(r["benchmark"])}</td><td>{escape(r["variant"])}</td>'
                    f'<td>{r["seed"]}</td><td>{"yes" if r["finished"] else "no"}</td>'
                    f'<td>{r.get("steps_done", "-")}/{r.get("steps", "-")}</td>'
                    f'<td>{escape(", ".join(f"{k} {v}" for k, v in sorted(ev.items())))}</td>'
                    f'<td>{r.get("search_minutes", "-")}</td>'
                    f'<td style="text-align:left">{escape(r.get("verdict") or "")}</td></tr>')
    return ('<section id="provenance"><h2>Runs</h2><table id="runs"><tr><th>run id</th><th>benchmark</th>'
            '<th>search rule</th><th>seed</th><th>finished</th><th>steps</th><th>evaluations by split</th>'
            '<th>search minutes</th><th>its held-out verdict</th></tr>' + "".join(rows) + "</table></section>")


def render(doc: dict) -> str:
    summary = "".join(f'<li><a href="#claim-{n}">Claim {n}</a>: <span class="verdict" '
                      f'data-verdict="{escape(c["verdict"])}">{escape(c["verdict"])}</span> {escape(c["text"])}</li>'
                      for n, c in doc["claims"].items())
    commands = "".join(f"<div>command: <code>{escape(c)}</code></div>" for c in doc["commands"])
    commands += "".join(f"<div>resumed: <code>{escape(c)}</code></div>" for c in doc["resumed"])
    sections = {"1": claim1_html, "2": claim2_html, "3": claim3_html}
    body = "".join(sections[n](c) for n, c in doc["claims"].items())
    state = "" if doc["complete"] else '<p class="verdict" data-verdict="partly">incomplete: some runs have not ' \
                                       'finished; resume the experiment</p>'
    written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["written_at"]))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>claims: {escape(doc["experiment"])}'
            f'</title><style>{CSS}</style></head><body><header><h1>The paper\'s three claims, measured: '
            f'{escape(doc["experiment"])}</h1><p>ALMA (arXiv 2602.07755) reproduced offline with alma-engine; '
            f'written {written}</p></header><main>{state}<ul class="summary">{summary}</ul>'
            f'<div class="provenance">{commands}</div>{body}{runs_html(doc)}</main></body></html>\n')
