"""Claim 2's learning curves as inline SVG: per search rule the best fitness score so far after each step (mean
line, band from the lowest to the highest run seed) and, right of the steps, the held-out score of the runs' picks
(dot: pooled mean; bar: lowest to highest run seed). Pure function of claims.json data; stable hooks:
``svg.curves[data-benchmark]``, ``path.curve-mean[data-variant]``, ``path.curve-band``, ``g.heldout-mark``."""

from __future__ import annotations

from html import escape

COLOURS = {"softmax": "#cf222e", "greedy": "#0969da", "novelty": "#1a7f37", "elite": "#8250df"}
W, H = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 150, 16, 44


def _colour(variant: str) -> str:
    return COLOURS.get(variant, "#57606a")


def curves_svg(bench: str, variants: dict[str, dict]) -> str:
    """The figure for one benchmark; ``variants``: claim 2's ``variants`` block of claims.json."""
    steps = max((len(v["curve"]["mean"]) for v in variants.values()), default=1) - 1
    steps = max(steps, 1)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    held_x = LEFT + plot_w + 40

    def x(step: float) -> float:
        return LEFT + plot_w * step / steps

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value)

    out = [f'<svg class="curves" data-benchmark="{escape(bench, quote=True)}" viewBox="0 0 {W} {H}" width="{W}" '
           f'height="{H}" role="img" aria-label="best score against steps, {escape(bench)}">']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    for i in range(0, steps + 1, max(1, steps // 8)):
        out.append(f'<text class="tick" x="{x(i):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{i}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
               f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>'
               f'<text class="label" x="{LEFT + plot_w / 2}" y="{H - 8}" text-anchor="middle">steps (one proposal '
               'and its fitness evaluation each; 0 = the seeds)</text>'
               f'<text class="label" x="{held_x}" y="{TOP + plot_h + 16}" text-anchor="middle">held-out</text>'
               f'<text class="label" transform="translate(14 {TOP + plot_h / 2}) rotate(-90)" '
               'text-anchor="middle">best score</text>')
    for k, (variant, data) in enumerate(variants.items()):
        colour, c = _colour(variant), data["curve"]
        pts = [(i, m) for i, m in enumerate(c["mean"]) if m is not None]
        if pts:
            upper = [f"{x(i):.1f},{y(c['hi'][i]):.1f}" for i, _ in pts]
            lower = [f"{x(i):.1f},{y(c['lo'][i]):.1f}" for i, _ in reversed(pts)]
            out.append(f'<path class="curve-band" data-variant="{escape(variant)}" fill="{colour}" '
                       f'fill-opacity="0.16" stroke="none" d="M{" L".join(upper + lower)} Z"/>')
            line = " L".join(f"{x(i):.1f},{y(m):.1f}" for i, m in pts)
            out.append(f'<path class="curve-mean" data-variant="{escape(variant)}" fill="none" stroke="{colour}" '
                       f'stroke-width="3" d="M{line}"/>')
        held = [v for v in data["heldout"]["per_seed"].values() if v is not None]
        pooled = data["heldout"]["pooled"]
        if pooled is not None:
            hx = held_x - 18 + 12 * k
            bar = (f'<line x1="{hx}" x2="{hx}" y1="{y(max(held)):.1f}" y2="{y(min(held)):.1f}" stroke="{colour}" '
                   'stroke-width="2"/>') if held else ""
            out.append(f'<g class="heldout-mark" data-variant="{escape(variant)}">{bar}<circle cx="{hx}" '
                       f'cy="{y(pooled):.1f}" r="5" fill="{colour}"><title>{escape(variant)}: held-out '
                       f'{pooled:.3f}</title></circle></g>')
        ly = TOP + 14 + 20 * k
        out.append(f'<g class="legend"><rect x="{W - RIGHT + 62}" y="{ly - 9}" width="14" height="10" '
                   f'fill="{colour}"/><text x="{W - RIGHT + 80}" y="{ly}">{escape(variant)}</text></g>')
    out.append("</svg>")
    return "".join(out)
