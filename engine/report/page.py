"""``python -m engine.report RUN_DIR [--out FILE]``: one self-contained HTML report of an evolve run.

The page (default ``RUN_DIR/report.html``) holds the lineage tree of designs, the best score over steps
against every baseline, the scores per benchmark and split, every design's diff to its parent(s), analysis,
plan and code, and the run's costs. It needs nothing but the file: no CDN, no fetch; CSS, SVG and a few lines
of JavaScript (table sorting) are inline. The archive is opened read-only (``lock=False``, one read
snapshot), so a report can be written while a run goes on; the file is replaced atomically.

From code: :func:`write_report` (``run_dir -> Path``), e.g. at the end of a run and after each step.
Exit codes: 0 written, 2 bad input (not a run directory, no archive, an archive this version cannot read).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from archive import Archive, ArchiveError, Design, Evaluation
from archive.store import DB_NAME
from engine.cost.html import cost_section
from engine.cost.ledger import Ledger
from engine.report.html import CSS, JS, costs_tables, design_section, fmt_score, fmt_time, scores_table
from engine.report.svg import Baseline, Node, a, history_svg, legend_svg, lineage_svg
from harness.files import write_text_atomic


class ReportError(Exception):
    """The report cannot be written (the message says what is wrong and what to do)."""


@dataclass
class RunView:
    """Everything the report shows, read from the archive in one snapshot."""

    run_dir: Path
    designs: list[Design]
    evaluations: dict[str, list[Evaluation]]
    baseline: str | None
    benchmark: str | None
    split: str | None
    keys: list[tuple[str, str]]
    histories: dict[tuple[str, str], list[tuple[int, float, str]]]
    best: dict[tuple[str, str], str]
    costs: dict
    tokens_used: int
    steps_done: int
    steps_planned: int | None
    span: tuple[float, float] | None
    config: dict = field(default_factory=dict)
    ledger: Ledger | None = None  # what the run spent (engine.cost.ledger)

    @property
    def main_key(self) -> tuple[str, str] | None:
        return self.keys[0] if self.keys else None


def _config(run_dir: Path) -> dict:
    try:
        return tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def read_run(run_dir: str | os.PathLike) -> RunView:
    """Read a run directory (read-only) into a :class:`RunView`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a directory; pass a run directory (runs/<run-id>).")
    if not (run_dir / DB_NAME).is_file():
        raise ReportError(f"{run_dir} has no {DB_NAME}: it is not a run directory (or the run has not started).")
    config = _config(run_dir)
    ev_cfg = config.get("eval", {}) if isinstance(config.get("eval"), dict) else {}
    try:
        archive = Archive.open(run_dir, lock=False)
    except ArchiveError as exc:
        raise ReportError(str(exc)) from exc
    try:
        with archive.snapshot():
            designs = archive.designs()
            evaluations: dict[str, list[Evaluation]] = {}
            for e in archive.evaluations():
                evaluations.setdefault(e.design_id, []).append(e)
            counts: dict[tuple[str, str], int] = {}
            for d in designs:
                for key in d.scores:
                    counts[key] = counts.get(key, 0) + 1
            main = (ev_cfg.get("benchmark"), ev_cfg.get("split"))
            keys = sorted(counts, key=lambda k: (k != main, k[0] != main[0], -counts[k], k))
            histories = {k: archive.best_history(benchmark=k[0], split=k[1]) for k in keys}
            best = {}
            for k in keys:
                top = archive.best(1, benchmark=k[0], split=k[1])
                if top:
                    best[k] = top[0].id
            events = archive.events()
            view = RunView(
                run_dir=run_dir, designs=designs, evaluations=evaluations, baseline=archive.baseline,
                benchmark=ev_cfg.get("benchmark") or (keys[0][0] if keys else None),
                split=ev_cfg.get("split") or (keys[0][1] if keys else None), keys=keys, histories=histories,
                best=best, costs=archive.cost_totals(), tokens_used=int(archive.get_meta("tokens_used", 0) or 0),
                steps_done=sum(1 for e in events if e.kind == "step_done"),
                steps_planned=config.get("steps") if isinstance(config.get("steps"), int) else None,
                span=(events[0].created_at, events[-1].created_at) if events else None, config=config,
                ledger=Ledger.read(archive))
    except ArchiveError as exc:
        raise ReportError(f"cannot read the archive of {run_dir}: {exc}") from exc
    finally:
        archive.close()
    return view


# ------------------------------------------------------------------------------------------------ render
def _nodes(view: RunView) -> tuple[list[Node], float, float]:
    key = view.main_key
    best = view.best.get(key) if key else None
    by_id = {d.id: d for d in view.designs}
    path = set()
    current = best
    while current in by_id and current not in path:  # the best design's first-parent line
        path.add(current)
        parents = by_id[current].parents
        current = parents[0] if parents else None
    nodes = []
    for d in view.designs:
        s = d.scores.get(key) if key else None
        nodes.append(Node(id=d.id, name=d.name, parents=d.parents, proposer=d.proposer, generation=d.generation,
                          step=d.step, status=d.status, audit=d.audit, score=s.score if s else None,
                          stderr=s.stderr if s else None, reward=s.reward if s else None,
                          note=(d.audit_note or "")[:200], best=d.id == best, on_best_path=d.id in path))
    values = [n.score for n in nodes if n.score is not None and n.audit != "hostile"]  # hostile: untrusted
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = max(0.0, lo - 0.05), hi + 0.05
    return nodes, lo, hi


def _charts(view: RunView) -> str:
    max_step = max([d.step for d in view.designs] + [view.steps_done, 1])
    out = []
    for i, (b, sp) in enumerate(view.keys):
        scored = [d for d in view.designs if (b, sp) in d.scores]
        points = [(d.step, d.scores[(b, sp)].score, d.id, d.name) for d in scored
                  if d.proposer != "seed" and d.audit != "hostile" and d.status == "evaluated"]
        baselines = [Baseline(d.id, d.name, d.scores[(b, sp)].score, d.id == view.baseline)
                     for d in scored if d.proposer == "seed"]
        out.append(f'<h3>{escape(b)} / {escape(sp)}</h3>')
        out.append(history_svg(view.histories.get((b, sp), []), points, baselines, benchmark=b, split=sp,
                               max_step=max_step, svg_id="best-history" if i == 0 else None))
    if not out:
        out.append('<p class="empty" id="best-history-empty">no design has a score yet</p>')
    return "".join(out)


def _cards(view: RunView) -> str:
    key = view.main_key
    by_id = {d.id: d for d in view.designs}
    best = by_id.get(view.best.get(key)) if key else None
    base = by_id.get(view.baseline) if view.baseline else None
    seeds = [d for d in view.designs if d.proposer == "seed" and key in d.scores]
    best_seed = max(seeds, key=lambda d: d.scores[key].score, default=None)
    cards = [("steps", f"{view.steps_done}" + (f" / {view.steps_planned}" if view.steps_planned else "")),
             ("designs", str(len(view.designs))),
             ("best design", f'<a href="#design-{a(best.id)}">{escape(best.name)}</a>' if best else "\u2013"),
             ("best score", fmt_score(best.scores[key]) if best else "\u2013"),
             ("best seed", f"{escape(best_seed.name)} {best_seed.scores[key].score:.3f}" if best_seed else "\u2013"),
             ("no memory", fmt_score(base.scores.get(key)) if base and key else "\u2013"),
             ("tokens", f"{view.tokens_used:,}")]
    return '<div class="cards" id="summary">' + "".join(
        f'<div class="card"><div class="k">{k}</div><div class="v">{v}</div></div>' for k, v in cards) + "</div>"


def _heldout_section(run_dir: Path) -> str:
    """The run's held-out table (``heldout.json``) and its verdict; nothing before the run wrote it."""
    from engine.search.heldout import read_heldout

    doc = read_heldout(run_dir)
    if not doc:
        return ""
    rows = "".join(f"<tr><td>{escape(str(d['name']))}</td><td>{escape(str(d['kind']))}</td><td>"
                   + ("-" if d.get("score") is None else f"{d['score']:.3f} &plusmn; {d['stderr']:.3f}")
                   + "</td></tr>" for d in doc.get("designs", []))
    return (f'<section class="part" id="heldout-section"><h2>Held-out suite ({escape(str(doc.get("split")))}, '
            f'suite seed {escape(str(doc.get("suite_seed")))}, {escape(str(doc.get("n_tasks")))} tasks)</h2>'
            f'<p>{escape(str(doc.get("verdict", "")))}</p><div class="scroll"><table><thead><tr><th>design</th>'
            f'<th>kind</th><th>held-out score</th></tr></thead><tbody>{rows}</tbody></table></div></section>')


def render(view: RunView) -> str:
    """The whole page as one string."""
    nodes, lo, hi = _nodes(view)
    key = view.main_key
    by_id = {d.id: d for d in view.designs}
    children: dict[str, list[Design]] = {}
    for d in view.designs:
        for p in d.parents:
            children.setdefault(p, []).append(d)

    def rank(d: Design) -> tuple:
        s = d.scores.get(key) if key else None
        return (s is None, d.audit == "hostile", -(s.score if s else 0.0), d.step, d.created_at)

    eval_wall = sum(e.wall_s or 0.0 for evs in view.evaluations.values() for e in evs)
    sections = "".join(design_section(d, by_id, children.get(d.id, []), view.evaluations.get(d.id, []), view.keys)
                       for d in view.designs)
    run_id = view.run_dir.resolve().name
    where = f"{view.benchmark or '?'} / {view.split or '?'}"
    agent = view.config.get("eval", {}).get("agent") if isinstance(view.config.get("eval"), dict) else None
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>alma-engine run {escape(run_id)}</title><style>{CSS}</style></head>
<body data-run="{a(run_id)}" data-generated="{time.time():.0f}">
<header><h1>alma-engine run {escape(run_id)}</h1><div class="sub">benchmark/split {escape(where)} &middot;
{f"agent {escape(str(agent))} &middot; " if agent else ""}generated {fmt_time(time.time())} &middot; {escape(str(view.run_dir))}</div></header>
<nav><a href="#lineage-section">lineage</a><a href="#history-section">best over steps</a>
<a href="#scores-section">scores</a><a href="#costs-section">costs</a><a href="#designs">designs</a></nav>
<main>{_cards(view)}
<section class="part" id="lineage-section"><h2>Lineage</h2>
<p>Rows are generations; an edge runs from parent to child (dashed: a crossover's second parent; gold: the best
design's line). Colour: score on {escape(where)}; shape: proposer; badge: audit verdict. Click a node for its
code and diff.</p>
{legend_svg(lo, hi)}
<div class="zoom"><label>zoom <input type="range" id="lineage-zoom" min="20" max="150" value="100"></label>
<span id="lineage-zoom-value">100%</span></div>
<div class="scroll">{lineage_svg(nodes, lo, hi, f"lineage of {len(nodes)} designs")}</div></section>
<section class="part" id="history-section"><h2>Best score over steps</h2>
<p>Red: best evaluated, non-hostile design proposed so far; grey dots: every evolved design; horizontal lines: the
seeds (baselines; dashed black: no memory).</p>
{_charts(view)}</section>
{_heldout_section(view.run_dir)}
<section class="part" id="scores-section"><h2>Scores per benchmark and split</h2>
<p>Score: mean deployment success &plusmn; stderr, pooled over evaluations; reward: score minus the no-memory
baseline's on the same benchmark/split. Click a column to sort.</p>
<div class="scroll">{scores_table(sorted(view.designs, key=rank), view.keys, view.baseline, view.best.get(key))}</div></section>
<section class="part" id="costs-section"><h2>Costs</h2>
{costs_tables(view.costs, view.tokens_used, view.span, eval_wall)}
{cost_section(view.ledger, view.config, {d.id: d.name for d in view.designs}) if view.ledger else ""}</section>
<section class="part" id="designs-section"><h2>Designs</h2>
<div id="designs">{sections}</div></section>
</main><footer>alma-engine report &middot; self-contained: no external resources</footer>
<script>{JS}</script>
</body></html>
"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``); returns its path.
    Raises :class:`ReportError`."""
    view = read_run(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    try:
        write_text_atomic(path, render(view))
    except OSError as exc:
        raise ReportError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.report", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (runs/<run-id>)")
    p.add_argument("--out", help="where to write the HTML (default: RUN_DIR/report.html)")
    args = p.parse_args(argv)
    try:
        path = write_report(args.run_dir, args.out)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
