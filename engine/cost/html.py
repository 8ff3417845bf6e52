"""The report's money section (``python -m engine.report``): what the run spent, per phase, per step and per
design, priced with the run's price table (the config's ``prices``, else ``$ALMA_PRICES``, else the packaged
one). Self-contained HTML, no scripts of its own (the report's table sorting applies)."""

from __future__ import annotations

from html import escape

from engine.cost.charge import Charge
from engine.cost.ledger import PHASES, Ledger
from engine.cost.prices import PriceError, PriceTable, fmt_usd, load_prices


def _money(c: Charge, prices: PriceTable) -> str:
    cost = c.cost(prices)
    if cost.unknown:
        return (fmt_usd(cost.usd) + " + ?") if cost.usd else "unknown"
    return fmt_usd(cost.usd)


def _roles(c: Charge) -> str:
    by = c.tokens_by_role()
    return "".join(f'<td data-sort="{by[r]:.0f}">{by[r]:,.0f}</td>' for r in ("meta", "task", "embed"))


def cost_section(ledger: Ledger, config: dict, names: dict[str, str]) -> str:
    """The HTML of the section (``names``: design id -> display name)."""
    try:
        prices = load_prices(config.get("prices") if isinstance(config.get("prices"), str) else None)
    except PriceError as exc:
        return f'<div id="usd-costs"><p class="empty">costs in dollars unavailable: {escape(str(exc))}</p></div>'
    budget = config.get("budget_usd")
    total = ledger.total()
    cost = total.cost(prices)
    head = "<th>tokens meta</th><th>task</th><th>embed</th><th>USD</th>"
    lines = [f'<div id="usd-costs"><h3>Money</h3><p>Priced with {escape(prices.source)}: '
             f'<b id="usd-total">{escape(_money(total, prices))}</b> over {total.tokens:,.0f} paid tokens'
             + (f" of a {escape(fmt_usd(float(budget)))} budget" if isinstance(budget, (int, float)) else "")
             + (f'; no price for {escape(", ".join(cost.unknown))}' if cost.unknown else "") + ".</p>"]
    phases = ledger.by_phase()
    rows = "".join(f'<tr data-phase="{p}"><td>{p}</td>{_roles(phases[p])}<td>{escape(_money(phases[p], prices))}'
                   "</td></tr>" for p in PHASES)
    lines.append(f'<table id="usd-phases"><thead><tr><th>phase</th>{head}</tr></thead><tbody>{rows}</tbody></table>')
    steps = ledger.by_step()
    step_designs: dict[int, list[str]] = {}
    for e in ledger.entries:
        if e.phase == "steps" and e.step and e.design and e.design not in step_designs.get(e.step, []):
            step_designs.setdefault(e.step, []).append(e.design)
    rows = "".join(f'<tr data-step="{s}"><td>{s}</td><td>'
                   + escape(", ".join(names.get(d, d[:12]) for d in step_designs.get(s, [])) or "\u2013")
                   + f"</td>{_roles(c)}<td>{escape(_money(c, prices))}</td></tr>" for s, c in steps.items())
    if rows:
        lines.append(f'<table id="usd-steps" class="sortable"><thead><tr><th>step</th><th>designs</th>{head}</tr>'
                     f"</thead><tbody>{rows}</tbody></table>")
    per_design = ledger.by_design()
    held = ledger.by_design("heldout")
    rows = "".join(f'<tr data-design="{escape(d)}"><td>{escape(names.get(d, d[:12]))}</td>{_roles(c)}'
                   f'<td data-sort="{c.cost(prices).usd:.9f}">{escape(_money(c, prices))}</td>'
                   f"<td>{escape(_money(held.get(d, Charge()), prices))}</td></tr>"
                   for d, c in sorted(per_design.items(), key=lambda kv: -kv[1].cost(prices).usd))
    if rows:
        lines.append(f'<table id="usd-designs" class="sortable"><thead><tr><th>design</th>{head}'
                     f"<th>of which held-out</th></tr></thead><tbody>{rows}</tbody></table>")
    lines.append("</div>")
    return "".join(lines)
