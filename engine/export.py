"""``python -m engine.export RUN_DIR DESIGN_ID [--out DIR]``: an archived design as a module for your own agent.

Writes ``DIR/<design_name>.py`` -- the design's source exactly as archived, so ``sha256`` of the file still
names it (its first 16 hex digits are the design id) -- and ``DIR/README.md``: where it comes from, its scores
per benchmark/split, its audit verdict (and the latest replay report, if any), the capability summary and the
contract it implements (``harness.design.contract_text()``), with a short example of wiring it to your own
LLM and embedder. The module imports only the standard library, numpy and the contract modules
``harness.design`` / ``harness.types``.

The archive is opened read-only (``lock=False``); a running engine is not disturbed. A design whose archived
source no longer hashes to its id is refused (exit 5), a hostile one unless ``--force`` (exit 4), an
invalid one always (exit 2: it breaks the contract). Exit 0 when written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from archive import Archive, ArchiveError, Design
from engine.audit.static import capability_lines, static_audit
from engine.search.evaluator import artefact_dir
from harness.design import contract_text
from harness.files import write_text_atomic
from harness.loader import source_hash

EXIT_OK, EXIT_INPUT, EXIT_HOSTILE, EXIT_INTEGRITY = 0, 2, 4, 5


def module_name(design: Design) -> str:
    """A Python module name for the design (``reasoning_bank+swap:update`` -> ``reasoning_bank_swap_update``)."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", design.name).strip("_").lower() or f"design_{design.id}"
    return f"design_{name}" if name[0].isdigit() else name


def latest_replay(run_dir: Path, design_id: str, recorded: list[str] = ()) -> dict | None:
    """The newest replay report (``replay.json``) of the design: in the directories the archive's ``replay``
    events name (``recorded``) or under ``RUN_DIR/evals/<id>/replay-*/``."""
    paths = [Path(o) / "replay.json" for o in recorded]
    paths += list(artefact_dir(run_dir, design_id, "replay").parent.glob("replay-*/replay.json"))
    for path in sorted((p for p in set(paths) if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return json.loads(path.read_text(encoding="utf-8")) | {"path": str(path)}
        except (OSError, ValueError):
            continue
    return None


USAGE = """## Use it in your agent

The module needs `harness.design` and `harness.types` (`pip install` alma-engine, or copy those two small files)
and nothing else of alma-engine. Give it any LLM and embedder with these async methods:

```python
import asyncio
from pathlib import Path

from harness.design import Toolkit
from harness.loader import load_design_file
from harness.types import Episode, Step, Task

class MyLLM:   # e.g. a wrapper around your chat client
    async def complete(self, prompt, *, system=None, json_mode=False, max_tokens=512, temperature=0.0):
        ...   # return the reply text

class MyEmbedder:
    async def embed(self, texts):
        ...   # return one unit vector per text

Memory = load_design_file("{module}.py")   # or import the class from {module}
memory = Memory(Toolkit(llm=MyLLM(), embedder=MyEmbedder(), scratch_dir=Path("memory")))
task = Task(task_id="t1", benchmark="mine", goal="...", observation="...")
hint = asyncio.run(memory.retrieve(task)).get("text", "")   # before the episode: show it to your agent
asyncio.run(memory.update(Episode(task=task, steps=[Step("look", "...")], won=True)))   # after it
```

State lives under `scratch_dir`; keep that directory to keep the memory.
"""


def readme(design: Design, run_dir: Path, module: str, replay: dict | None, static: dict) -> str:
    parents = f", from {', '.join(f'`{p}`' for p in design.parents)}" if design.parents else ""
    lines = [f"# {design.name} -- a memory design exported from alma-engine", "",
             f"`{module}.py` is design `{design.id}` of run `{run_dir}`, byte for byte as archived (the first 16 "
             f"hex digits of its sha256 are its id). Proposed by `{design.proposer}` at step {design.step}, "
             f"generation {design.generation}{parents}; exported {time.strftime('%Y-%m-%d %H:%M')}.",
             "", "## Scores", ""]
    if design.scores:
        lines += ["| benchmark | split | score | reward vs no memory | evaluations |", "|---|---|---|---|---|"]
        for (b, s), sc in sorted(design.scores.items()):
            reward = "n/a" if sc.reward is None else f"{sc.reward:+.3f}"
            lines.append(f"| {b} | {s} | {sc.score:.3f} ± {sc.stderr:.3f} | {reward} | {sc.n} |")
    else:
        reason = f": {design.status_reason}" if design.status_reason else ""
        lines.append(f"Not scored (status `{design.status}`{reason}).")
    note = f" -- {design.audit_note}" if design.audit_note else ""
    lines += ["", "## Audit", "", f"Verdict: **{design.audit or 'not audited'}**{note}"]
    if replay:
        c = replay.get("comparison") or {}
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(replay.get("created_at", 0)))
        lines.append(f"Latest replay ({when}, {replay.get('mode')}): verdict "
                     f"{replay.get('audit', {}).get('verdict')}, "
                     f"{'reproduced exactly' if c.get('exact') else 'did not reproduce exactly'}; report "
                     f"`{replay['path']}`.")
    else:
        lines.append(f"No replay report yet: `python -m engine.replay {run_dir} {design.short_id}` audits it.")
    lines += ["", "Static summary:", "", *[f"    {x}" for x in capability_lines(static)], "",
              USAGE.format(module=module), "## The contract it implements", "", contract_text(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.export", description=__doc__.split("\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("design", metavar="DESIGN_ID", help="design id or a unique prefix of one")
    p.add_argument("--out", help="output directory (default: RUN_DIR/exports/<id>/)")
    p.add_argument("--force", action="store_true", help="export even a design audited hostile")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    run_dir = Path(args.run_dir)
    if not (run_dir / "archive.sqlite").is_file():
        console.print(f"[red]error:[/] {run_dir} is not a run directory (no archive.sqlite)")
        return EXIT_INPUT
    try:
        with Archive.open(run_dir, lock=False) as archive:
            design = archive.get(args.design)
            recorded = [str(e.payload["out"]) for e in archive.events("replay")
                        if isinstance(e.payload, dict) and e.payload.get("design") == design.id
                        and e.payload.get("out")]
    except ArchiveError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_INPUT
    if source_hash(design.source) != design.id:
        console.print(f"[red]error:[/] the archived source of {design.id} no longer hashes to its id: the archive "
                      "was edited; not exported")
        return EXIT_INTEGRITY
    if design.status == "invalid":
        console.print(f"[red]error:[/] {design.name} ({design.id}) is invalid ({design.status_reason}); it "
                      "breaks the contract and is not exported")
        return EXIT_INPUT
    if design.audit == "hostile" and not args.force:
        console.print(f"[red]refused:[/] {escape(design.name)} ({design.id}) is audited hostile "
                      f"({escape(design.audit_note or '')}); pass --force to export it anyway")
        return EXIT_HOSTILE
    out = Path(args.out) if args.out else run_dir / "exports" / design.id
    module = module_name(design)
    static = static_audit(design.source)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{module}.py", design.source)
    replay = latest_replay(run_dir, design.id, recorded)
    write_text_atomic(out / "README.md", readme(design, run_dir, module, replay, static))
    console.print(f"exported {escape(design.name)} ({design.id}, audit {design.audit or 'none'}) to "
                  f"{out / (module + '.py')}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
