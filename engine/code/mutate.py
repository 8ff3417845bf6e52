"""Structural mutation and crossover of genomes with libcst (no LLM).

Operators (registered in :data:`OPERATORS` under the name recorded as :attr:`Genome.operator`):

* ``mutate:constants`` -- :func:`mutate_constants` nudges one to three tunable numeric constants (top-k sizes,
  thresholds, budgets): ints stay ints (>= 1 when they were), values in [0, 1] stay in [0, 1]. Tunable means
  an UPPER_CASE module/class constant, a parameter default, a keyword argument, an ordering comparison (not
  against 0/1), or elsewhere an int >= 10 / a float other than 0 and 1; never an index (``[0]``, ``[-1]``), an
  operand of ``%``, ``**`` or a bit operation, an annotation or a decorator. A design's declared knobs (UPPER_CASE
  constants, parameter defaults) are picked ``NAMED_WEIGHT`` times likelier than literals inside code.
* ``swap:<method>`` -- :func:`swap_method` takes one method from design *b* into design *a*'s class, with the
  helper methods, module-level functions, constants and imports it needs; the ``__init__`` statements of *b*
  (tables, attributes) are appended to *a*'s constructor. A name that means something else in *a* is renamed;
  code that only *a*'s replaced method used is dropped.
* ``crossover`` -- :func:`crossover`: the retrieval method (the first in ``CONTRACT["methods"]``) and its
  helpers from *a*, every other contract method and its helpers from *b*, then code no longer reachable is
  dropped.
* ``compound`` -- :func:`engine.code.edits.compound`: one to four GenProg-style edits at once on *a* (nudge a
  constant, negate a condition, toggle a comparison, ``and``/``or``, ``True``/``False`` or a slice bound, delete a
  statement, insert or replace one with a scope-compatible statement of *b*); see :mod:`engine.code.edits`.

Every operator returns a genome that passes :func:`engine.code.validate.validate` and whose id differs from its
parents', or ``None``; it never raises on valid input. Provenance is recorded in ``Genome.operator`` and
``Genome.parents``, not in the code (equal code keeps one id); a spliced design keeps its first parent's
module docstring.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import libcst as cst

from engine.code.genome import Genome
from engine.code.splice import CONTRACT_METHODS, CTOR, prune, splice
from engine.code.validate import validate

_UPPER_RE = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
_STRUCTURAL_KEYWORDS = {"maxsplit", "axis", "ndim", "indent", "flags", "count", "base", "protocol", "level",
                        "ndigits", "start", "stop", "step", "strict", "timeout", "microsecond", "second", "minute", "hour"}
_NON_TUNABLE_OPS = (cst.Modulo, cst.Power, cst.LeftShift, cst.RightShift, cst.BitAnd, cst.BitOr, cst.BitXor)
_ORDERING = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)
_ATTEMPTS = 8
#: how much likelier a declared knob (UPPER_CASE constant, parameter default) is picked than a literal in code
NAMED_WEIGHT = 4.0


class _Replace(cst.CSTTransformer):
    """Replace nodes by identity."""

    def __init__(self, mapping: dict[int, cst.CSTNode]):
        super().__init__()
        self.mapping = mapping

    def on_leave(self, original_node, updated_node):
        return self.mapping.get(id(original_node), updated_node)


def _finish(source: str, operator: str, parents: Sequence[Genome]) -> Genome | None:
    """The child genome if it is valid and differs from every parent, else None."""
    child = Genome.from_text(source, operator=operator, parents=tuple(p.id for p in parents))
    if any(child.id == p.id for p in parents) or not validate(child.source).ok:
        return None
    return child


# ---------------------------------------------------------------- constants


class _Constants(cst.CSTVisitor):
    """Collects tunable numeric literals (see the module docstring) as (node to replace, value)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[cst.CSTNode] = []
        self.found: list[tuple[cst.CSTNode, int | float]] = []
        self.named: set[int] = set()  # ids of the found nodes that are a design's declared knobs

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.Index, cst.Annotation, cst.Decorator)):
            return False
        if isinstance(node, (cst.Integer, cst.Float)):
            self._consider(node)
            return False
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self.stack and self.stack[-1] is original_node:
            self.stack.pop()

    def _consider(self, node: cst.Integer | cst.Float) -> None:
        if isinstance(node, cst.Integer) and not node.value.replace("_", "").isdigit():
            return  # hex/octal/binary literals are bit patterns
        value = node.evaluated_value
        unit, chain = node, self.stack[::-1]
        if chain and isinstance(chain[0], cst.UnaryOperation) and isinstance(chain[0].operator, cst.Minus):
            unit, value, chain = chain[0], -value, chain[1:]
        parent = chain[0] if chain else None
        if self._tunable(unit, value, parent, chain):
            self.found.append((unit, value))
            if self._named(unit, parent):
                self.named.add(id(unit))

    @staticmethod
    def _named(unit, parent) -> bool:
        """For a tunable literal: a parameter default or the value of an assignment, which :meth:`_tunable` only
        accepts for a module/class UPPER_CASE constant -- a knob the design declares."""
        return isinstance(parent, cst.Param) or (isinstance(parent, (cst.Assign, cst.AnnAssign))
                                                 and parent.value is unit)

    def _tunable(self, unit, value, parent, chain) -> bool:
        if isinstance(parent, (cst.Assign, cst.AnnAssign)) and parent.value is unit:
            targets = [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
            in_function = any(isinstance(n, (cst.FunctionDef, cst.Lambda)) for n in chain)
            return not in_function and all(isinstance(t, cst.Name) and _UPPER_RE.match(t.value) for t in targets)
        if isinstance(parent, cst.Param) and parent.default is unit:
            return True
        if isinstance(parent, cst.Arg) and parent.keyword is not None:
            return parent.keyword.value not in _STRUCTURAL_KEYWORDS
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, _NON_TUNABLE_OPS):
            return False
        comparison = parent if isinstance(parent, cst.Comparison) else None
        if isinstance(parent, cst.ComparisonTarget):
            if not isinstance(parent.operator, _ORDERING):
                return False
            comparison = chain[1] if len(chain) > 1 else None
        if isinstance(comparison, cst.Comparison):
            ops = [t.operator for t in comparison.comparisons]
            return all(isinstance(o, _ORDERING) for o in ops) and value not in (0, 1, -1)
        if isinstance(value, float):
            return value not in (0.0, 1.0)
        return abs(value) >= 10


def _weighted_sample(items: list, weights: list[float], k: int, rng: random.Random) -> list:
    """``k`` distinct items (all when fewer), each drawn with probability proportional to its weight."""
    pool = list(zip(items, weights, strict=True))
    picks = []
    for _ in range(min(k, len(pool))):
        item, _ = pool.pop(rng.choices(range(len(pool)), weights=[w for _, w in pool])[0])
        picks.append(item)
    return picks


def _perturb(value: int | float, rng: random.Random) -> int | float:
    if isinstance(value, int):
        if value == 0:
            return rng.choice([1, 2])
        size = abs(value)
        new = round(size * rng.choice([0.75, 0.9, 1.1, 1.25, 1.5])) if size >= 5 else size + rng.choice([-1, 1])
        new = max(1, new if new != size else size + 1)
        return new if value > 0 else -new
    if 0.05 <= value <= 1.0 or value == 0.0:
        step = rng.choice([0.05, 0.1, 0.2]) * rng.choice([-1, 1])
        new = round(min(1.0, max(0.0, value + step)), 3)
        return new if new != value else round(min(1.0, max(0.0, value - step)), 3)
    return round(value * rng.choice([0.75, 0.9, 1.1, 1.25, 1.5]), 4)


def _literal(value: int | float, like: cst.CSTNode) -> cst.BaseExpression:
    expr = cst.parse_expression(repr(value))
    return expr.with_changes(lpar=like.lpar, rpar=like.rpar)


def mutate_constants(genome: Genome, rng: random.Random) -> Genome | None:
    """Perturb 1-3 tunable numeric constants; None when the design has none (or no valid distinct child)."""
    try:
        module = cst.parse_module(genome.source)
        collector = _Constants()
        module.visit(collector)
        if not collector.found:
            return None
        weights = [NAMED_WEIGHT if id(node) in collector.named else 1.0 for node, _ in collector.found]
        for _ in range(_ATTEMPTS):
            picks = _weighted_sample(collector.found, weights, rng.choice([1, 1, 2, 3]), rng)
            changes = {id(node): _literal(_perturb(value, rng), node) for node, value in picks}
            child = _finish(module.visit(_Replace(changes)).code, "mutate:constants", [genome])
            if child is not None:
                return child
    except Exception:  # an operator never raises: a design it cannot handle yields no child
        return None
    return None


# ---------------------------------------------------------------- swap and crossover


def swap_method(a: Genome, b: Genome, name: str, rng: random.Random | None = None) -> Genome | None:
    """Design a with its method ``name`` taken from design b (with the helpers, module-level code and
    ``__init__`` statements it needs), pruned of what only a's replaced method used; None when b has no such
    method or the child is invalid or not new.
    ``rng`` is unused (the operation is deterministic); it keeps the operators' signatures alike."""
    if name == CTOR:
        return None
    try:
        source = splice(a.source, b.source, [name], tag=f"x{b.id[:4]}")
        return None if source is None else _finish(prune(source), f"swap:{name}", [a, b])
    except Exception:  # an operator never raises: a design it cannot handle yields no child
        return None


def crossover(a: Genome, b: Genome, rng: random.Random | None = None) -> Genome | None:
    """The retrieval part of a (the first contract method, its helpers and state) with every other contract
    method of b (``update``: its helpers, module-level code and ``__init__`` statements), pruned of what no
    contract method reaches any more. ``rng`` is unused (deterministic); None when the child is invalid or
    equals a parent."""
    try:
        source = splice(a.source, b.source, CONTRACT_METHODS[1:], tag=f"x{b.id[:4]}")
        return None if source is None else _finish(prune(source), "crossover", [a, b])
    except Exception:  # an operator never raises: a design it cannot handle yields no child
        return None


# ---------------------------------------------------------------- registry


def _compound(parents: Sequence[Genome], rng: random.Random) -> Genome | None:
    from engine.code.edits import compound  # imported on use: engine.code.edits builds on this module

    return compound(parents[0], parents[1], rng)


@dataclass(frozen=True)
class Operator:
    """A named structural operator over ``arity`` parent genomes."""

    name: str
    arity: int
    apply: Callable[[Sequence[Genome], random.Random], Genome | None]

    def __call__(self, parents: Sequence[Genome], rng: random.Random) -> Genome | None:
        if len(parents) != self.arity:
            raise ValueError(f"operator {self.name!r} takes {self.arity} parent genome(s), got {len(parents)}")
        return self.apply(parents, rng)


#: name -> operator; the name is what the child records as ``Genome.operator``
OPERATORS: dict[str, Operator] = {op.name: op for op in [
    Operator("mutate:constants", 1, lambda parents, rng: mutate_constants(parents[0], rng)),
    *[Operator(f"swap:{m}", 2, lambda parents, rng, m=m: swap_method(parents[0], parents[1], m, rng))
      for m in CONTRACT_METHODS],
    Operator("crossover", 2, lambda parents, rng: crossover(parents[0], parents[1], rng)),
    Operator("compound", 2, _compound),
]}
