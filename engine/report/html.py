"""HTML building blocks of the run report: the scores and costs tables, one section per design (its diff to
each parent, its analysis/plan text, its code and evaluations), and the page's inline stylesheet and script.

Everything a design or the meta agent wrote (code, names, analysis, errors) is HTML-escaped here; nothing in
the page is fetched from elsewhere. Stable hooks: ``table#scores`` (``tr.design-row[data-design]``, cells
``td.score[data-benchmark][data-split]``), ``table#costs``, ``section.design#design-ID`` with
``pre.diff[data-parent]``, ``pre.code``, ``div.notes``.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Sequence
from html import escape

from archive import Design, Evaluation
from engine.report.svg import a, proposer_kind

DASH = "\u2013"
STAR = " \u2605"


def fmt_score(s) -> str:
    return f"{s.score:.3f} \u00b1 {s.stderr:.3f}" if s is not None else "\u2013"


def fmt_reward(value: float | None) -> str:
    return f"{value:+.3f}" if value is not None else "\u2013"


def fmt_seconds(s: float) -> str:
    s = float(s or 0.0)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "\u2013"


def design_link(d: Design) -> str:
    return f'<a href="#design-{a(d.id)}" title="{a(d.id)}">{escape(d.name)}</a>'


def badges(d: Design) -> str:
    kind = proposer_kind(d.proposer)
    out = [f'<span class="pill proposer-{kind}">{escape(d.proposer)}</span>',
           f'<span class="pill status-{a(d.status)}">{escape(d.status)}</span>']
    if d.audit:
        out.append(f'<span class="pill audit-{a(d.audit)}" title="{a(d.audit_note or "")}">{escape(d.audit)}</span>')
    return "".join(out)


# ------------------------------------------------------------------------------------------------ tables
def scores_table(designs: Sequence[Design], keys: Sequence[tuple[str, str]], baseline: str | None,
                 best: str | None) -> str:
    """One row per design; for each benchmark/split a score ± stderr cell and a reward-vs-no-memory cell."""
    head1 = ['<th rowspan="2" data-col="0">design</th><th rowspan="2" data-col="1">proposer</th>'
             '<th rowspan="2" data-col="2">step</th><th rowspan="2" data-col="3">gen</th>'
             '<th rowspan="2" data-col="4">status</th><th rowspan="2" data-col="5">audit</th>']
    head2 = []
    col = 6
    for b, sp in keys:
        head1.append(f'<th colspan="3" class="key" data-benchmark="{a(b)}" data-split="{a(sp)}">'
                     f'{escape(b)} / {escape(sp)}</th>')
        head2.append(f'<th data-col="{col}">score \u00b1 stderr</th><th data-col="{col + 1}">reward vs no memory'
                     f'</th><th data-col="{col + 2}">n</th>')
        col += 3
    head1.append(f'<th rowspan="2" data-col="{col}">tokens</th><th rowspan="2" data-col="{col + 1}">wall</th>')
    rows = []
    for d in designs:
        classes = ["design-row", f"status-{d.status}"]
        classes += ["baseline-row"] if d.id == baseline else []
        classes += ["seed-row"] if d.proposer == "seed" else []
        classes += ["best-row"] if d.id == best else []
        classes += ["hostile-row"] if d.audit == "hostile" else []
        cells = [f'<td data-sort="{a(d.name)}">{design_link(d)}{STAR if d.id == best else ""}</td>',
                 f'<td>{escape(d.proposer)}</td>', f"<td>{d.step}</td>", f"<td>{d.generation}</td>",
                 f'<td title="{a(d.status_reason or "")}">{escape(d.status)}</td>',
                 f'<td class="audit-{a(d.audit or "none")}" title="{a(d.audit_note or "")}">'
                 f'{escape(d.audit or DASH)}</td>']
        for b, sp in keys:
            s = d.scores.get((b, sp))
            value = "" if s is None else f"{s.score:.6g}"
            reward = "" if s is None or s.reward is None else f"{s.reward:.6g}"
            cells.append(f'<td class="score" data-benchmark="{a(b)}" data-split="{a(sp)}" data-sort="{value}">'
                         f"{fmt_score(s)}</td>"
                         f'<td class="reward{_sign(s.reward if s else None)}" data-sort="{reward}">'
                         f"{fmt_reward(s.reward if s else None)}</td>"
                         f'<td data-sort="{s.n if s else ""}">{s.n if s else DASH}</td>')
        tokens = sum(v for counters in d.tokens.values() for k, v in counters.items() if k == "total_tokens"
                     or (k in ("prompt_tokens", "completion_tokens") and "total_tokens" not in counters))
        cells.append(f'<td data-sort="{tokens}">{tokens:,}</td>'
                     f'<td data-sort="{d.wall_s:.3f}">{fmt_seconds(d.wall_s)}</td>')
        rows.append(f'<tr class="{" ".join(classes)}" data-design="{a(d.id)}">{"".join(cells)}</tr>')
    return (f'<table id="scores" class="sortable"><thead><tr>{"".join(head1)}</tr><tr>{"".join(head2)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def _sign(value: float | None) -> str:
    if value is None or abs(value) < 1e-12:
        return ""
    return " positive" if value > 0 else " negative"


def costs_tables(costs: dict, tokens_used: int, span: tuple[float, float] | None, eval_wall: float) -> str:
    """Tokens per model (every counter the archive holds) and wall time, designs and evaluations by status."""
    tokens: dict[str, dict[str, int]] = costs.get("tokens", {})
    counters = sorted({c for v in tokens.values() for c in v},
                      key=lambda c: (["prompt_tokens", "completion_tokens", "total_tokens"] + [c]).index(c))
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in counters)
    rows = "".join(f'<tr data-model="{a(m)}"><td>{escape(m)}</td>' +
                   "".join(f"<td>{v.get(c, 0):,}</td>" for c in counters) + "</tr>"
                   for m, v in sorted(tokens.items()))
    if not rows:
        rows = f'<tr class="empty"><td colspan="{len(counters) + 1}">no tokens recorded</td></tr>'
    facts = [("wall time (proposals + evaluations)", fmt_seconds(costs.get("wall_s", 0.0))),
             ("of which evaluations", fmt_seconds(eval_wall)),
             ("run span (first to last event)", fmt_seconds(span[1] - span[0]) if span else "\u2013"),
             ("meta + task tokens counted against the budget", f"{tokens_used:,}"),
             ("designs by status", _counts(costs.get("designs", {}))),
             ("evaluations by status", _counts(costs.get("evaluations", {})))]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return (f'<table id="costs"><thead><tr><th>model</th>{head}</tr></thead><tbody>{rows}</tbody></table>'
            f'<dl id="cost-summary">{dl}</dl>')


def _counts(by: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "\u2013"


# ------------------------------------------------------------------------------------------------ designs
def diff_block(parent: Design, child: Design, open_: bool) -> str:
    """The unified diff parent -> child, one span per line (add / del / hunk / ctx), escaped."""
    lines = list(difflib.unified_diff(parent.source.splitlines(), child.source.splitlines(),
                                      fromfile=f"{parent.name} ({parent.short_id})",
                                      tofile=f"{child.name} ({child.short_id})", lineterm="", n=3))
    added = sum(1 for x in lines[2:] if x.startswith("+"))
    removed = sum(1 for x in lines[2:] if x.startswith("-"))
    body = []
    for i, line in enumerate(lines):
        cls = ("file" if i < 2 else "hunk" if line.startswith("@@") else "add" if line.startswith("+")
               else "del" if line.startswith("-") else "ctx")
        body.append(f'<span class="{cls}">{escape(line)}</span>')
    text = "".join(body) if body else '<span class="ctx">(no change)</span>'
    return (f'<details class="diff-block"{" open" if open_ else ""}><summary>diff to parent '
            f'{escape(parent.name)} <span class="add">+{added}</span> <span class="del">\u2212{removed}</span>'
            f'</summary><pre class="diff" data-parent="{a(parent.id)}" data-child="{a(child.id)}">{text}</pre>'
            f"</details>")


def design_section(d: Design, by_id: dict[str, Design], children: Iterable[Design],
                   evaluations: Sequence[Evaluation], keys: Sequence[tuple[str, str]]) -> str:
    parents = [by_id[p] for p in d.parents if p in by_id]
    facts = [("id", f"<code>{escape(d.id)}</code>"),
             ("parents", ", ".join(design_link(p) for p in parents) or "\u2013"),
             ("children", ", ".join(design_link(c) for c in children) or "\u2013"),
             ("generation / step", f"{d.generation} / {d.step}"),
             ("created", fmt_time(d.created_at))]
    scores = [f"{escape(b)}/{escape(sp)}: {fmt_score(d.scores.get((b, sp)))} (reward "
              f"{fmt_reward(d.scores[(b, sp)].reward)})" for b, sp in keys if (b, sp) in d.scores]
    facts.append(("scores", "; ".join(scores) or "\u2013"))
    if d.novelty is not None:
        facts.append(("novelty", f"{d.novelty:.3f}"))
    if d.status_reason:
        facts.append(("status reason", f'<span class="reason">{escape(d.status_reason)}</span>'))
    if d.audit_note:
        facts.append(("audit note", escape(d.audit_note)))
    tokens = "; ".join(f"{escape(m)}: " + ", ".join(f"{escape(k)} {v:,}" for k, v in sorted(c.items()))
                       for m, c in sorted(d.tokens.items()))
    facts.append(("costs", f"{fmt_seconds(d.wall_s)}" + (f"; {tokens}" if tokens else "")))
    parts = [f'<section class="design status-{a(d.status)}" id="design-{a(d.id)}" data-design="{a(d.id)}">',
             f'<h3>{escape(d.name)} {badges(d)}</h3>',
             '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"]
    for title, text in (("analysis", d.analysis), ("plan", d.plan)):
        if text:
            parts.append(f'<div class="notes {title}"><h4>{title}</h4><div class="text">{escape(text)}</div></div>')
    if d.findings:
        items = "".join(f"<li>{escape(_finding(f))}</li>" for f in d.findings[:50])
        parts.append(f'<div class="findings"><h4>validation findings</h4><ul>{items}</ul></div>')
    for i, p in enumerate(parents):
        parts.append(diff_block(p, d, open_=i == 0))
    n_lines = d.source.count("\n") + 1
    parts.append(f'<details class="code-block"><summary>code ({n_lines} lines)'
                 f'</summary><pre class="code">{escape(d.source)}</pre></details>')
    if evaluations:
        parts.append(_evaluations_table(evaluations))
    parts.append("</section>")
    return "".join(parts)


def _finding(f) -> str:
    if isinstance(f, dict):
        where = f":{f['line']}" if f.get("line") else ""
        return f"{f.get('code', f.get('rule', ''))}{where} {f.get('message', f)}".strip()
    return str(f)


def _evaluations_table(evaluations: Sequence[Evaluation]) -> str:
    rows = []
    for e in evaluations:
        score = f"{e.score:.3f} \u00b1 {e.stderr or 0:.3f}" if e.score is not None else "\u2013"
        rows.append(f'<tr class="eval-{a(e.status)}" data-evaluation="{e.id}"><td>{escape(e.benchmark)}/'
                    f"{escape(e.split)}</td><td>{e.attempt}{' (' + str(e.runs) + ' runs)' if e.runs > 1 else ''}"
                    f"</td><td>{escape(e.purpose)}</td><td>{escape(e.status)}</td><td>{escape(e.outcome or '')}"
                    f"</td><td>{score}</td><td>{fmt_seconds(e.wall_s or 0)}</td>"
                    f'<td class="reason">{escape((e.error or "")[:300])}</td></tr>')
    return ('<table class="evals"><thead><tr><th>benchmark/split</th><th>attempt</th><th>purpose</th>'
            '<th>status</th><th>outcome</th><th>score</th><th>wall</th><th>error</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


# ------------------------------------------------------------------------------------------------ page
CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--gold:#f59e0b}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",system-ui,sans-serif;color:var(--ink);margin:0;font-size:14px;line-height:1.45}
header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0 0 4px;font-size:20px} header .sub{color:#c9d1d9;font-size:13px}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:6px 24px;z-index:2}
nav a{margin-right:16px;color:#0969da;text-decoration:none}
main{padding:0 24px 40px} h2{border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:28px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;background:var(--bg);min-width:150px}
.card .v{font-size:20px;font-weight:bold} .card .k{color:var(--muted);font-size:12px}
.scroll{overflow:auto;border:1px solid var(--line);border-radius:6px;background:#fff;max-height:900px}
#lineage{display:block;margin:0 auto} #lineage .edge{fill:none;stroke:#8c959f;stroke-width:1.4}
#lineage .edge.second-parent{stroke-dasharray:5 4}
#lineage .edge.best-path{stroke:var(--gold);stroke-width:3.5}
#lineage .shape{stroke:#24292f;stroke-width:1.5}
#lineage .audit-hostile .shape{stroke:#b91c1c;stroke-width:3.5}
#lineage .audit-suspicious .shape{stroke:#d97706;stroke-width:3;stroke-dasharray:4 2}
#lineage .status-failed .shape{stroke-dasharray:3 3}
#lineage .invalid{opacity:.45} #lineage .invalid .shape{stroke:#8c959f}
#lineage .best-halo{fill:none;stroke:var(--gold);stroke-width:4}
#lineage text{text-anchor:middle;font-size:11px} #lineage .glyph{font-weight:bold;font-size:12px}
#lineage .sublabel{fill:var(--muted);font-size:10px} #lineage a:hover .shape{stroke-width:3}
.badge text{fill:#fff;font-size:10px;font-weight:bold;text-anchor:middle}
#lineage-legend .shape{stroke:#24292f;stroke-width:1.3} #lineage-legend .invalid{opacity:.45}
.legend-text{font-size:12px;fill:var(--ink)}
.history-chart{background:#fff;border:1px solid var(--line);border-radius:6px;margin:6px 0}
.history-chart .plot-area{fill:#fbfcfd;stroke:#d1d9e0} .history-chart .grid{stroke:#eaeef2}
.history-chart .tick,.history-chart .axis-label{font-size:11px;fill:var(--muted)}
.history-chart .baseline{stroke-width:1.6} .history-chart .baseline-label{font-size:11px}
.history-chart .point{fill:#8c959f;opacity:.75}
.history-chart .best-line{fill:none;stroke:#cf222e;stroke-width:2.5}
.history-chart .best-point{fill:#cf222e}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--bg)} table.sortable th[data-col]{cursor:pointer}
table.sortable th[data-dir=asc]::after{content:" \\25B2"} table.sortable th[data-dir=desc]::after{content:" \\25BC"}
#scores td.score,#scores td.reward{font-variant-numeric:tabular-nums;white-space:nowrap}
.positive{color:#1a7f37} .negative{color:#cf222e}
tr.best-row{background:#fff8c5} tr.hostile-row{background:#fff0ee} #scores td{white-space:nowrap} tr.status-invalid{color:#8c959f} tr.baseline-row td:first-child{font-weight:bold}
.audit-hostile{color:#b91c1c;font-weight:bold} .audit-suspicious{color:#b45309}
dl#cost-summary,dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}
dt{color:var(--muted)} dd{margin:0}
section.design{border:1px solid var(--line);border-radius:6px;padding:4px 16px 10px;margin:14px 0}
section.design:target{box-shadow:0 0 0 3px var(--gold)} section.design.status-invalid{background:#f6f8fa}
.pill{display:inline-block;font-size:11px;font-weight:normal;border-radius:10px;padding:1px 8px;margin-left:6px;
  background:#eaeef2;border:1px solid var(--line);vertical-align:middle}
.pill.audit-clean{background:#dafbe1} .pill.audit-suspicious{background:#fff1c2} .pill.audit-hostile{background:#ffd7d5}
.pill.status-invalid,.pill.status-failed{background:#ffd7d5}
.notes .text{white-space:pre-wrap;background:var(--bg);border-left:3px solid #0969da;padding:6px 10px}
h4{margin:10px 0 4px} .reason{color:#9a6700;font-family:"DejaVu Sans Mono",monospace;font-size:12px}
pre{background:var(--bg);border:1px solid var(--line);padding:8px;overflow:auto;max-height:600px;
  font-family:"DejaVu Sans Mono",monospace;font-size:12px;line-height:1.35}
pre.diff span{display:block;white-space:pre} pre.diff .add{background:#dafbe1} pre.diff .del{background:#ffebe9}
pre.diff .hunk{color:#8250df;background:#f5f0ff} pre.diff .file{color:var(--muted);font-weight:bold}
summary .add{color:#1a7f37} summary .del{color:#cf222e} summary{cursor:pointer;margin:6px 0}
.zoom{font-size:12px;color:var(--muted);margin:4px 0} .zoom input{vertical-align:middle}
footer{color:var(--muted);font-size:12px;padding:10px 24px}
"""

JS = """
(function(){
  function val(row, col){
    var c = row.cells[col]; if(!c) return null;
    var v = c.hasAttribute('data-sort') ? c.getAttribute('data-sort') : c.textContent;
    if(v === '') return null; var n = Number(v); return isNaN(n) ? v.toLowerCase() : n;
  }
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th[data-col]').forEach(function(th){
      th.addEventListener('click', function(){
        var col = Number(th.getAttribute('data-col')), body = t.tBodies[0];
        var dir = th.getAttribute('data-dir') === 'desc' ? 'asc' : 'desc';
        t.querySelectorAll('th[data-dir]').forEach(function(o){ o.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', dir);
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function(x, y){
          var p = val(x, col), q = val(y, col);
          if(p === null) return q === null ? 0 : 1; if(q === null) return -1;
          var r = p < q ? -1 : p > q ? 1 : 0; return dir === 'asc' ? r : -r;
        });
        rows.forEach(function(r){ body.appendChild(r); });
      });
    });
  });
  function openTarget(){
    var el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if(el){ el.querySelectorAll('details.diff-block').forEach(function(d){ d.open = true; }); }
  }
  window.addEventListener('hashchange', openTarget); openTarget();
  var svg = document.getElementById('lineage'), zoom = document.getElementById('lineage-zoom');
  if(svg && zoom){
    var w = Number(svg.getAttribute('width')), h = Number(svg.getAttribute('height'));
    var apply = function(){
      var z = Number(zoom.value) / 100; svg.style.width = (w * z) + 'px'; svg.style.height = (h * z) + 'px';
      document.getElementById('lineage-zoom-value').textContent = zoom.value + '%';
    };
    zoom.value = Math.max(50, Math.min(100, Math.floor(100 * (svg.parentNode.clientWidth - 4) / w)));
    apply(); zoom.addEventListener('input', apply);
  }
  document.body.setAttribute('data-js', 'ready');
})();
"""
