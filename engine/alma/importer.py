"""``python -m engine.import_alma FILE [--out PATH]``: convert a design written for the official ALMA code.

An official ALMA design is a module with ``Sub_memo_layer`` subclasses (each a database plus async
``retrieve(**kw)`` / ``update(**kw)``) and one ``MemoStructure`` subclass whose async ``general_retrieve(recorder)``
/ ``general_update(recorder)`` orchestrate them; it imports those bases from ``agents.memo_structure``, the
recorder from ``eval_envs.base_envs`` and its model clients (``Agent``, ``Embedding``) from ``utils.hire_agent``.

The converter (libcst; nothing is executed until the result has validated) removes those imports, writes
stand-ins for them backed by the toolkit (:mod:`engine.alma.shim`), keeps the design's own code unchanged, and
appends one ``MemoryDesign`` subclass whose ``retrieve`` / ``update`` call the converted ``general_retrieve`` /
``general_update``. Then it validates the result (:func:`engine.code.validate.validate`) and loads it
(:mod:`harness.loader`).

What it cannot convert, it explains with the line and what to do: libraries and services a design may not use
(vector databases such as Chroma, networkx, network clients, ``os``/``subprocess``), recorder APIs the official
runner provides but alma-engine does not (``recorder.user_id`` ...) and ``init`` keys it does not fill, sync/async
mismatches (a coroutine called without ``await``, ``await`` on a plain function, nested event loops), and a
``MemoStructure`` that cannot be built without arguments. Exit codes: 0 converted, validated and loaded;
1 converted (written) but it does not validate or load; 2 not convertible at all (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper

from engine.alma import shim as alma_shim
from engine.alma.analysis import ALMA_MODULES, Facts, Problem, async_problems, method_async
from engine.code.syntax import dotted
from engine.code.validate import ValidationReport, validate


@dataclass
class Conversion:
    source: str | None
    memo_class: str | None = None
    problems: list[Problem] = field(default_factory=list)
    validation: ValidationReport | None = None
    loaded: bool = False
    load_error: str | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return self.source is not None and not self.errors and self.loaded


class _DropAlmaImports(cst.CSTTransformer):
    def __init__(self):
        super().__init__()
        self.depth = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1

    def leave_FunctionDef(self, original_node, updated_node):
        self.depth -= 1
        return updated_node

    def leave_SimpleStatementLine(self, original_node, updated_node):
        alma = [s for s in updated_node.body if isinstance(s, cst.ImportFrom) and not s.relative
                and s.module is not None and dotted(s.module) in ALMA_MODULES]
        if not alma:
            return updated_node
        rest = [s for s in updated_node.body if s not in alma]
        if rest:
            return updated_node.with_changes(body=rest)
        return cst.parse_statement("pass") if self.depth else cst.RemovalSentinel.REMOVE


def convert(text: str, name: str = "<alma design>") -> Conversion:
    """Convert an official ALMA design's source (see the module docstring)."""
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        return Conversion(None, problems=[Problem(exc.raw_line, "syntax-error", f"cannot be parsed: {exc.message}")])
    facts = Facts()
    MetadataWrapper(module, unsafe_skip_copy=True).visit(facts)
    problems = list(facts.problems)
    memo_names = [c for c, info in facts.classes.items()
                  if any(facts.alma_names.get(b, b) == "MemoStructure" for b in info["bases"])]
    if len(memo_names) != 1:
        why = ("no class derives from MemoStructure: this is not an ALMA design" if not memo_names else
               f"several classes derive from MemoStructure ({', '.join(memo_names)}): keep the one the runner uses")
        return Conversion(None, problems=problems + [Problem(0, "memo-structure", why)])
    memo = memo_names[0]
    methods = facts.classes[memo]["methods"]
    init = methods.get("__init__")
    if init and init["required"]:
        problems.append(Problem(init["line"], "memo-structure", f"{memo}.__init__ requires "
                                f"{', '.join(init['required'])}; the converted design builds it with no arguments: "
                                "give them defaults"))
    awaits = {}
    for method in ("general_retrieve", "general_update"):
        is_async = method_async(facts, memo, method)
        awaits[method] = "await " if is_async else ""
        if method not in methods:
            problems.append(Problem(facts.classes[memo]["line"], "memo-structure", f"{memo} does not define "
                                    f"{method}: the base default (nothing retrieved / nothing learned) is used",
                                    "warning"))
        elif not is_async:
            problems.append(Problem(methods[method]["line"], "sync-async", f"{memo}.{method} is a plain def: it "
                                    "is called synchronously and blocks the event loop while it runs", "warning"))
    problems += async_problems(facts)
    body = module.visit(_DropAlmaImports())
    used = set(facts.alma_names.values())
    shim = alma_shim.HEADER + (alma_shim.LAYER if "Sub_memo_layer" in used else "") \
        + (alma_shim.AGENT if "Agent" in used else "") + (alma_shim.EMBEDDING if "Embedding" in used else "")
    aliases = [f"{local} = {real}\n" for local, real in sorted(facts.alma_names.items()) if local != real]
    shim += ("\n" + "".join(aliases)) if aliases else ""
    shim += alma_shim.FOOTER
    wrapper = f"{memo}Design" if f"{memo}Design" not in facts.classes else f"{memo}AlmaEngineDesign"
    tail = alma_shim.WRAPPER.format(wrapper=wrapper, memo=memo, await_update=awaits["general_update"],
                                    await_retrieve=awaits["general_retrieve"])
    stmts = list(body.body)
    cut = 0
    while cut < len(stmts) and ((cut == 0 and _is_docstring(stmts[0])) or _is_future(stmts[cut])):
        cut += 1
    head = body.with_changes(body=stmts[:cut]).code if cut else ""
    rest = body.with_changes(body=stmts[cut:], header=[] if cut else body.header).code
    source = (f"# Converted from the official-ALMA design {name} by engine.import_alma.\n" + head + shim
              + "\n\n" + rest.strip("\n") + "\n" + tail)
    conv = Conversion(source, memo, problems)
    conv.validation = validate(source)
    reported = {x.kind for x in problems}
    for f in conv.validation.findings:
        explained = reported & {"forbidden-import", "external-library"}
        if f.rule in ("forbidden-import", "disallowed-import") and explained:
            continue  # already explained above, with the original line
        conv.problems.append(Problem(f.line, f"validator:{f.rule}", f"(converted file) {f.message}", f.severity))
    if conv.validation.ok and not conv.errors:
        from harness.errors import DesignError
        from harness.loader import load_design_source

        try:
            load_design_source(source, name)
            conv.loaded = True
        except DesignError as exc:
            conv.load_error = str(exc)
            conv.problems.append(Problem(0, "load", f"the converted design does not load: {exc}"))
    return conv


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def _is_future(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and
            all(isinstance(s, cst.ImportFrom) and s.module is not None and dotted(s.module) == "__future__"
                for s in stmt.body))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.import_alma", description=__doc__.split("\n")[0])
    p.add_argument("file", metavar="FILE", help="a design written for the official ALMA code")
    p.add_argument("--out", help="where to write the converted design (default: <FILE stem>_converted.py beside it)")
    args = p.parse_args(argv)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    conv = convert(text, path.name)
    errors, warnings = conv.errors, [x for x in conv.problems if x.severity == "warning"]
    if conv.source is None:
        print(f"{path}: cannot be converted (nothing written):", file=sys.stderr)
        print("\n".join(f"  {x.text()}" for x in conv.problems), file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_converted.py")
    out.write_text(conv.source, encoding="utf-8")
    if errors:
        print(f"{path}: converted to {out}, but it cannot be used as it is ({len(errors)} problem(s)):",
              file=sys.stderr)
        print("\n".join(f"  {x.text()}" for x in errors), file=sys.stderr)
    if warnings:
        print(f"{len(warnings)} caveat(s):\n" + "\n".join(f"  {x.text()}" for x in warnings), file=sys.stderr)
    if conv.ok:
        print(f"{path}: converted {conv.memo_class} to {out} (validated and loaded)", file=sys.stderr)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
