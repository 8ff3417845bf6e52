"""The report's two figures as inline SVG text: the lineage tree of designs and the best score over steps.

Pure functions of plain data (no archive access, no JavaScript): every element has a stable id or class for
tests and stylesheets. The lineage tree is ``<svg id="lineage">`` with one ``<g class="node ..."
data-design="ID">`` per design and ``<path class="edge" data-parent=.. data-child=..>`` per parent link; the
chart is ``<svg class="history-chart">`` with ``path.best-line``, ``circle.point`` and ``line.baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# viridis, 5 stops: low scores purple, high scores yellow
_STOPS = [(0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25)]
_SEED_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
AUDIT_BADGE = {"clean": ("\u2713", "#15803d"), "suspicious": ("?", "#d97706"), "hostile": ("!", "#b91c1c")}
R = 15  # node radius


@dataclass
class Node:
    """One design as the lineage tree draws it."""

    id: str
    name: str
    parents: Sequence[str]
    proposer: str
    generation: int
    step: int
    status: str
    audit: str | None = None
    score: float | None = None
    stderr: float | None = None
    reward: float | None = None
    note: str = ""
    x: float = 0.0
    y: float = 0.0
    best: bool = False
    on_best_path: bool = False
    extra: dict = field(default_factory=dict)


def a(value: object) -> str:
    """An attribute value, escaped."""
    return escape(str(value), quote=True)


def proposer_kind(proposer: str) -> str:
    """seed | meta_agent | mutate | swap | crossover | other (the node's shape)."""
    if proposer in ("seed", "meta_agent", "crossover"):
        return proposer
    head = proposer.split(":", 1)[0]
    return head if head in ("mutate", "swap") else "other"


def score_colour(value: float | None, lo: float, hi: float) -> str:
    if value is None:
        return "#ffffff"
    t = 0.5 if hi <= lo else min(1.0, max(0.0, (value - lo) / (hi - lo)))
    pos = t * (len(_STOPS) - 1)
    i = min(int(pos), len(_STOPS) - 2)
    f = pos - i
    rgb = [round(c0 + (c1 - c0) * f) for c0, c1 in zip(_STOPS[i], _STOPS[i + 1], strict=True)]
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _ink(fill: str) -> str:
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def shape(kind: str, r: float = R, attrs: str = "") -> str:
    """The node shape of a proposer kind, centred on (0, 0)."""
    if kind == "seed":
        return f'<rect x="{-r}" y="{-r}" width="{2 * r}" height="{2 * r}" rx="3" {attrs}/>'
    if kind in ("meta_agent", "other"):
        return f'<circle r="{r}" {attrs}/>'
    if kind == "mutate":
        pts = [(0, -r * 1.25), (r * 1.25, 0), (0, r * 1.25), (-r * 1.25, 0)]
    elif kind == "swap":
        pts = [(0, -r * 1.2), (r * 1.2, r * 0.9), (-r * 1.2, r * 0.9)]
    else:  # crossover: hexagon
        pts = [(r * 1.1 * math.cos(math.pi / 3 * k), r * 1.1 * math.sin(math.pi / 3 * k)) for k in range(6)]
    return f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" {attrs}/>'


def _glyph(kind: str) -> str:
    return {"seed": "S", "meta_agent": "M", "mutate": "m", "swap": "s", "crossover": "X"}.get(kind, "?")


def _spread(desired: list[float], dx: float) -> list[float]:
    """Positions as close as possible (least squares) to the sorted ``desired`` ones, at least ``dx`` apart:
    isotonic regression (pool adjacent violators) of ``desired[i] - i * dx``."""
    blocks: list[list[float]] = []  # [mean, weight]
    for i, want in enumerate(desired):
        blocks.append([want - i * dx, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, w1), (m2, w2) = blocks[-2], blocks.pop()
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2]
    out: list[float] = []
    for mean, weight in blocks:
        for _ in range(int(weight)):
            out.append(mean + len(out) * dx)
    return out


def layout(nodes: list[Node], dx: float = 150.0, dy: float = 105.0) -> tuple[float, float]:
    """Place nodes in rows by generation; each node as near the mean x of its parents as the row allows
    (children sit under their parents, crossings stay few); returns the drawing's width and height."""
    by_id = {n.id: n for n in nodes}
    rows: dict[int, list[Node]] = {}
    for n in nodes:
        rows.setdefault(n.generation, []).append(n)
    for depth, gen in enumerate(sorted(rows)):
        row = rows[gen]
        wants = []
        for i, n in enumerate(row):
            xs = [by_id[p].x for p in n.parents if p in by_id and by_id[p].generation < n.generation]
            wants.append((sum(xs) / len(xs) if xs else i * dx, n.step, i))
        order = sorted(range(len(row)), key=lambda i: wants[i])
        xs = _spread([wants[i][0] for i in order], dx)
        for i, x in zip(order, xs, strict=True):
            row[i].x, row[i].y = x, 40 + depth * dy
    left = min((n.x for n in nodes), default=0.0)
    for n in nodes:
        n.x += dx / 2 + 10 - left
    width = max((n.x for n in nodes), default=0.0) + dx / 2 + 10
    return max(width, 3 * dx), 40 + (len(rows) - 1) * dy + 64


def lineage_svg(nodes: list[Node], lo: float, hi: float, caption: str = "") -> str:
    """The lineage tree: edges parent -> child, nodes coloured by score, shaped by proposer, badged by audit."""
    if not nodes:
        return '<svg id="lineage" class="empty" width="400" height="40"><text x="10" y="25">no designs yet' \
               '</text></svg>'
    width, height = layout(nodes)
    by_id = {n.id: n for n in nodes}
    out = [f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{a(caption or "lineage tree")}">',
           '<g class="edges">']
    for n in nodes:
        for i, p in enumerate(n.parents):
            if p not in by_id:
                continue
            q = by_id[p]
            x0, y0, x1, y1 = q.x, q.y + R, n.x, n.y - R - 4
            mid = (y0 + y1) / 2
            cls = "edge" + (" second-parent" if i else "") + (" best-path" if n.on_best_path and q.on_best_path
                                                               and i == 0 else "")
            out.append(f'<path class="{cls}" data-parent="{a(p)}" data-child="{a(n.id)}" '
                       f'd="M{x0:.1f},{y0:.1f} C{x0:.1f},{mid:.1f} {x1:.1f},{mid:.1f} {x1:.1f},{y1:.1f}"/>')
    out.append('</g><g class="nodes">')
    for n in nodes:
        out.append(_node(n, lo, hi))
    out.append("</g></svg>")
    return "".join(out)


def _node(n: Node, lo: float, hi: float) -> str:
    kind = proposer_kind(n.proposer)
    invalid = n.status == "invalid"
    fill = "#d1d5db" if invalid else score_colour(n.score, lo, hi)
    classes = ["node", f"proposer-{kind}", f"status-{n.status}", f"audit-{n.audit or 'none'}"]
    classes += ["invalid"] if invalid else []
    classes += ["best"] if n.best else []
    score_txt = (f"{n.score:.3f} \u00b1 {n.stderr or 0:.3f}" if n.score is not None
                 else {"invalid": "invalid", "failed": "failed"}.get(n.status, n.status))
    title = [f"{n.name} ({n.id})", f"proposer {n.proposer}, generation {n.generation}, step {n.step}",
             f"status {n.status}", f"score {score_txt}"]
    if n.reward is not None:
        title.append(f"reward vs no memory {n.reward:+.3f}")
    title.append(f"audit {n.audit or 'not audited'}" + (f": {n.note}" if n.note else ""))
    attrs = (f'data-design="{a(n.id)}" data-proposer="{a(n.proposer)}" data-status="{a(n.status)}" '
             f'data-audit="{a(n.audit or "")}" data-score="{"" if n.score is None else f"{n.score:.6g}"}"')
    parts = [f'<g class="{" ".join(classes)}" {attrs} transform="translate({n.x:.1f},{n.y:.1f})">',
             f"<title>{escape(chr(10).join(title))}</title>", f'<a href="#design-{a(n.id)}">']
    if n.best:
        parts.append(f'<circle class="best-halo" r="{R + 8}"/>')
    parts.append(shape(kind, R, f'class="shape" fill="{fill}"'))
    parts.append(f'<text class="glyph" y="4" fill="{_ink(fill)}">{_glyph(kind)}</text>')
    badge = AUDIT_BADGE.get(n.audit or "")
    if badge:
        parts.append(f'<g class="badge" transform="translate({R + 2},{-R - 2})"><circle r="7" '
                     f'fill="{badge[1]}"/><text y="3.5">{badge[0]}</text></g>')
    label = n.name if len(n.name) <= 21 else n.name[:20] + "\u2026"
    parts.append(f'<text class="label" y="{R + 17}">{escape(label)}</text>')
    parts.append(f'<text class="sublabel" y="{R + 30}">{escape(score_txt)}</text>')
    parts.append("</a></g>")
    return "".join(parts)


def legend_svg(lo: float, hi: float) -> str:
    """Shapes (proposer), badges (audit), the greyed invalid node and the score colour scale."""
    items = [("seed", "seed"), ("meta_agent", "meta agent"), ("mutate", "mutate:*"), ("swap", "swap:*"),
             ("crossover", "crossover")]
    out = ['<svg id="lineage-legend" xmlns="http://www.w3.org/2000/svg" width="1200" height="48">',
           '<defs><linearGradient id="score-scale">']
    out += [f'<stop offset="{i / (len(_STOPS) - 1):.2f}" stop-color="{score_colour(lo + (hi - lo) * i / 4, lo, hi)}"/>'
            for i in range(len(_STOPS))]
    out.append("</linearGradient></defs>")
    x = 16
    plain = 'class="shape" fill="#fff"'
    for kind, text in items:
        out.append(f'<g transform="translate({x},22)">{shape(kind, 9, plain)}'
                   f'<text class="legend-text" x="16" y="4">{text}</text></g>')
        x += 44 + 7 * len(text)
    for verdict, (glyph, colour) in AUDIT_BADGE.items():
        out.append(f'<g transform="translate({x},22)"><g class="badge"><circle r="7" fill="{colour}"/>'
                   f'<text y="3.5">{glyph}</text></g><text class="legend-text" x="12" y="4">{verdict}</text></g>')
        x += 36 + 7 * len(verdict)
    out.append(f'<g transform="translate({x},22)" class="invalid"><circle r="9" class="shape" fill="#d1d5db"/>'
               f'<text class="legend-text" x="16" y="4">invalid</text></g>')
    x += 80
    out.append(f'<g transform="translate({x},10)"><rect width="160" height="12" fill="url(#score-scale)" '
               f'stroke="#999"/><text class="legend-text" y="26">{lo:.2f}</text>'
               f'<text class="legend-text" x="160" y="26" text-anchor="end">{hi:.2f}</text>'
               f'<text class="legend-text" x="80" y="26" text-anchor="middle">score</text></g>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class Baseline:
    id: str
    name: str
    score: float
    no_memory: bool = False


def _nice_axis(values: list[float]) -> tuple[float, float, list[float]]:
    """A padded range snapped to round tick steps (1, 2, 2.5 or 5 x 10^k), and its ticks."""
    lo, hi = min(values), max(values)
    pad = max(0.02, (hi - lo) * 0.08)
    lo, hi = lo - pad, hi + pad
    if 0.0 <= min(values) and max(values) <= 1.0:
        lo, hi = max(0.0, lo), min(1.0, hi)
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw - 1e-12)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [round(lo + i * step, 10) for i in range(int(round((hi - lo) / step)) + 1)]
    return lo, hi, ticks


def history_svg(history: list[tuple[int, float, str]], points: list[tuple[int, float, str, str]],
                baselines: list[Baseline], *, benchmark: str, split: str, max_step: int,
                svg_id: str | None = None) -> str:
    """Best-so-far score by step (a step line) over every evaluated design (dots) against each seed
    (a horizontal line per baseline). ``points``: (step, score, design id, name)."""
    w, h, ml, mr, mt, mb = 900, 340, 56, 190, 16, 44
    pw, ph = w - ml - mr, h - mt - mb
    values = [v for _, v, _ in history] + [p[1] for p in points] + [b.score for b in baselines]
    if not values:
        values = [0.0, 1.0]
    lo, hi, ticks = _nice_axis(values)
    xmax = max(1, max_step)

    def sx(step: float) -> float:
        return ml + pw * step / xmax

    def sy(value: float) -> float:
        return mt + ph * (1 - (value - lo) / (hi - lo))

    ident = f' id="{a(svg_id)}"' if svg_id else ""
    out = [f'<svg{ident} class="history-chart" data-benchmark="{a(benchmark)}" data-split="{a(split)}" '
           f'xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f'<rect class="plot-area" x="{ml}" y="{mt}" width="{pw}" height="{ph}"/>']
    for v in ticks:  # y grid and ticks
        out.append(f'<line class="grid" x1="{ml}" x2="{ml + pw}" y1="{sy(v):.1f}" y2="{sy(v):.1f}"/>'
                   f'<text class="tick" x="{ml - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    stride = max(1, math.ceil(xmax / 12))
    for s in range(0, xmax + 1, stride):
        out.append(f'<text class="tick" x="{sx(s):.1f}" y="{mt + ph + 16}" text-anchor="middle">{s}</text>')
    out.append(f'<text class="axis-label" x="{ml + pw / 2}" y="{h - 6}" text-anchor="middle">step</text>'
               f'<text class="axis-label" transform="translate(14,{mt + ph / 2}) rotate(-90)" '
               f'text-anchor="middle">score ({escape(benchmark)}/{escape(split)})</text>')
    label_ys: list[float] = []
    for i, b in enumerate(sorted(baselines, key=lambda b: -b.score)):
        colour = "#111" if b.no_memory else _SEED_COLOURS[i % len(_SEED_COLOURS)]
        y = sy(b.score)
        ly = max(y + 4, (label_ys[-1] + 13) if label_ys else -1e9)
        label_ys.append(ly)
        dash = ' stroke-dasharray="6 4"' if b.no_memory else ' stroke-dasharray="2 3"'
        out.append(f'<g class="baseline-group" data-design="{a(b.id)}"><title>{escape(b.name)}: '
                   f'{b.score:.3f}</title><line class="baseline" data-design="{a(b.id)}" x1="{ml}" '
                   f'x2="{ml + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}"{dash}/>'
                   f'<text class="baseline-label" x="{ml + pw + 6}" y="{ly:.1f}" fill="{colour}">'
                   f'{escape(b.name[:20])} {b.score:.3f}</text></g>')
    for step, value, design_id, name in points:
        out.append(f'<circle class="point" data-design="{a(design_id)}" cx="{sx(step):.1f}" cy="{sy(value):.1f}" '
                   f'r="3.5"><title>{escape(name)} (step {step}): {value:.3f}</title></circle>')
    if history:
        d = [f"M{sx(history[0][0]):.1f},{sy(history[0][1]):.1f}"]
        for (_, prev, _), (step, value, _) in zip(history, history[1:], strict=False):
            d.append(f"H{sx(step):.1f}V{sy(value):.1f}" if value != prev else f"H{sx(step):.1f}")
        d.append(f"H{sx(max_step):.1f}")
        out.append(f'<path class="best-line" d="{"".join(d)}"/>')
        for step, value, design_id in history:
            out.append(f'<circle class="best-point" data-design="{a(design_id)}" cx="{sx(step):.1f}" '
                       f'cy="{sy(value):.1f}" r="4"><title>best at step {step}: {value:.3f}</title></circle>')
    out.append("</svg>")
    return "".join(out)
