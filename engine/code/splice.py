"""Splicing code between memory designs (libcst): the machinery behind :mod:`engine.code.mutate`'s swap/crossover.

:func:`splice` moves methods of design *b* into design *a*'s class together with what they need: the helper
methods they call through ``self``, the module-level functions, classes, constants and imports they use
(transitively), and *b*'s ``__init__`` statements (appended to *a*'s constructor, so tables and attributes
exist). What *a* already has with the same code (and the same dependencies) is reused; a name that means
something else in *a* is renamed (``_render`` -> ``_render_x3f2a``) in the moved code. Scope analysis is
libcst's ScopeProvider, so locals that shadow a module-level name are left alone. :func:`prune` then drops
helper methods and module-level code no longer reachable from the contract methods.

Both work on source text and return source text; :mod:`engine.code.mutate` validates the result.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import Assignment, MetadataWrapper, ScopeProvider

from engine.code.syntax import class_members, design_classes, dotted
from harness.design import CONTRACT, MemoryDesign

CONTRACT_METHODS = tuple(CONTRACT["methods"])
CTOR = CONTRACT["constructor"]["name"]
#: instance attributes the base class provides (never renamed when code moves between designs)
BASE_ATTRS = frozenset(vars(MemoryDesign(*[None] * (len(CONTRACT["constructor"]["params"]) - 1)))) | set(
    dir(MemoryDesign))
_UPPER_RE = re.compile(r"^_?[A-Z][A-Z0-9_]*$")


# ---------------------------------------------------------------- anatomy


def _canon(node: cst.CSTNode) -> str:
    """Layout- and comment-independent text of a statement, for 'is this the same code' checks."""
    code = cst.Module([]).code_for_node(node)
    try:
        return ast.dump(ast.parse(code.strip("\n")))
    except SyntaxError:
        return code.strip()


@dataclass
class _Anatomy:
    """Where a design's module-level names are bound and used, and what its class members use."""

    module: cst.Module
    cls: cst.ClassDef
    members: dict[str, cst.CSTNode]
    global_ids: set[int]  # Name nodes that reference or bind a module-level name
    refs: dict[int, set[str]]  # top-level statement / member / __init__ statement -> module-level names used
    self_refs: dict[int, set[str]]  # same roots -> members used as self.<name> (cls., type(self)., Class.)
    binders: dict[str, list[int]]  # module-level name -> indices (in module.body) of the statements binding it
    imports: dict[str, tuple[str, str, str]]  # name bound by an import -> (kind, module, imported name)
    idents: set[str]  # every name and attribute name in the module

    @property
    def init(self) -> cst.FunctionDef | None:
        init = self.members.get(CTOR)
        return init if isinstance(init, cst.FunctionDef) else None

    def deps(self, roots: Sequence[cst.CSTNode]) -> tuple[set[str], set[str]]:
        return (set().union(*(self.refs.get(id(r), set()) for r in roots)),
                set().union(*(self.self_refs.get(id(r), set()) for r in roots)))

    def canon(self, name: str) -> str:
        if name in self.imports:
            return repr(self.imports[name])
        return "\n".join(_canon(self.module.body[i]) for i in self.binders.get(name, []))


@functools.lru_cache(maxsize=32)  # parents are analysed again and again by the operators; treat as read-only
def anatomy(source: str) -> _Anatomy | None:
    """The anatomy of a design's source, or None unless it has exactly one top-level design class."""
    wrapper = MetadataWrapper(cst.parse_module(source), unsafe_skip_copy=True)
    module = wrapper.module
    classes = design_classes(module)
    if len(classes) != 1 or not any(classes[0] is s for s in module.body):
        return None
    cls, scopes = classes[0], wrapper.resolve(ScopeProvider)
    top = scopes[module]
    global_ids: set[int] = set()
    for scope in {s for s in scopes.values() if s is not None}:
        for access in scope.accesses:
            if any(isinstance(r, Assignment) and r.scope is top for r in access.referents):
                global_ids.add(id(access.node))
    bound_at: dict[int, str] = {}
    for assignment in top.assignments:
        if isinstance(assignment, Assignment):
            node = assignment.node
            node = node.name if isinstance(node, (cst.FunctionDef, cst.ClassDef)) else node
            global_ids.add(id(node))
            bound_at[id(node)] = assignment.name
    members = class_members(cls)
    init = members.get(CTOR)
    roots = {id(n) for n in [*module.body, *cls.body.body, *(init.body.body if isinstance(init, cst.FunctionDef)
                                                              else [])]}
    anatomy = _Anatomy(module, cls, members, global_ids, {}, {}, {}, {}, set())
    owners = {"self", "cls", cls.name.value}

    class _Uses(cst.CSTVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.open: list[int] = []
            self.index = -1

        def on_visit(self, node: cst.CSTNode) -> bool:
            if id(node) in roots:
                self.open.append(id(node))
            if (isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar)
                    and scopes.get(node) is top):
                _record_imports(anatomy, node, self.index)
            if isinstance(node, cst.Name):
                anatomy.idents.add(node.value)
                if id(node) in bound_at:
                    anatomy.binders.setdefault(bound_at[id(node)], []).append(self.index)
                if id(node) in global_ids:
                    for root in self.open:
                        anatomy.refs.setdefault(root, set()).add(node.value)
            member = _member_ref(node, owners)
            if member:
                for root in self.open:
                    anatomy.self_refs.setdefault(root, set()).add(member)
            return True

        def on_leave(self, original_node: cst.CSTNode) -> None:
            if self.open and self.open[-1] == id(original_node):
                self.open.pop()

    uses = _Uses()
    for index, stmt in enumerate(module.body):
        uses.index = index
        stmt.visit(uses)
    for name in anatomy.binders:
        anatomy.binders[name] = sorted(set(anatomy.binders[name]))
    return anatomy


def _member_ref(node: cst.CSTNode, owners: set[str]) -> str | None:
    """``X`` for ``self.X``, ``cls.X``, ``Class.X``, ``type(self).X`` and ``getattr(self, "X"[, default])``."""
    if isinstance(node, cst.Attribute):
        value = node.value
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "type":
            return node.attr.value
        return node.attr.value if isinstance(value, cst.Name) and value.value in owners else None
    if (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1].value, cst.SimpleString)):
        name = node.args[1].value.evaluated_value
        return name if isinstance(name, str) else None
    return None


def _record_imports(anatomy: _Anatomy, node: cst.Import | cst.ImportFrom, index: int) -> None:
    for alias in node.names:
        full = dotted(alias.name) or ""
        local = dotted(alias.asname.name) if alias.asname else None
        if isinstance(node, cst.Import):
            name, entry = local or full.split(".")[0], ("import", full, local or "")
        else:
            name, entry = local or full, ("from", dotted(node.module) or "", full)
        anatomy.imports[name] = entry
        anatomy.binders.setdefault(name, []).append(index)


# ---------------------------------------------------------------- splicing methods between designs


class _Rename(cst.CSTTransformer):
    """Rename module-level names (by node identity) and ``self.<attribute>`` in moved code."""

    def __init__(self, global_ids: set[int], names: dict[str, str], members: dict[str, str], owners: set[str]):
        super().__init__()
        self.global_ids, self.names, self.members, self.owners = global_ids, names, members, owners

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        if id(original_node) in self.global_ids and original_node.value in self.names:
            return updated_node.with_changes(value=self.names[original_node.value])
        return updated_node

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.Attribute:
        if original_node.attr.value in self.members and _member_ref(original_node, self.owners):
            return updated_node.with_changes(attr=cst.Name(self.members[original_node.attr.value]))
        return updated_node


def _fresh(name: str, taken: set[str], tag: str) -> str:
    tag = tag.upper() if _UPPER_RE.match(name) else tag
    candidate, n = f"{name}_{tag}", 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{tag}{n}"
    taken.add(candidate)
    return candidate


def _closure(b: _Anatomy, take: Sequence[str], init_stmts: list[cst.CSTNode]) -> tuple[list[str], set[str]]:
    """Members of b to move (the taken methods and the helper methods they use) and b's module-level names
    they need, transitively."""
    moved, todo = list(take), list(take)
    while todo:
        for attr in sorted(b.deps([b.members[todo.pop()]])[1] | b.deps(init_stmts)[1]):
            if attr in b.members and attr not in moved and attr not in CONTRACT_METHODS and attr != CTOR:
                moved.append(attr)
                todo.append(attr)
    names = b.deps([b.members[m] for m in moved] + init_stmts)[0]
    todo = list(names)
    while todo:
        for index in b.binders.get(todo.pop(), []):
            if b.module.body[index] is not b.cls:
                for dep in b.deps([b.module.body[index]])[0] - names:
                    names.add(dep)
                    todo.append(dep)
    return moved, names - {b.cls.name.value}


def _same(a: _Anatomy, b: _Anatomy, names: set[str], moved: list[str]) -> tuple[set[str], set[str]]:
    """The module-level names and helper members that mean the same in a and b (same code, same deps)."""
    same_names = {n for n in names if n in a.binders and a.canon(n) == b.canon(n)}
    same_members = {m for m in moved if m in a.members and _canon(a.members[m]) == _canon(b.members[m])}
    while True:
        keep_names = {n for n in same_names if all(
            d in same_names or d not in names for i in b.binders[n] for d in b.deps([b.module.body[i]])[0] - {n})}
        keep_members = {m for m in same_members if b.deps([b.members[m]])[0] & names <= keep_names
                        and all(x in same_members for x in b.deps([b.members[m]])[1] if x in moved)}
        if (keep_names, keep_members) == (same_names, same_members):
            return same_names, same_members
        same_names, same_members = keep_names, keep_members


def _import_stmt(entry: tuple[str, str, str], name: str) -> cst.SimpleStatementLine | None:
    """An import binding ``name`` as ``entry`` did; None for ``import a.b`` that would need another name."""
    kind, module, imported = entry
    if kind == "from":
        return cst.parse_statement(f"from {module} import {imported}" + (f" as {name}" if name != imported else ""))
    if imported or "." not in module:
        return cst.parse_statement(f"import {module}" + (f" as {name}" if name != module else ""))
    return cst.parse_statement(f"import {module}") if name == module.split(".")[0] else None


def spaced(stmt: cst.CSTNode, blank: int) -> cst.CSTNode:
    """``stmt`` with at least ``blank`` empty lines before it (and before its leading comments)."""
    lines = list(getattr(stmt, "leading_lines", []))
    have = next((i for i, line in enumerate(lines) if line.comment is not None), len(lines))
    return stmt if have >= blank else stmt.with_changes(leading_lines=[cst.EmptyLine()] * (blank - have) + lines)


def is_docstring(stmt: cst.CSTNode) -> bool:
    return (isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr)
            and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


def splice(a: str, b: str, take: Sequence[str], tag: str = "x") -> str | None:
    """Source of design a with the methods ``take`` of design b (and all they need); None when either is not a
    single-class design or b lacks one of the methods. Names renamed in the moved code get the suffix ``_<tag>``."""
    pa, pb = anatomy(a), anatomy(b)
    if pa is None or pb is None or not all(isinstance(pb.members.get(t), cst.FunctionDef) for t in take):
        return None
    super_call = cst.parse_statement(f"super().{CTOR}()").body[0]
    b_init = [s for s in (pb.init.body.body if pb.init else []) if not (
        isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Expr)
        and isinstance(s.body[0].value, cst.Call) and s.body[0].value.func.deep_equals(super_call.value.func))]
    moved, names = _closure(pb, take, b_init)
    same_names, same_members = _same(pa, pb, names, moved)
    taken = pa.idents | pb.idents
    rename = {pb.cls.name.value: pa.cls.name.value}
    copy_names = sorted(names - same_names - {"annotations"})
    for n in copy_names:
        rename[n] = _fresh(n, taken, tag) if n in pa.idents or n in pa.binders else n
    members = {m: _fresh(m, taken, tag) for m in moved if m not in take and m not in same_members and m in pa.idents}
    if any(not isinstance(pb.members[m], cst.FunctionDef) for m in members):
        return None  # renaming a class attribute is not supported
    a_init = [_canon(s) for s in (pa.init.body.body if pa.init else [])]
    for attr in pb.deps(b_init)[1] | pb.deps([pb.members[m] for m in moved])[1]:
        if attr not in pb.members and attr not in BASE_ATTRS and attr in pa.idents and attr not in members:
            assigned_b = [_canon(s) for s in b_init if attr in pb.deps([s])[1]]
            if not assigned_b or any(c not in a_init for c in assigned_b):
                members[attr] = _fresh(attr, taken, tag)
    renamer = _Rename(pb.global_ids, rename, members, {"self", "cls", pb.cls.name.value})
    # module level: imports after a's imports, other statements right before a's design class
    imports, seen = [], set()
    for n in copy_names:
        if n in pb.imports:
            stmt = _import_stmt(pb.imports[n], rename[n])
            if stmt is None:
                return None
            imports.append(stmt)
        else:
            seen.update(pb.binders[n])
    for n, where in pb.binders.items():  # names bound along with the needed ones must not clobber a's
        if n not in rename and n not in pb.imports and seen & set(where) and (n in pa.idents or n in pa.binders):
            rename[n] = _fresh(n, taken, tag)
    others = [spaced(pb.module.body[i].visit(renamer), 2 if n == 0 or isinstance(
        pb.module.body[i], (cst.FunctionDef, cst.ClassDef)) else 0) for n, i in enumerate(sorted(seen))]
    future = "annotations" in pb.imports and "annotations" not in pa.imports
    # class level: replace or append the taken methods, append helpers, extend (or add) __init__
    body = list(pa.cls.body.body)
    for m in moved:
        if m in same_members:
            continue
        node = pb.members[m].visit(renamer)
        node = node.with_changes(name=cst.Name(members[m])) if m in members else node
        at = next((i for i, s in enumerate(body) if m in take and s is pa.members.get(m)), None)
        if at is None:
            body.append(node)
        else:
            body[at] = node
    extra = [s.visit(renamer) for s in b_init]
    extra = [s for s in extra if _canon(s) not in a_init]
    if extra and pa.init is not None:
        index = next(i for i, s in enumerate(body) if s is pa.init)
        body[index] = pa.init.with_changes(body=pa.init.body.with_changes(body=[*pa.init.body.body, *extra]))
    elif extra:
        body.insert(1 if body and is_docstring(body[0]) else 0, pb.init.visit(renamer))
    cls = pa.cls.with_changes(body=pa.cls.body.with_changes(body=body))
    head = 1 if pa.module.body and is_docstring(pa.module.body[0]) else 0
    out = [*pa.module.body[:head], cst.parse_statement("from __future__ import annotations")] if future else []
    last_import = max((i for i, s in enumerate(pa.module.body) if isinstance(s, cst.SimpleStatementLine)
                       and isinstance(s.body[0], (cst.Import, cst.ImportFrom))), default=-1)
    out.extend(pa.module.body[:head] if not future else [])
    if last_import < head:
        out.extend(imports)
    for i, stmt in enumerate(pa.module.body[head:], head):
        if stmt is pa.cls:
            out.extend([*others, cls])
        else:
            out.append(stmt)
        if i == last_import:
            out.extend(imports)
    return pa.module.with_changes(body=out).code


def _removable(stmt: cst.CSTNode) -> bool:
    """Definitions that may be dropped when nothing uses what they bind: functions, classes, imports (not
    ``__future__``) and assignments to plain names."""
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return True
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if isinstance(small, cst.ImportFrom) and (small.module is None or dotted(small.module) == "__future__"):
            return False
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            if not all(isinstance(t, cst.Name) for t in targets):
                return False
        elif not isinstance(small, (cst.Import, cst.ImportFrom)):
            return False
    return True


def prune(source: str) -> str:
    """Drop the design class's helper methods that no contract method reaches (through ``self.<name>``) and the
    module-level functions, classes, constants and imports that nothing kept uses."""
    d = anatomy(source)
    if d is None:
        return source
    live = {m for m, node in d.members.items() if not isinstance(node, cst.FunctionDef) or m in CONTRACT_METHODS
            or m == CTOR or (m.startswith("__") and m.endswith("__"))}
    todo = list(live)
    while todo:
        for attr in d.deps([d.members[todo.pop()]])[1]:
            if attr in d.members and attr not in live:
                live.add(attr)
                todo.append(attr)
    dead = {id(node) for m, node in d.members.items() if m not in live}
    kept = [s for s in d.cls.body.body if id(s) not in dead]
    roots = [s for s in d.module.body if not _removable(s) and s is not d.cls]
    used = d.deps(roots + kept)[0] | {(dotted(x.value) or "").split(".")[0]
                                       for x in [*d.cls.bases, *d.cls.keywords, *d.cls.decorators]}
    todo = list(used)
    while todo:
        for index in d.binders.get(todo.pop(), []):
            for dep in d.deps([d.module.body[index]])[0] - used:
                used.add(dep)
                todo.append(dep)
    bound: dict[int, set[str]] = {}
    for name, where in d.binders.items():
        for index in where:
            bound.setdefault(index, set()).add(name)
    body = []
    for index, stmt in enumerate(d.module.body):
        if stmt is d.cls:
            body.append(stmt.with_changes(body=stmt.body.with_changes(body=kept)))
        elif not _removable(stmt) or bound.get(index, set()) & used:
            body.append(stmt)
    return d.module.with_changes(body=body).code
