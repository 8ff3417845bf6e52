"""Static validation of a memory design, before anything runs: contract, safety policy, size, ruff.

:func:`validate` never executes the design. It parses the source (Python's parser for the verdict on syntax,
libcst for the checks), checks the contract read from :data:`harness.design.CONTRACT` (so contract, loader and
validator cannot disagree), applies the safety policy of ``engine/code/policy.toml`` (import allowlist, forbidden
calls/names/attributes, dunder reach-through, rebinding builtins, path literals, size limits) and runs ruff's
error rules. Each problem becomes a :class:`Finding` with a stable rule id; :meth:`ValidationReport.text` is
written for a person and for the meta agent (one line per finding). Columns are 1-based.

Dunder policy: attributes such as ``__class__``, ``__dict__``, ``__globals__``, ``__subclasses__`` are the
classic sandbox escapes and are forbidden; the few a design legitimately needs (``super().__init__``,
``type(x).__name__``, protocol methods like ``__enter__``) are listed in the policy. Bare names ``__name__`` and
``__file__`` of the design's own module are allowed; ``__builtins__``, ``__loader__``, ``__spec__`` are not.
Allowed modules re-export what they import (``pathlib.os``, ``random._os``, ``typing.sys``): reaching a forbidden
module through an imported module's attributes is an error too.

The validator is the first line of defence, not the last: it cannot follow values through variables or strings
built at run time; the sandbox is what isolates a design.
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from engine.code.syntax import contract_problems, dotted, import_aliases, resolve

_DUNDER_RE = re.compile(r"^__\w+__$")
_STRING_DUNDER_RE = re.compile(r"(?:[.\[]|^)(__\w+__)")  # "{0.__class__}", "x[__dict__]", "__globals__"
_ATTR_BUILTINS = ("getattr", "setattr", "delattr")
_PATH_KEYWORDS = ("file", "path", "database", "fname", "filename")
_PATH_ESCAPE_RE = re.compile(r"^(/|\\|~|[A-Za-z]:[\\/])|(^|[\\/])\.\.([\\/]|$)")


@dataclass(frozen=True)
class Finding:
    """One problem: ``rule`` is a stable id (e.g. ``forbidden-call``), ``line``/``col`` 1-based (0 = unknown)."""

    rule: str
    line: int
    col: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def text(self) -> str:
        level = "" if self.severity == "error" else " (warning)"
        return f"{f'line {self.line}' if self.line else 'module'}: [{self.rule}]{level} {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    """The verdict: ``ok`` is true when no finding is an error (warnings do not block)."""

    ok: bool
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}

    def text(self, limit: int = 40) -> str:
        if not self.findings:
            return "ok: no findings"
        lines = [f.text() for f in self.findings[:limit]]
        if len(self.findings) > limit:
            lines.append(f"... and {len(self.findings) - limit} more findings")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, "findings": [asdict(f) for f in self.findings]}, indent=2)


@dataclass(frozen=True)
class Policy:
    """``engine/code/<name>.toml`` as typed fields: ``<table>_<key>`` (see the comments in policy.toml)."""

    imports_allowed: tuple[str, ...]
    imports_forbidden: tuple[str, ...]
    calls_forbidden_builtins: tuple[str, ...]
    calls_forbidden_names: tuple[str, ...]
    calls_forbidden_attributes: tuple[str, ...]
    calls_forbidden_keywords: tuple[str, ...]
    dunders_allowed_attributes: tuple[str, ...]
    paths_functions: tuple[str, ...]
    builtins_protected: tuple[str, ...]
    limits_max_bytes: int
    limits_max_lines: int
    limits_max_classes: int
    limits_max_functions: int
    ruff_select: tuple[str, ...]
    ruff_timeout_s: float
    ruff_rules: dict[str, str]


@functools.lru_cache(maxsize=8)
def load_policy(name: str = "policy") -> Policy:
    """Load ``engine/code/<name>.toml`` (packaged with the engine); unknown or missing keys raise TypeError."""
    data = tomllib.loads(importlib.resources.files("engine.code").joinpath(f"{name}.toml").read_text("utf-8"))
    return Policy(**{f"{table}_{key}": tuple(value) if isinstance(value, list) else value
                     for table, entries in data.items() for key, value in entries.items()})


def policy_text(policy: Policy | None = None) -> str:
    """The safety policy as instructions for the meta agent (combine with ``harness.design.contract_text()``)."""
    p = policy or load_policy()
    return "\n".join([
        "Safety policy (checked statically before your design runs; a violation rejects the design):",
        "- Import only these modules (and their submodules): " + ", ".join(p.imports_allowed) + ".",
        "- Never import or call into: " + ", ".join(p.imports_forbidden) + ".",
        "- Do not use " + ", ".join(f"{n}()" for n in p.calls_forbidden_builtins) + ", nor the names "
        + ", ".join(p.calls_forbidden_names) + ".",
        "- No dunder attribute access (x.__class__, __dict__, __globals__, __subclasses__, __mro__, ...) except "
        + ", ".join(p.dunders_allowed_attributes) + "; no dunder attributes inside format strings.",
        "- getattr/setattr/delattr need a literal, non-dunder attribute name (use a dict for dynamic keys).",
        "- Forbidden attributes on any object: " + ", ".join(p.calls_forbidden_attributes)
        + "; forbidden keyword arguments: " + ", ".join(p.calls_forbidden_keywords) + ".",
        "- Path literals given to " + ", ".join(p.paths_functions) + " or joined with `/` must be relative and "
        "without `..`; keep files under self.toolkit.scratch_dir (SQLite at self.toolkit.db_path).",
        "- Do not rebind these builtins (assignment, def/class, import-as, loop/with target, parameter, `global`): "
        + ", ".join(p.builtins_protected) + ".",
        f"- Size limits: {p.limits_max_bytes} bytes, {p.limits_max_lines} lines, {p.limits_max_classes} classes, "
        f"{p.limits_max_functions} functions.",
        "- No syntax errors, undefined names or redefinitions (ruff " + ",".join(p.ruff_select) + ").",
    ])


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _literal_prefix(node: cst.CSTNode) -> str | None:
    """The literal text a string expression starts with (a whole simple string, an f-string's first part)."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if isinstance(node, cst.FormattedString) and node.parts and isinstance(node.parts[0], cst.FormattedStringText):
        return node.parts[0].value
    return _literal_prefix(node.left) if isinstance(node, cst.ConcatenatedString) else None


def _bound_names(target: cst.CSTNode) -> list[cst.Name]:
    if isinstance(target, cst.Name):
        return [target]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _bound_names(el.value)]
    return _bound_names(target.value) if isinstance(target, cst.StarredElement) else []


# node type -> attribute holding what it binds (checked for rebinding builtins)
_TARGETS = {cst.AssignTarget: "target", cst.AnnAssign: "target", cst.AugAssign: "target", cst.For: "target",
            cst.CompFor: "target", cst.NamedExpr: "target", cst.Del: "target", cst.AsName: "name",
            cst.Param: "name", cst.FunctionDef: "name", cst.ClassDef: "name", cst.NameItem: "name"}
# of these, the ones whose Name is a definition rather than a reference
_DEFINES = (cst.AsName, cst.Param, cst.FunctionDef, cst.ClassDef, cst.NameItem, cst.ImportAlias)


class _PolicyVisitor(cst.CSTVisitor):
    """Collects policy findings over the whole module (positions are resolved afterwards, only if needed)."""

    def __init__(self, policy: Policy, aliases: dict[str, str]):
        super().__init__()
        self.p, self.aliases = policy, aliases
        self.found: list[tuple[cst.CSTNode | None, str, str, str]] = []
        self.skip: set[int] = set()  # Name nodes that are not references (attribute, keyword, definitions)
        self.forbidden_tops = {m.split(".")[0] for m in policy.imports_forbidden}
        self.classes = self.functions = 0

    def add(self, node: cst.CSTNode, rule: str, message: str) -> None:
        self.found.append((node, rule, message, "error"))

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.classes += isinstance(node, cst.ClassDef)
        self.functions += isinstance(node, cst.FunctionDef)
        if isinstance(node, _DEFINES) and isinstance(getattr(node, "name", None), cst.Name):
            self.skip.add(id(node.name))
        attr = _TARGETS.get(type(node))
        target = getattr(node, attr, None) if attr else None
        if target is not None:
            for name in _bound_names(target):
                if name.value in self.p.builtins_protected:
                    self.add(name, "builtin-rebind", f"rebinding the builtin {name.value!r} is not allowed; "
                             "choose another name")
            if isinstance(target, (cst.Attribute, cst.Subscript)):
                root = resolve(target.value if isinstance(target, cst.Subscript) else target, self.aliases) or ""
                if root.split(".")[0] in ("builtins", "__builtins__"):
                    self.add(target, "builtin-rebind", "assigning into builtins is not allowed")
        if isinstance(node, (cst.SimpleString, cst.FormattedStringText)):
            text = node.evaluated_value if isinstance(node, cst.SimpleString) else node.value
            for dunder in _STRING_DUNDER_RE.findall(text if isinstance(text, str) else ""):
                if dunder not in self.p.dunders_allowed_attributes:
                    self.add(node, "dunder-access", f"a string that reaches {dunder} (format field or attribute "
                             "name) is not allowed")
        return super().on_visit(node)

    # -- imports
    def _check_module(self, node: cst.CSTNode, module: str) -> None:
        if _under(module, self.p.imports_forbidden):
            self.add(node, "forbidden-import", f"import of {module!r} is forbidden: designs may not reach "
                     "processes, the network, native code or the interpreter's internals")
        elif not _under(module, self.p.imports_allowed):
            self.add(node, "disallowed-import", f"module {module!r} is not on the import allowlist; use only: "
                     + ", ".join(self.p.imports_allowed))

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            self._check_module(alias, dotted(alias.name) or "")

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            self.add(node, "disallowed-import", "relative imports are not allowed: a design is one module")
            return
        module = dotted(node.module) or ""
        if isinstance(node.names, cst.ImportStar):
            self.add(node, "disallowed-import", f"'from {module} import *' is not allowed; import names explicitly")
            return
        self._check_module(node, module)
        for alias in node.names:
            name = dotted(alias.name) or ""
            if (_under(f"{module}.{name}", self.p.imports_forbidden) or name in self.p.calls_forbidden_attributes
                    or name.lstrip("_") in self.forbidden_tops):
                self.add(alias, "forbidden-import", f"importing {name!r} from {module!r} is forbidden")
            if not alias.asname and name in self.p.builtins_protected:
                self.add(alias, "builtin-rebind", f"importing {name!r} rebinds a builtin; import it under another name")

    # -- names, attributes, strings
    def visit_Name(self, node: cst.Name) -> None:
        if id(node) in self.skip:
            return
        if node.value in _ATTR_BUILTINS:
            self.add(node, "dynamic-attribute", f"{node.value} may only be called directly, with a literal name")
        elif node.value in self.p.calls_forbidden_builtins:
            self.add(node, "forbidden-call", f"{node.value}() is not allowed: designs may not run or reach code "
                     "dynamically; write the logic directly")
        elif node.value in self.p.calls_forbidden_names:
            self.add(node, "dunder-access", f"{node.value} is not allowed: it reaches the interpreter's internals")

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.skip.add(id(node.attr))
        self._check_attr_name(node, node.attr.value, "attribute")
        # allowed modules re-export what they import (pathlib.os, random._os, dataclasses.sys, ...)
        head = dotted(node)
        target = resolve(node, self.aliases) if head and head.split(".")[0] in self.aliases else None
        prefix = max((m for m in self.p.imports_allowed if _under(target or "", (m,))), key=len, default=None)
        for part in (target[len(prefix) + 1:].split(".") if target and prefix and target != prefix else []):
            if part.lstrip("_") in self.forbidden_tops:
                self.add(node, "forbidden-attribute", f"{prefix}.{part} reaches the forbidden module "
                         f"{part.lstrip('_')!r} through an allowed one; use the allowed module's own API")

    def _check_attr_name(self, node: cst.CSTNode, attr: str, how: str) -> None:
        if _DUNDER_RE.match(attr) and attr not in self.p.dunders_allowed_attributes:
            self.add(node, "dunder-access", f"{how} {attr} is not allowed: dunder reach-through (__class__, "
                     "__dict__, __globals__, __subclasses__, ...) can escape any sandbox")
        elif attr in self.p.calls_forbidden_attributes:
            self.add(node, "forbidden-attribute", f"{how} {attr!r} is not allowed: it reaches processes, the "
                     "network, native code or interpreter frames")

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.skip.add(id(node.keyword))
            if node.keyword.value in self.p.calls_forbidden_keywords:
                self.add(node, "forbidden-call", f"keyword {node.keyword.value}= is not allowed: it can run code")

    # -- calls and paths
    def visit_Call(self, node: cst.Call) -> None:
        target = resolve(node.func, self.aliases)
        if isinstance(node.func, cst.Name) and node.func.value in _ATTR_BUILTINS:
            self.skip.add(id(node.func))  # a direct call; a bare reference (f = getattr) is flagged in visit_Name
        if target in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
            name = node.args[1].value
            if isinstance(name, cst.SimpleString) and isinstance(name.evaluated_value, str):
                self._check_attr_name(node, name.evaluated_value, f"{target}() of")
            elif target != "hasattr":
                self.add(node, "dynamic-attribute", f"{target}() needs a literal attribute name: computed names "
                         "can reach dunder attributes. Use a dict for dynamic keys")
        elif target and "." in target and _under(target, self.p.imports_forbidden):
            self.add(node, "forbidden-call", f"{target}() is not allowed: designs may not start processes, open "
                     "sockets, load native code or import dynamically")
        if target in self.p.paths_functions:
            for i, arg in enumerate(node.args):
                if (i == 0 and arg.keyword is None) or (arg.keyword and arg.keyword.value in _PATH_KEYWORDS):
                    self._check_path(arg.value, f"{target}()")

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Divide):
            self._check_path(node.right, "a `/` path join")

    def _check_path(self, node: cst.CSTNode, where: str) -> None:
        text = _literal_prefix(node)
        if text is not None and _PATH_ESCAPE_RE.search(text.removeprefix("file:")):
            self.add(node, "forbidden-path", f"path {text!r} in {where} is absolute or leaves the scratch "
                     "directory; use paths under self.toolkit.scratch_dir or self.toolkit.db_path")


def _placed(module: cst.Module, found: list[tuple[cst.CSTNode | None, str, str, str]]) -> list[Finding]:
    """Findings from ``(node, rule, message, severity)``, with positions computed only when there are any."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider) if found else {}
    out = []
    for node, rule, message, severity in found:
        start = positions[node].start if node is not None and node in positions else None
        out.append(Finding(rule, start.line if start else 0, start.column + 1 if start else 0, message, severity))
    return out


def validate(source: str, policy: Policy | None = None) -> ValidationReport:
    """Check a design's source statically (nothing is executed) and report every problem found."""
    p = policy or load_policy()
    findings: list[Finding] = []
    size, lines = len(source.encode("utf-8")), source.count("\n") + 1
    for value, limit, what in ((size, p.limits_max_bytes, "bytes"), (lines, p.limits_max_lines, "lines")):
        if value > limit:
            findings.append(Finding("size-limit", 0, 0, f"the design has {value} {what}; the limit is {limit}. "
                                    "Make it shorter"))
    if size > 4 * p.limits_max_bytes:
        return _report(findings)
    try:
        ast.parse(source)
        module = cst.parse_module(source)
    except SyntaxError as exc:
        findings.append(Finding("syntax-error", exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}"))
        return _report(findings)
    except cst.ParserSyntaxError as exc:
        findings.append(Finding("syntax-error", exc.raw_line, exc.raw_column + 1, f"cannot be parsed: {exc.message}"))
        return _report(findings)
    except (ValueError, RecursionError, MemoryError) as exc:
        findings.append(Finding("syntax-error", 0, 0, f"cannot be parsed: {type(exc).__name__}: {exc}"))
        return _report(findings)
    try:
        visitor = _PolicyVisitor(p, import_aliases(module))
        module.visit(visitor)
        findings += _placed(module, visitor.found + contract_problems(module))
    except RecursionError:
        findings.append(Finding("size-limit", 0, 0, "the code is nested too deeply to be checked; flatten it"))
        return _report(findings)
    for count, limit, what in ((visitor.classes, p.limits_max_classes, "classes"),
                               (visitor.functions, p.limits_max_functions, "functions")):
        if count > limit:
            findings.append(Finding("size-limit", 0, 0, f"the design defines {count} {what}; the limit is {limit}. "
                                    "Merge or remove some"))
    findings += run_ruff(source, p)
    return _report(findings)


def _report(findings: list[Finding]) -> ValidationReport:
    findings = sorted(set(findings), key=lambda f: (f.line, f.col, f.rule, f.message))
    return ValidationReport(ok=not any(f.severity == "error" for f in findings), findings=findings)


def _ruff_command() -> list[str] | None:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff", path=str(Path(sys.executable).parent))
    return [found] if found else None


def run_ruff(source: str, policy: Policy | None = None) -> list[Finding]:
    """Ruff's error rules on ``source`` as findings (a warning when ruff is missing, fails or times out)."""
    p = policy or load_policy()
    command = _ruff_command()
    if command is None:
        return [Finding("ruff-unavailable", 0, 0, "ruff is not installed in this environment; skipped", "warning")]
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    args = [*command, "check", "--isolated", "--no-cache", "--select", ",".join(p.ruff_select), "--target-version",
            version, "--ignore-noqa", "--output-format", "json", "--stdin-filename", "design.py", "-"]
    try:
        done = subprocess.run(args, input=source, capture_output=True, text=True, timeout=p.ruff_timeout_s,
                              check=False)
        items: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    except subprocess.TimeoutExpired:
        return [Finding("ruff-unavailable", 0, 0, f"ruff timed out after {p.ruff_timeout_s:g}s; skipped", "warning")]
    except (OSError, ValueError) as exc:
        return [Finding("ruff-unavailable", 0, 0, f"ruff could not run ({exc}); skipped", "warning")]
    findings = []
    for item in items if isinstance(items, list) else []:
        code = item.get("code") or "invalid-syntax"
        prefixes = [k for k in p.ruff_rules if code.startswith(k)]
        rule = p.ruff_rules[max(prefixes, key=len)] if prefixes else f"ruff-{code}"
        loc = item.get("location") or {}
        findings.append(Finding(rule, int(loc.get("row") or 0), int(loc.get("column") or 0),
                                f"{item.get('message', '')} (ruff {code})"))
    return findings
