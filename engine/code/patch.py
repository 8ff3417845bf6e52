"""Patches: merge a model reply that holds only changed or new definitions into a design (libcst).

A small local model cannot rewrite a whole design module within its output budget, so the meta agent's
"patch" edit mode asks for the changed and new top-level definitions only, and :func:`apply_patch` merges
them into the design:

* an import is added when the design does not already bind its names the same way;
* an assignment to a plain name (``TOP_K = 5``) replaces the design's assignment of that name in place, else
  it is added after the design's imports and constants;
* a function replaces the same-named module-level function in place, else it is added before the design class;
* a class that is the design class (same name, a ``MemoryDesign`` base, or a non-dunder method the design
  class has) is merged member by member into the design class, which keeps its name and bases: same-named
  methods and class attributes are replaced in place, new ones appended; its docstring, if it has one,
  replaces the design class's; a member whose body is only ``...`` means "unchanged" and is skipped; a
  module-level def whose first parameter is ``self`` is taken as a method of the design class;
* any other class replaces the same-named module-level class, else it is added before the design class.

A reply cut off mid-definition (the output limit) keeps its complete top-level definitions before the cut.
A reply that is a complete design module is merged the same way, except that its module docstring (or none)
replaces the design's, which described the old code; then :func:`engine.code.splice.prune` drops what no contract
method reaches any more (the old methods' helpers). The result is source text; the caller validates it
(:func:`engine.code.validate.validate`).
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from engine.code.genome import normalise_source
from engine.code.splice import is_docstring, prune, spaced
from engine.code.syntax import class_members, design_classes, dotted, import_aliases
from harness.design import CONTRACT

_BASE = CONTRACT["base_class"]


class PatchError(ValueError):
    """A reply cannot be merged into a design (the message says why, for the model to read)."""


def _assigned(stmt: cst.CSTNode) -> list[str]:
    """Names a one-statement line assigns at module level (``A = 1``, ``A = B = 1``, ``A: int = 1``)."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return []
    small = stmt.body[0]
    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else (
        [small.target] if isinstance(small, cst.AnnAssign) else [])
    return [t.value for t in targets] if targets and all(isinstance(t, cst.Name) for t in targets) else []


def _is_import(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body)


def _placeholder(node: cst.CSTNode) -> bool:
    """A def whose body is only ``...`` (with an optional docstring): the model's way to say "unchanged"."""
    if not isinstance(node, cst.FunctionDef):
        return False
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else [node.body]
    body = body[1:] if body and is_docstring(body[0]) else body
    stub = [m.Expr(m.Ellipsis())]
    only = m.SimpleStatementLine(stub) | m.SimpleStatementSuite(stub)
    return bool(body) and all(m.matches(s, only) for s in body)


def _is_method(stmt: cst.CSTNode) -> bool:
    """A module-level def whose first parameter is ``self``."""
    return isinstance(stmt, cst.FunctionDef) and m.matches(stmt.params, m.Parameters(
        params=[m.Param(name=m.Name("self")), m.ZeroOrMore()]))


def _in_place(new: cst.CSTNode, old: cst.CSTNode) -> cst.CSTNode:
    """``new`` laid out where ``old`` was: old's leading blank lines and comments (and trailing comment)."""
    new = new.with_changes(leading_lines=old.leading_lines)
    if isinstance(new, cst.SimpleStatementLine) and isinstance(old, cst.SimpleStatementLine) and (
            new.trailing_whitespace.comment is None):
        new = new.with_changes(trailing_whitespace=old.trailing_whitespace)
    return new


def _new_imports(stmt: cst.SimpleStatementLine, bound: dict[str, str],
                 rendered: set[str]) -> list[cst.SimpleStatementLine]:
    """The parts of an import line that bind what the design lacks (updates ``bound`` and ``rendered``)."""
    out = []
    for small in stmt.body:
        text = cst.Module([]).code_for_node(small).strip()
        if text in rendered:
            continue
        rendered.add(text)
        if isinstance(small.names, cst.ImportStar) or (isinstance(small, cst.ImportFrom) and small.relative):
            out.append(small)
            continue
        mine = import_aliases(cst.Module([cst.SimpleStatementLine([small])]))
        keep = [a for a in small.names if not _same_binding(a, small, mine, bound)]
        bound.update(mine)
        if keep:
            keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            out.append(small.with_changes(names=keep))
    return [cst.SimpleStatementLine([s]) for s in out]


def _same_binding(alias: cst.ImportAlias, small: cst.Import | cst.ImportFrom, mine: dict[str, str],
                  bound: dict[str, str]) -> bool:
    name = dotted(alias.name) or ""
    if isinstance(small, cst.Import) and "." in name and alias.asname is None:
        return False  # `import a.b` also loads a.b; only the rendered text can say it is already there
    local = (dotted(alias.asname.name) if alias.asname else None) or (
        name.split(".")[0] if isinstance(small, cst.Import) else name)
    return local in bound and bound[local] == mine.get(local)


def _is_design_patch(cls: cst.ClassDef, design: cst.ClassDef, reply_designs: list[cst.ClassDef],
                     other_classes: set[str]) -> bool:
    if cls.name.value == design.name.value or any(cls is c for c in reply_designs):
        return True
    bases = {(dotted(a.value) or "").rsplit(".", 1)[-1] for a in cls.bases}
    if bases & {_BASE, design.name.value}:
        return True
    if cls.name.value in other_classes:
        return False
    wanted = {n for n, node in class_members(design).items() if isinstance(node, cst.FunctionDef)
              and not (n.startswith("__") and n.endswith("__"))}
    return bool(wanted & set(class_members(cls)))


def _merge_class(target: cst.ClassDef, patch: cst.ClassDef) -> cst.ClassDef:
    """``target`` with the members of ``patch`` replaced in place or appended; its name and bases kept."""
    body = list(target.body.body)
    where = class_members(target)
    items = list(patch.body.body) if isinstance(patch.body, cst.IndentedBlock) else [patch.body]
    if items and is_docstring(items[0]):
        doc = items.pop(0)
        if body and is_docstring(body[0]):
            body[0] = _in_place(doc, body[0])
        else:
            body.insert(0, doc.with_changes(leading_lines=()))
    names_of: dict[int, list[str]] = {}
    for name, node in class_members(patch).items():
        names_of.setdefault(id(node), []).append(name)
    for stmt in items:
        names = names_of.get(id(stmt), [])
        old = next((where[n] for n in names if n in where), None)
        at = next((i for i, s in enumerate(body) if s is old), None)
        if not names or (_placeholder(stmt) and old is not None):
            continue
        if at is None:
            body.append(spaced(stmt, 1))
        else:
            body[at] = _in_place(stmt, old)
        where.update({n: body[at if at is not None else -1] for n in names})
    return target.with_changes(body=target.body.with_changes(body=body))


def _complete(module: cst.Module) -> bool:
    """Whether ``module`` is a whole design: a design class defining every contract method."""
    return any(all(isinstance(class_members(c).get(n), cst.FunctionDef) for n in CONTRACT["methods"])
               for c in design_classes(module))


def _salvage(code: str) -> cst.Module | None:
    """The longest prefix of ``code`` that ends before a top-level statement and parses: the complete
    definitions of a reply cut off at the output limit (a small model often echoes the whole design)."""
    lines = code.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1].isalpha() or line[:1] in "_@"]
    for cut in reversed(starts[1:]):
        try:
            module = cst.parse_module("\n".join(lines[:cut]) + "\n")
        except cst.ParserSyntaxError:
            continue
        if any(not is_docstring(stmt) for stmt in module.body):
            return module
    return None


def apply_patch(parent_source: str, reply_code: str) -> str:
    """``parent_source`` with the definitions of ``reply_code`` (code, or a reply with the code in a markdown
    fence) merged in, as normalised source text. Raises :class:`PatchError` when the reply is not Python,
    changes nothing, or the parent has not exactly one top-level design class."""
    try:
        parent = cst.parse_module(parent_source)
    except cst.ParserSyntaxError as exc:
        raise PatchError(f"the design to patch is not valid Python: {exc.message}") from exc
    designs = design_classes(parent)
    if len(designs) != 1 or not any(designs[0] is s for s in parent.body):
        raise PatchError(f"the design to patch must have exactly one top-level {_BASE} class; it has "
                         f"{len(designs)}")
    design = designs[0]
    try:
        reply = cst.parse_module(normalise_source(reply_code))
    except cst.ParserSyntaxError as exc:
        reply = _salvage(normalise_source(reply_code))
        if reply is None:
            raise PatchError(f"the reply's code is not valid Python (line {exc.raw_line}: {exc.message}); "
                             "reply with complete definitions in one ```python block") from exc
    body = list(parent.body)
    top = 0 if body and is_docstring(body[0]) else -1
    before = next(i for i, s in enumerate(body) if s is design)
    last_import = max((i for i, s in enumerate(body) if _is_import(s)), default=top)
    last_const = max((i for i, s in enumerate(body[:before]) if _is_import(s) or _assigned(s)), default=top)
    bound = import_aliases(cst.Module([s for s in body if _is_import(s)]))
    rendered = {cst.Module([]).code_for_node(s).strip() for st in body if _is_import(st) for s in st.body}
    future, imports, consts, defs, replaced = [], [], [], [], {}
    merged = design
    reply_designs = design_classes(reply)
    others = {s.name.value: s for s in body if isinstance(s, cst.ClassDef) and s is not design}
    functions = {s.name.value: s for s in body if isinstance(s, cst.FunctionDef)}
    for stmt in reply.body:
        if _is_import(stmt):
            for new in _new_imports(stmt, bound, rendered):
                is_future = m.matches(new.body[0], m.ImportFrom(module=m.Name("__future__")))
                (future if is_future else imports).append(new)
        elif _assigned(stmt):
            old = next((s for s in reversed(body) if set(_assigned(s)) & set(_assigned(stmt))), None)
            if old is None:
                consts.append(stmt.with_changes(leading_lines=()))
            else:
                replaced[id(old)] = _in_place(stmt, old)
        elif isinstance(stmt, cst.ClassDef) and _is_design_patch(stmt, design, reply_designs, set(others)):
            merged = _merge_class(merged, stmt)
        elif _is_method(stmt):  # a method written without its class
            merged = _merge_class(merged, design.with_changes(body=cst.IndentedBlock([stmt])))
        elif isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            old = (others if isinstance(stmt, cst.ClassDef) else functions).get(stmt.name.value)
            if old is None:
                defs.append(spaced(stmt.with_changes(leading_lines=()), 2))
            elif not _placeholder(stmt):
                replaced[id(old)] = _in_place(stmt, old)
    if not (future or imports or consts or defs or replaced or merged is not design):
        raise PatchError("the reply defines nothing to merge: give the changed or new methods inside "
                         f"`class {design.name.value}({_BASE}):`, and/or changed or new module-level "
                         "constants, functions or imports")
    after: dict[int, list[cst.CSTNode]] = {}
    for anchor, group in ((top, future), (last_import, imports), (last_const, consts)):
        if group and anchor >= 0 and (anchor == top or (group is consts and _is_import(body[anchor]))):
            group[0] = spaced(group[0], 1)  # a blank line after the docstring / the imports
        after.setdefault(anchor, []).extend(group)
    out = list(after.get(-1, []))
    for i, stmt in enumerate(body):
        out.extend([*defs, merged] if stmt is design else [replaced.get(id(stmt), stmt)])
        out.extend(after.get(i, []))
    if _complete(reply):  # a whole new design: its own description, and the old methods' helpers dropped
        doc = reply.body[:1] if reply.body and is_docstring(reply.body[0]) else []
        source = prune(parent.with_changes(body=[*doc, *out[top + 1:]]).code)
    else:
        source = parent.with_changes(body=out).code
    source = normalise_source(source)
    if source == normalise_source(parent_source):
        raise PatchError("the reply changes nothing in the design: give only the definitions that differ")
    return source


__all__ = ["PatchError", "apply_patch"]
