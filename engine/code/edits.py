"""Compound children: several small program-repair edits at once (GenProg style), over libcst trees.

:func:`compound` applies one to four edits (two most often) to a design, each drawn among the edit kinds that
still apply, and keeps the child when it compiles, passes :func:`engine.code.validate.validate` and differs from
both parents; :func:`compound_with_log` also returns one line per edit (``"negate if at retrieve:12"``, the line
in the child), starting with its kind, a key of :data:`EDITS`. Expression edits touch only code inside function
bodies (never an annotation, a decorator or a parameter list).

* ``nudge`` -- one tunable numeric constant, chosen and perturbed as ``mutate:constants`` does.
* ``negate`` -- the test of an ``if``/``elif``, ``while``, ternary or comprehension ``if`` becomes ``not (c)``;
  a test that starts with ``not`` loses it.
* ``compare`` -- a comparison operator toggles: ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``in``/``not in``,
  ``is``/``is not``.
* ``boolop`` -- an ``and`` becomes ``or`` or the reverse.
* ``flip`` -- a ``True`` becomes ``False`` or the reverse.
* ``slice`` -- a one-sided slice moves: a head ``x[:k]`` becomes the tail ``x[-k:]``, ``x[:k + 1]`` or
  ``x[:max(1, k - 1)]``; a tail ``x[-k:]`` becomes ``x[:k]``, ``x[-(k + 1):]`` or ``x[-max(1, k - 1):]``; a
  skip ``x[k:]`` becomes ``x[k + 1:]`` or ``x[max(0, k - 1):]`` (literal bounds are computed). Or the bound
  compared with a ``len(...)`` moves by one (a literal bound stays >= 0).
* ``delete`` -- a simple statement of a function body goes (an emptied block gets ``pass``); never a docstring,
  ``pass``, ``super().__init__(...)``, ``global``/``nonlocal``, the function's only or final ``return``, a
  constructor statement that sets ``self.<attr>``, nor one binding a name the function reads that nothing
  before it binds.
* ``insert`` / ``replace`` -- a statement of the donor (the second parent: a simple statement, or a compound one
  of at most ``MAX_DONOR_LINES`` lines, with no ``return``, ``yield``, definition, ``global`` or
  ``break``/``continue`` outside its own loop) goes into a block of one of the design's functions, or replaces a
  statement ``delete`` could remove. Scope-aware: every name it reads before binding must be bound there (a
  parameter such as ``self``, a name an earlier statement of the function binds, a module-level name or import
  of the design, a builtin), every ``self.<attr>`` it reads a member or assigned attribute of the target's class
  (or of the base class); it binds no module-level name or builtin, and ``await`` goes only into ``async def``.
  Nothing goes before a docstring or ``super().__init__(...)``.

Statement edits act on module-level functions and the methods of top-level classes (the blocks nested in them
included). Each edit works on the tree the previous one left: one walk finds every site (:class:`_Index`, and
:func:`_layout` pairs the libcst statements with :mod:`ast` ones for the scope analysis of :class:`_Reads`), and
only the edited node's ancestors are rebuilt, so the validator dominates what a child costs.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import libcst as cst
import libcst.matchers as m
from libcst.metadata import MetadataWrapper, PositionProvider

from engine.code.genome import Genome
from engine.code.mutate import NAMED_WEIGHT, _Constants, _finish, _literal, _perturb
from engine.code.splice import BASE_ATTRS, CTOR, is_docstring
from harness.design import CONTRACT

#: the longest compound statement (in lines) a donor may give
MAX_DONOR_LINES = 6
_ATTEMPTS = 6
_N_WEIGHTS = {1: 3, 2: 4, 3: 2, 4: 1}  # how many edits a child gets: two most often
_BUILTINS = frozenset(dir(builtins))
_SYMBOLS = {cst.LessThan: "<", cst.LessThanEqual: "<=", cst.GreaterThan: ">", cst.GreaterThanEqual: ">=",
            cst.Equal: "==", cst.NotEqual: "!=", cst.In: "in", cst.NotIn: "not in", cst.Is: "is", cst.IsNot: "is not"}
_SWAPS = dict(zip(_SYMBOLS, [cst.LessThanEqual, cst.LessThan, cst.GreaterThanEqual, cst.GreaterThan, cst.NotEqual,
                             cst.Equal, cst.NotIn, cst.In, cst.IsNot, cst.Is], strict=True))
_ORDERS = tuple(_SYMBOLS)[:6]  # the comparisons a len() bound may take part in
_TESTS = {cst.If: "if", cst.While: "while", cst.IfExp: "ternary", cst.CompIf: "comprehension if"}
_LOOSE = (cst.BooleanOperation, cst.IfExp, cst.Lambda, cst.NamedExpr)  # need parentheses under `not`
_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer)
_SUPER_INIT = m.SimpleStatementLine(body=[m.Expr(value=m.Call(func=m.Attribute(
    value=m.Call(func=m.Name("super")), attr=m.Name(CTOR))))])
_PASS = m.SimpleStatementLine(body=[m.Pass()])
_BLOCKS = {cst.If: ast.If, cst.For: (ast.For, ast.AsyncFor), cst.While: ast.While, cst.With: (ast.With, ast.AsyncWith),
           cst.Try: ast.Try}


class Edit(NamedTuple):
    """An applied edit: the new tree, what was done (ends with "at"/"into"), the node that locates it in the
    child, and the function it is in."""

    module: cst.Module
    text: str
    anchor: cst.CSTNode
    func: str


Primitive = Callable[[cst.Module, random.Random, "Donor | None"], "Edit | None"]


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node).strip()


def _rebuild(path: Sequence[cst.CSTNode], old: cst.CSTNode, new: cst.CSTNode) -> cst.Module:
    """The module ``path[0]`` with ``old``, a child of ``path[-1]``, replaced by ``new``: only ancestors change."""
    for parent in reversed(path):
        for field in dataclasses.fields(parent):
            value = getattr(parent, field.name)
            if value is old or (isinstance(value, (tuple, list)) and any(v is old for v in value)):
                changed = new if value is old else [new if v is old else v for v in value]
                old, new = parent, parent.with_changes(**{field.name: changed})
                break
        else:
            raise ValueError(f"{type(old).__name__} is not a child of {type(parent).__name__}")
    return new


def _done(path: Sequence[cst.CSTNode], old: cst.CSTNode, new: cst.CSTNode, text: str) -> Edit:
    func = next((n.name.value for n in reversed(path) if isinstance(n, cst.FunctionDef)), "module")
    return Edit(_rebuild(path, old, new), text, new, func)


# ---------------------------------------------------------------- expression edits


def _is_len(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "len"


def _kind(node: cst.CSTNode) -> str | None:
    if isinstance(node, tuple(_TESTS)):
        return "negate"
    if isinstance(node, cst.ComparisonTarget) and type(node.operator) in _SWAPS:
        return "compare"
    if isinstance(node, cst.BooleanOperation):
        return "boolop"
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return "flip"
    if isinstance(node, cst.Comparison) and len(node.comparisons) == 1 and type(node.comparisons[0].operator) in \
            _ORDERS and _is_len(node.left) != _is_len(node.comparisons[0].comparator):
        return "slice"
    if isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Slice):
        sl = node.slice[0].slice
        return "slice" if sl.step is None and (sl.lower is None) != (sl.upper is None) else None
    return None


class _Index(_Constants):
    """One walk: ``mutate``'s tunable constants (with their ancestors in ``paths``) and, inside function bodies,
    the sites of the other expression edits: kind -> [(node, ancestors)]."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[int, list[cst.CSTNode]] = {}
        self.sites: dict[str, list[tuple[cst.CSTNode, list[cst.CSTNode]]]] = {
            k: [] for k in ("negate", "compare", "boolop", "flip", "slice")}
        self.depth = self.params = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Annotation, cst.Decorator)):
            return False
        kind = _kind(node) if self.depth and not self.params else None
        if kind:
            self.sites[kind].append((node, list(self.stack)))
        self.depth += isinstance(node, cst.FunctionDef)
        self.params += isinstance(node, cst.Parameters)
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.depth -= isinstance(original_node, cst.FunctionDef)
        self.params -= isinstance(original_node, cst.Parameters)
        super().on_leave(original_node)

    def _consider(self, node: cst.Integer | cst.Float) -> None:
        count = len(self.found)
        super()._consider(node)
        if len(self.found) > count:
            unit = self.found[-1][0]
            self.paths[id(unit)] = list(self.stack) if unit is node else self.stack[:-1]


@functools.lru_cache(maxsize=16)  # trees are immutable and hashed by identity
def _index(module: cst.Module) -> _Index:
    index = _Index()
    module.visit(index)
    return index


def _site(module: cst.Module, rng: random.Random, kind: str) -> tuple[cst.CSTNode, list[cst.CSTNode]] | None:
    sites = _index(module).sites[kind]
    return rng.choice(sites) if sites else None


def nudge_constant(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    index = _index(module)
    if not index.found:
        return None
    weights = [NAMED_WEIGHT if id(node) in index.named else 1.0 for node, _ in index.found]
    node, value = rng.choices(index.found, weights=weights)[0]
    new = _perturb(value, rng)
    return _done(index.paths[id(node)], node, _literal(new, node), f"nudge {value} -> {new} at")


def negate_condition(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _site(module, rng, "negate")) is None:
        return None
    node, path = site
    test, what = node.test, _TESTS[type(node)]
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not) and not test.lpar:
        return _done(path, node, node.with_changes(test=test.expression), f"negate {what} (drop not) at")
    if isinstance(test, _LOOSE) and not test.lpar:
        test = test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return _done(path, node, node.with_changes(test=cst.UnaryOperation(cst.Not(), test)), f"negate {what} at")


def toggle_comparison(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _site(module, rng, "compare")) is None:
        return None
    node, path = site
    old = node.operator
    new = _SWAPS[type(old)](whitespace_before=old.whitespace_before, whitespace_after=old.whitespace_after)
    text = f"compare {_SYMBOLS[type(old)]} -> {_SYMBOLS[type(new)]} at"
    return _done(path, node, node.with_changes(operator=new), text)


def toggle_boolean_operator(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _site(module, rng, "boolop")) is None:
        return None
    node, path = site
    old = node.operator
    new = (cst.Or if isinstance(old, cst.And) else cst.And)(whitespace_before=old.whitespace_before,
                                                           whitespace_after=old.whitespace_after)
    return _done(path, node, node.with_changes(operator=new), f"boolop {_code(old)} -> {_code(new)} at")


def flip_boolean(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _site(module, rng, "flip")) is None:
        return None
    node, path = site
    new = "False" if node.value == "True" else "True"
    return _done(path, node, node.with_changes(value=new), f"flip {node.value} -> {new} at")


def _int(expr: cst.BaseExpression) -> int | None:
    """The value of an int literal (``-3`` too), else None."""
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and not expr.lpar:
        value = _int(expr.expression)
        return None if value is None else -value
    return expr.evaluated_value if isinstance(expr, cst.Integer) and not expr.lpar else None


def _number(value: int) -> cst.BaseExpression:
    return cst.Integer(str(value)) if value >= 0 else cst.UnaryOperation(cst.Minus(), cst.Integer(str(-value)))


def _paren(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr if expr.lpar or isinstance(expr, _ATOMS) else expr.with_changes(
        lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _shift(expr: cst.BaseExpression, delta: int, floor: int | None = None) -> cst.BaseExpression:
    """``expr + delta``, with ``floor`` ``max(floor, expr + delta)``; literals are computed."""
    if (value := _int(expr)) is not None:
        return _number(value + delta if floor is None else max(floor, value + delta))
    new = cst.BinaryOperation(_paren(expr), cst.Add() if delta > 0 else cst.Subtract(), cst.Integer(str(abs(delta))))
    return new if floor is None else cst.Call(cst.Name("max"), [cst.Arg(cst.Integer(str(floor))), cst.Arg(new)])


def _negated(expr: cst.BaseExpression) -> cst.BaseExpression:
    value = _int(expr)
    return _number(-value) if value is not None else cst.UnaryOperation(cst.Minus(), _paren(expr))


def _slice_options(sl: cst.Slice) -> list[cst.Slice]:
    low, up = sl.lower, sl.upper
    if low is None:  # head x[:k]
        return [sl.with_changes(lower=_negated(up), upper=None), sl.with_changes(upper=_shift(up, 1)),
                sl.with_changes(upper=_shift(up, -1, 1))]
    if isinstance(low, cst.UnaryOperation) and isinstance(low.operator, cst.Minus):  # tail x[-k:]
        k = low.expression
        return [sl.with_changes(lower=None, upper=k), sl.with_changes(lower=_negated(_shift(k, 1))),
                sl.with_changes(lower=_negated(_shift(k, -1, 1)))]
    return [sl.with_changes(lower=_shift(low, 1)), sl.with_changes(lower=_shift(low, -1, 0))]  # skip x[k:]


def toggle_slice(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _site(module, rng, "slice")) is None:
        return None
    node, path = site
    if isinstance(node, cst.Comparison):
        target = node.comparisons[0]
        bound = node.left if _is_len(target.comparator) else target.comparator
        new = _shift(bound, rng.choice([-1, 1]) if _int(bound) != 0 else 1, 0 if _int(bound) is not None else None)
        changed = (node.with_changes(left=new) if bound is node.left
                   else node.with_changes(comparisons=[target.with_changes(comparator=new)]))
        return _done(path, node, changed, f"slice len() bound {_code(bound)} -> {_code(new)} at")
    sl = node.slice[0].slice
    options = [o for o in _slice_options(sl) if _code(o) != _code(sl)]
    if not options:
        return None
    new = rng.choice(options)
    changed = node.with_changes(slice=[node.slice[0].with_changes(slice=new)])
    return _done(path, node, changed, f"slice [{_code(sl)}] -> [{_code(new)}] at")


# ---------------------------------------------------------------- statements and scopes


class _Reads(ast.NodeVisitor):
    """In evaluation order: the names statements read before binding them (``free``), the names they bind in the
    enclosing function, the ``self.<attr>`` they read and set, whether they await, and whether they may not
    move (``fixed``: return, yield, a definition, global/nonlocal, break/continue outside their own loop)."""

    def __init__(self) -> None:
        self.free: set[str] = set()
        self.bound: set[str] = set()
        self.attrs: set[str] = set()
        self.sets: set[str] = set()
        self.awaits = self.fixed = False
        self.loops = 0

    @classmethod
    def of(cls, nodes: Sequence[ast.AST]) -> _Reads:
        reads = cls()
        for node in nodes:
            reads.visit(node)
        return reads

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.bound.add(node.id)
        elif node.id not in self.bound:
            self.free.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            (self.attrs if isinstance(node.ctx, ast.Load) else self.sets).add(node.attr)
        self.visit(node.value)

    def _value_first(self, node: ast.Assign | ast.AnnAssign | ast.NamedExpr) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for part in (node.value, getattr(node, "annotation", None), *targets):
            if part is not None:
                self.visit(part)

    visit_Assign = visit_AnnAssign = visit_NamedExpr = _value_first

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        target = node.target
        if isinstance(target, (ast.Name, ast.Attribute)):
            self.visit(ast.Name(target.id, ast.Load()) if isinstance(target, ast.Name)
                       else ast.Attribute(target.value, target.attr, ast.Load()))
        self.visit(target)

    def visit_For(self, node: ast.For | ast.AsyncFor | ast.While) -> None:
        self.visit(node.test if isinstance(node, ast.While) else node.iter)
        self.loops += 1
        for part in [*([] if isinstance(node, ast.While) else [node.target]), *node.body]:
            self.visit(part)
        self.loops -= 1
        for part in node.orelse:
            self.visit(part)

    visit_AsyncFor = visit_While = visit_For

    def _fix(self, node: ast.AST) -> None:
        self.fixed = True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.bound.add(node.name)

    visit_Return = visit_Yield = visit_YieldFrom = visit_Global = visit_Nonlocal = _fix
    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _fix

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.bound.update(a.asname or a.name.split(".")[0] for a in node.names)

    visit_ImportFrom = visit_Import

    def visit_Break(self, node: ast.Break | ast.Continue) -> None:
        self.fixed |= not self.loops

    visit_Continue = visit_Break

    def visit_Await(self, node: ast.Await) -> None:
        self.awaits = True
        self.generic_visit(node)

    def _scoped(self, parts: list[ast.AST]) -> None:
        saved = set(self.bound)
        for part in parts:
            self.visit(part)
        self.bound = saved

    def visit_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        parts = [p for g in node.generators for p in (g.iter, g.target, *g.ifs)]
        self._scoped(parts + ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]))

    visit_SetComp = visit_GeneratorExp = visit_DictComp = visit_ListComp

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
            self.visit(default)
        self._scoped([ast.Name(a.arg, ast.Store()) for a in _args(node.args)] + [node.body])

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for part in node.body:
            self.visit(part)


def _args(args: ast.arguments) -> list[ast.arg]:
    return [a for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a is not None]


def _pair(body: Sequence[cst.BaseStatement], nodes: list[ast.stmt]) -> Iterator[tuple[cst.BaseStatement, list]]:
    """Each statement of a libcst block with the ast statements it parses to (``a; b`` is two)."""
    at = 0
    for stmt in body:
        width = len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1
        yield stmt, nodes[at:at + width]
        at += width


def _blocks(stmt: cst.CSTNode, node: ast.AST) -> Iterator[tuple[list[cst.CSTNode], cst.BaseSuite, list, set[str]]]:
    """The blocks of a compound statement: (nodes from ``stmt`` down to the block, block, its ast statements,
    names the header binds for it)."""
    if not isinstance(node, _BLOCKS.get(type(stmt), ())):
        return
    head = ([node.target] if isinstance(node, (ast.For, ast.AsyncFor)) else
            [i.optional_vars for i in node.items if i.optional_vars] if isinstance(node, (ast.With, ast.AsyncWith))
            else [])
    yield [stmt], stmt.body, node.body, _Reads.of(head).bound
    orelse = getattr(stmt, "orelse", None)
    if isinstance(orelse, cst.If):
        yield from (([stmt, *chain], *rest) for chain, *rest in _blocks(orelse, node.orelse[0]))
    elif isinstance(orelse, cst.Else):
        yield [stmt, orelse], orelse.body, node.orelse, set()
    for handler, h in zip(getattr(stmt, "handlers", ()), getattr(node, "handlers", ()), strict=True):
        yield [stmt, handler], handler.body, h.body, {h.name} if h.name else set()
    if isinstance(stmt, cst.Try) and stmt.finalbody is not None:
        yield [stmt, stmt.finalbody], stmt.finalbody.body, node.finalbody, set()


@dataclasses.dataclass(frozen=True)
class _Func:
    node: cst.FunctionDef
    owner: cst.ClassDef | None
    reads: frozenset[str]  # every name the function reads
    returns: int


@dataclasses.dataclass(frozen=True)
class _Spot:
    """A place in a block of a function: before ``block.body[index]``, or at the end."""

    fn: _Func
    path: tuple[cst.CSTNode, ...]  # the block's ancestors, the module first
    block: cst.IndentedBlock
    index: int
    bound: frozenset[str]  # parameters and what the function's earlier statements bind
    reads: _Reads | None  # of the statement there

    @property
    def stmt(self) -> cst.BaseStatement | None:
        return self.block.body[self.index] if self.index < len(self.block.body) else None


@dataclasses.dataclass(frozen=True)
class _Layout:
    spots: tuple[_Spot, ...]
    names: frozenset[str]  # module-level names
    attrs: dict[int, frozenset[str]]  # id(class) -> what self.<attr> may read in its methods


@functools.lru_cache(maxsize=16)
def _layout(module: cst.Module) -> _Layout:
    tree, spots, names, funcs = ast.parse(module.code), [], set(), []
    for stmt, nodes in _pair(module.body, tree.body):
        names |= _Reads.of(nodes).bound
        if isinstance(stmt, cst.FunctionDef):
            funcs.append((stmt, nodes[0], None, (module,)))
        elif isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            funcs.extend((s, n[0], stmt, (module, stmt, stmt.body)) for s, n in _pair(stmt.body.body, nodes[0].body)
                         if isinstance(s, cst.FunctionDef))

    def walk(fn: _Func, path: tuple, block: cst.IndentedBlock, nodes: list, bound: frozenset[str]) -> None:
        for index, (stmt, parts) in enumerate(_pair(block.body, nodes)):
            reads = _Reads.of(parts)
            spots.append(_Spot(fn, path, block, index, bound, reads))
            for chain, inner, inner_nodes, head in _blocks(stmt, parts[0] if parts else None):
                if isinstance(inner, cst.IndentedBlock):
                    walk(fn, (*path, block, *chain), inner, inner_nodes, bound | head)
            bound = bound | reads.bound
        spots.append(_Spot(fn, path, block, len(block.body), bound, None))

    for func, node, owner, path in funcs:
        if isinstance(func.body, cst.IndentedBlock) and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            walked = list(ast.walk(node))
            fn = _Func(func, owner, frozenset(n.id for n in walked if isinstance(n, ast.Name)
                                              and not isinstance(n.ctx, ast.Store)),
                       sum(isinstance(n, ast.Return) for n in walked))
            walk(fn, (*path, func), func.body, node.body, frozenset(a.arg for a in _args(node.args)))
    attrs = {}
    for _, _, owner, _ in funcs:
        if owner is not None and id(owner) not in attrs:
            design = any((cst.Module([]).code_for_node(b.value).split(".")[-1] == CONTRACT["base_class"])
                         for b in owner.bases)
            members = {t.target.value for s in owner.body.body for t in m.findall(s, m.AssignTarget(target=m.Name()))}
            members |= {s.name.value for s in owner.body.body if isinstance(s, cst.FunctionDef)}
            members |= {a for s in spots if s.fn.owner is owner and s.reads for a in s.reads.sets}
            attrs[id(owner)] = frozenset(members | (BASE_ATTRS if design else set()))
    return _Layout(tuple(spots), frozenset(names), attrs)


def _settled(spot: _Spot) -> bool:
    """Whether a statement may go in at ``spot``: not before a docstring or ``super().__init__(...)``."""
    body = spot.fn.node.body.body
    if spot.block is not spot.fn.node.body:
        return True
    calls = [i for i, s in enumerate(body) if m.matches(s, _SUPER_INIT) or (i == 0 and is_docstring(s))]
    return not calls or spot.index > calls[0]


def _removable(spot: _Spot) -> bool:
    """Whether ``delete`` (and ``replace``) may take the statement at ``spot`` (see the module docstring)."""
    stmt = spot.stmt
    if not isinstance(stmt, cst.SimpleStatementLine) or is_docstring(stmt) or m.matches(stmt, _SUPER_INIT) or any(
            isinstance(s, (cst.Pass, cst.Global, cst.Nonlocal)) for s in stmt.body):
        return False
    if any(isinstance(s, cst.Return) for s in stmt.body) and (spot.fn.returns < 2 or (
            spot.block is spot.fn.node.body and spot.index == len(spot.block.body) - 1)):
        return False
    if spot.fn.owner is not None and spot.fn.node.name.value == CTOR and spot.reads.sets:
        return False
    return not any(name in spot.fn.reads and name not in spot.bound for name in spot.reads.bound)


def _with_block(spot: _Spot, body: list[cst.BaseStatement], anchor: int, text: str) -> Edit:
    block = spot.block.with_changes(body=body or [cst.SimpleStatementLine([cst.Pass()])])
    return Edit(_rebuild(spot.path, spot.block, block), text, block.body[min(anchor, len(block.body) - 1)],
                spot.fn.node.name.value)


def delete_statement(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    spots = [s for s in _layout(module).spots if s.stmt is not None and _removable(s)]
    if not spots:
        return None
    spot = rng.choice(spots)
    body = list(spot.block.body)
    gone = _code(body.pop(spot.index)).splitlines()[0]
    return _with_block(spot, body, spot.index, f"delete {gone[:40]!r} at")


@dataclasses.dataclass(frozen=True)
class Donor:
    """The statements a donor design can give (see the module docstring), each with its :class:`_Reads`."""

    tag: str
    statements: tuple[tuple[cst.BaseStatement, _Reads], ...]

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def of(genome: Genome) -> Donor:
        found = [(s.stmt.with_changes(leading_lines=[]), s.reads) for s in _layout(_parse(genome.source)).spots
                 if s.stmt is not None and not s.reads.fixed and not is_docstring(s.stmt)
                 and not m.matches(s.stmt, _SUPER_INIT | _PASS) and _code(s.stmt).count("\n") < MAX_DONOR_LINES]
        return Donor(genome.id[:6], tuple(found))


def _donor_site(module: cst.Module, rng: random.Random, donor: Donor | None,
                replace: bool) -> tuple[_Spot, cst.BaseStatement] | None:
    """A random spot of ``module`` and a donor statement that fits there (see the module docstring)."""
    if donor is None or not donor.statements:
        return None
    layout = _layout(module)
    taken = layout.names | _BUILTINS
    for spot in rng.sample(layout.spots, len(layout.spots)):
        if not _settled(spot) or (replace and (spot.stmt is None or not _removable(spot))):
            continue
        visible, attrs = spot.bound | taken, layout.attrs.get(id(spot.fn.owner), frozenset())
        fits = [s for s, r in donor.statements if r.free <= visible and r.attrs <= attrs and not r.bound & taken
                and "self" not in r.bound and (spot.fn.node.asynchronous is not None or not r.awaits)
                and not (replace and s.deep_equals(spot.stmt.with_changes(leading_lines=[])))]
        if fits:
            return spot, rng.choice(fits).deep_clone()
    return None


def insert_donor(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _donor_site(module, rng, donor, replace=False)) is None:
        return None
    spot, stmt = site
    body = list(spot.block.body)
    body.insert(spot.index, stmt)
    return _with_block(spot, body, spot.index, f"insert donor stmt from {donor.tag} into")


def replace_with_donor(module: cst.Module, rng: random.Random, donor: Donor | None = None) -> Edit | None:
    if (site := _donor_site(module, rng, donor, replace=True)) is None:
        return None
    spot, stmt = site
    body = list(spot.block.body)
    body[spot.index] = stmt.with_changes(leading_lines=body[spot.index].leading_lines)
    return _with_block(spot, body, spot.index, f"replace with donor stmt from {donor.tag} at")


# ---------------------------------------------------------------- compound

#: kind (the first word of its log line) -> edit primitive
EDITS: dict[str, Primitive] = {
    "nudge": nudge_constant, "negate": negate_condition, "compare": toggle_comparison,
    "boolop": toggle_boolean_operator, "flip": flip_boolean, "slice": toggle_slice, "delete": delete_statement,
    "insert": insert_donor, "replace": replace_with_donor,
}
DONOR_KINDS = ("insert", "replace")


@functools.lru_cache(maxsize=16)
def _parse(source: str) -> cst.Module:
    return cst.parse_module(source)


def _compiles(source: str) -> bool:
    """Whether ``source`` compiles (the validator only parses: ``await`` outside ``async def`` would pass it)."""
    try:
        compile(source, "<design>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _log(module: cst.Module, tree: ast.Module, applied: list[Edit]) -> list[str]:
    """``"<text> <function>:<line>"`` per edit, the line in the child (positions only of the functions concerned)."""
    units = []  # (top-level statement, method or class-level statement, its ast statement)
    for stmt, nodes in _pair(module.body, tree.body):
        if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            units += [(s, n[0]) for s, n in _pair(stmt.body.body, nodes[0].body) if n]
        elif nodes:
            units.append((stmt, nodes[0]))
    out = []
    for e in applied:
        where = e.func
        for stmt, node in units:
            head = stmt.name if isinstance(stmt, cst.FunctionDef) else stmt
            if (head.value if head is not stmt else "module") == e.func:
                positions = MetadataWrapper(cst.Module([stmt]), unsafe_skip_copy=True).resolve(PositionProvider)
                if e.anchor in positions:
                    where += f":{node.lineno + positions[e.anchor].start.line - positions[head].start.line}"
                    break
        out.append(f"{e.text} {where}")
    return out


def compound_with_log(a: Genome, donor: Genome | None, rng: random.Random,
                      n_edits: int | None = None) -> tuple[Genome | None, list[str]]:
    """A child of ``a`` with ``n_edits`` edits (drawn 1-4, two most often, when None), donor statements from
    ``donor``, and one log line per edit; ``(None, [])`` when no valid new child comes in a few attempts.
    Deterministic for a given ``rng`` state; never raises."""
    try:
        module = _parse(a.source)
        parents = [a] if donor is None else [a, donor]
        try:
            give = Donor.of(donor) if donor is not None else None
        except Exception:  # a donor that cannot be read gives no statements
            give = None
        for _ in range(_ATTEMPTS):
            n = n_edits or rng.choices(list(_N_WEIGHTS), weights=list(_N_WEIGHTS.values()))[0]
            kinds = [k for k in EDITS if give is not None or k not in DONOR_KINDS]
            current, applied = module, []
            while len(applied) < n and kinds:
                kind = rng.choice(kinds)
                try:
                    edit = EDITS[kind](current, rng, give)
                except Exception:  # an edit that cannot handle this code does not apply to it
                    edit = None
                if edit is None:
                    kinds.remove(kind)
                    continue
                current = edit.module
                applied.append(edit)
            if not applied:
                return None, []
            source = current.code
            child = _finish(source, "compound", parents) if _compiles(source) else None
            if child is not None:
                return child, _log(current, ast.parse(child.source), applied)
    except Exception:  # an operator never raises: a design it cannot handle yields no child
        return None, []
    return None, []


def compound(a: Genome, donor: Genome | None, rng: random.Random, n_edits: int | None = None) -> Genome | None:
    """:func:`compound_with_log` without the log."""
    return compound_with_log(a, donor, rng, n_edits)[0]
