"""The static half of a design's audit: what its source can do, read with libcst (nothing is executed).

:func:`capabilities` summarises a design for a person: the modules it imports, the storage it uses (SQLite,
files, numpy arrays), where it calls the toolkit's LLM and embedder (by method), and its size. :func:`static_audit`
adds the validator's policy findings and ruff's security rules (``ruff check --select S``) and names the
findings that make a design *suspicious* on their own (:data:`RISKY_RULES`, :data:`RISKY_RUFF`); the rest are
reported for information (e.g. S608, an SQL string built with an f-string, is common and harmless in a design
that only talks to its own SQLite file).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from engine.code.syntax import design_classes, dotted, import_aliases, resolve
from engine.code.validate import load_policy, run_ruff, validate

#: Validator rules that are about safety (not style or the contract): any of them makes a design suspicious.
RISKY_RULES = frozenset({"forbidden-import", "disallowed-import", "forbidden-call", "forbidden-attribute",
                         "dunder-access", "dynamic-attribute", "builtin-rebind", "forbidden-path"})
#: Ruff security codes that make a design suspicious: code execution, deserialisation, processes, network.
RISKY_RUFF = frozenset({"S102", "S104", "S301", "S302", "S307", "S310", "S312", "S321", "S401", "S402", "S403",
                        "S404", "S411", "S412", "S413", "S415", "S501", "S502", "S503", "S504", "S506", "S507",
                        "S601", "S602", "S603", "S604", "S605", "S606", "S607", "S609"})

_FILE_METHODS = frozenset({"read_text", "write_text", "read_bytes", "write_bytes", "open", "unlink", "mkdir",
                           "rename", "touch", "rmdir", "iterdir", "glob", "rglob"})
_NUMPY_IO = frozenset({"numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.loadtxt",
                       "numpy.savetxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.memmap"})


class _Scan(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, aliases: dict[str, str]):
        super().__init__()
        self.aliases = aliases
        self.imports: set[str] = set()
        self.functions: list[str] = []  # enclosing def names (innermost last)
        self.llm: list[dict[str, Any]] = []
        self.embed: list[dict[str, Any]] = []
        self.sqlite: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.db_path = False
        self.counts: Counter[str] = Counter()

    def _where(self, node: cst.CSTNode, what: str) -> dict[str, Any]:
        line = self.get_metadata(PositionProvider, node).start.line
        return {"call": what, "method": self.functions[-1] if self.functions else "<module>", "line": line}

    def visit_Import(self, node: cst.Import) -> None:
        self.imports.update(dotted(a.name) or "" for a in node.names)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.module is not None and not node.relative:
            self.imports.add(dotted(node.module) or "")

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.counts["classes"] += 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.counts["async_functions" if node.asynchronous else "functions"] += 1
        self.functions.append(node.name.value)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.functions.pop()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "db_path" and (dotted(node) or "").endswith("toolkit.db_path"):
            self.db_path = True

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func) or ""
        target = resolve(node.func, self.aliases) or ""
        if name.endswith("llm.complete") or name.endswith("llm.chat"):
            self.llm.append(self._where(node, name))
        elif name.endswith("toolkit.embed") or name.endswith("embedder.embed"):
            self.embed.append(self._where(node, name))
        elif target == "sqlite3.connect":
            self.sqlite.append(self._where(node, target))
        elif target == "open" or target in _NUMPY_IO or target in ("json.dump", "json.load"):
            self.files.append(self._where(node, target))
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value in _FILE_METHODS \
                and not target.startswith(("re.", "asyncio.")):
            self.files.append(self._where(node, name or f"<expr>.{node.func.attr.value}"))


def capabilities(source: str) -> dict[str, Any]:
    """What the design can do, by static reading: imports, storage, LLM/embedding call sites, size.

    Returns ``{"parses": False, "error": ...}`` when the source does not parse.
    """
    size = {"bytes": len(source.encode("utf-8")), "lines": source.count("\n") + 1}
    try:
        module = cst.parse_module(source)
    except (cst.ParserSyntaxError, RecursionError, ValueError) as exc:
        return {"parses": False, "error": str(exc).splitlines()[0][:300], "size": size}
    scan = _Scan(import_aliases(module))
    MetadataWrapper(module).visit(scan)
    designs = [c.name.value for c in design_classes(module)]
    size.update({k: scan.counts[k] for k in ("classes", "functions", "async_functions")})
    return {
        "parses": True,
        "design_classes": designs,
        "imports": sorted(i for i in scan.imports if i),
        "storage": {"sqlite": bool(scan.sqlite) or scan.db_path, "sqlite_connects": scan.sqlite,
                    "files": scan.files},
        "llm": {"calls": len(scan.llm), "methods": sorted({c["method"] for c in scan.llm}), "sites": scan.llm},
        "embeddings": {"calls": len(scan.embed), "methods": sorted({c["method"] for c in scan.embed}),
                       "sites": scan.embed},
        "size": size,
    }


def ruff_security(source: str) -> list[dict[str, Any]]:
    """Ruff's security rules (``--select S``) on the source: ``[{code, line, col, message}]``; a missing or
    failing ruff gives one ``{"code": "unavailable", ...}`` item."""
    policy = dataclasses.replace(load_policy(), ruff_select=("S",), ruff_rules={})
    out = []
    for f in run_ruff(source, policy):
        code = f.rule.removeprefix("ruff-") if f.rule.startswith("ruff-") else "unavailable"
        out.append({"code": code, "line": f.line, "col": f.col, "message": f.message})
    return out


def static_audit(source: str) -> dict[str, Any]:
    """Validator findings, ruff security findings, the capability summary, and the reasons (if any) that
    make the design suspicious statically (``risks``)."""
    report = validate(source)
    findings = [dataclasses.asdict(f) for f in report.findings]
    security = ruff_security(source)
    risks = [f"static [{f['rule']}] line {f['line']}: {f['message'][:160]}" for f in findings
             if f["rule"] in RISKY_RULES and f["severity"] == "error"]
    risks += [f"static ruff {s['code']} line {s['line']}: {s['message'][:160]}" for s in security
              if s["code"] in RISKY_RUFF]
    return {"validator": {"ok": report.ok, "findings": findings}, "ruff_security": security,
            "capabilities": capabilities(source), "risks": risks}


def capability_lines(static: dict[str, Any]) -> list[str]:
    """The static audit as short readable lines (for the text report and the export README)."""
    caps = static.get("capabilities", {})
    lines = []
    v = static.get("validator", {})
    errors = [f for f in v.get("findings", []) if f.get("severity") == "error"]
    lines.append(f"validator: {'ok' if v.get('ok') else 'FAILS'} ({len(errors)} error(s), "
                 f"{len(v.get('findings', [])) - len(errors)} warning(s))")
    lines += [f"  line {f['line']}: [{f['rule']}] {f['message'][:140]}" for f in v.get("findings", [])[:12]]
    sec = static.get("ruff_security", [])
    codes = Counter(s["code"] for s in sec)
    lines.append("ruff security (S): " + (", ".join(f"{c} x{n}" for c, n in sorted(codes.items())) or "none"))
    if not caps.get("parses", False):
        lines.append(f"capabilities: the source does not parse ({caps.get('error', '')})")
        return lines
    storage = caps["storage"]
    kinds = (["sqlite"] if storage["sqlite"] else []) + (["files"] if storage["files"] else [])
    lines.append("imports: " + (", ".join(caps["imports"]) or "none"))
    lines.append(f"storage: {', '.join(kinds) or 'in-memory only'} ({len(storage['files'])} file call site(s))")
    for what in ("llm", "embeddings"):
        c = caps[what]
        lines.append(f"{'LLM' if what == 'llm' else 'embeddings'}: {c['calls']} call site(s)"
                     + (f" in {', '.join(c['methods'])}" if c["methods"] else ""))
    s = caps["size"]
    lines.append(f"size: {s['bytes']} bytes, {s['lines']} lines, {s.get('classes', 0)} classes, "
                 f"{s.get('functions', 0) + s.get('async_functions', 0)} functions")
    return lines
