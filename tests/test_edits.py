"""Compound edits (engine.code.edits): children with one to four GenProg-style edits, each child valid, new,
logged and reproducible; donor statements only where every name they read is bound.

The seeds are read as text; each seed takes statements from the next one (in name order) as its donor.
"""

from __future__ import annotations

import ast
import functools
import random
from pathlib import Path

import libcst as cst
import pytest

from engine.code.edits import (
    DONOR_KINDS,
    EDITS,
    Donor,
    compound,
    compound_with_log,
    insert_donor,
    replace_with_donor,
)
from engine.code.genome import Genome
from engine.code.mutate import OPERATORS
from engine.code.validate import validate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = {p.stem: Genome.from_text(p.read_text(), name=p.stem) for p in sorted((ROOT / "seeds").glob("*.py"))
         if p.name != "__init__.py"}
NAMES = sorted(SEEDS)
RNG_SEEDS = range(10)

TARGET = '''from harness.design import MemoryDesign


class Target(MemoryDesign):
    def __init__(self, toolkit):
        super().__init__(toolkit)
        self.items = []

    async def retrieve(self, task):
        return {"text": " ".join(self.items)}

    async def update(self, episode):
        self.items.append(episode.task.goal)
'''

DONOR = '''import json

from harness.design import MemoryDesign

LIMIT = 3


class Giver(MemoryDesign):
    def __init__(self, toolkit):
        super().__init__(toolkit)
        self.cache = {}

    async def retrieve(self, task):
        goal = task.goal
        ranked = sorted(self.cache)
        note = json.dumps(ranked[:LIMIT])
        return {"text": goal + note}

    async def update(self, episode):
        key = episode.task.task_id
        self.cache[key] = episode.reward
        self.items.append(key)
        self.items.sort()
'''


def donor_of(name: str) -> Genome:
    return SEEDS[NAMES[(NAMES.index(name) + 1) % len(NAMES)]]


@functools.cache
def sweep() -> dict[tuple[str, int], tuple[Genome | None, list[str]]]:
    """compound_with_log for every seed and rng seed, computed once (it validates every child it returns)."""
    return {(name, s): compound_with_log(SEEDS[name], donor_of(name), random.Random(s))
            for name in NAMES for s in RNG_SEEDS}


@pytest.mark.parametrize("name", NAMES)
def test_children_are_valid_new_and_logged(name):
    parent, donor = SEEDS[name], donor_of(name)
    made = 0
    for s in RNG_SEEDS:
        child, log = sweep()[(name, s)]
        if child is None:
            assert log == []
            continue
        made += 1
        assert child.operator == "compound" and child.parents == (parent.id, donor.id)
        assert child.id not in (parent.id, donor.id)
        assert 1 <= len(log) <= 4 and all(line.split()[0] in EDITS for line in log), log
        report = validate(child.source)
        assert report.ok, report.text()
    assert made >= len(RNG_SEEDS) // 2


def test_every_edit_kind_is_exercised():
    kinds = {line.split()[0] for _, log in sweep().values() for line in log}
    assert kinds == set(EDITS)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    for s in RNG_SEEDS[:2]:
        child, log = compound_with_log(SEEDS[name], donor_of(name), random.Random(s))
        expected, expected_log = sweep()[(name, s)]
        assert (child and child.id) == (expected and expected.id) and log == expected_log


def test_registered_operator_and_edit_count():
    a, b = SEEDS[NAMES[-1]], SEEDS[NAMES[0]]
    op = OPERATORS["compound"]
    assert op.arity == 2
    assert op([a, b], random.Random(7)).id == compound(a, b, random.Random(7)).id
    child, log = compound_with_log(a, b, random.Random(3), n_edits=3)
    assert child is not None and len(log) == 3
    child, log = compound_with_log(a, None, random.Random(3))  # no donor: no donor edits
    assert child is not None and child.parents == (a.id,)
    assert not any(line.split()[0] in DONOR_KINDS for line in log)


def test_never_raises_on_odd_input():
    broken, target = Genome.from_text("def broken(:\n"), Genome.from_text(TARGET)
    assert compound(broken, target, random.Random(0)) is None
    child = compound(target, broken, random.Random(0))  # an unreadable donor gives no statements
    assert child is None or (validate(child.source).ok and child.parents == (target.id, broken.id))
    assert compound_with_log(SEEDS["no_memory"], None, random.Random(0)) == (None, [])  # nothing to edit


def _function_names(source: str) -> dict[str, set[str]]:
    """Function name -> every name its body reads (for checking what was inserted where)."""
    tree = ast.parse(source)
    return {f.name: {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            for f in ast.walk(tree) if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)}


def test_donor_statements_only_where_their_names_are_bound():
    target, donor = cst.parse_module(TARGET), Donor.of(Genome.from_text(DONOR))
    before = _function_names(TARGET)
    placed: dict[str, set[str]] = {}
    children = set()
    for s in range(60):
        for primitive in (insert_donor, replace_with_donor):
            edit = primitive(target, random.Random(s), donor)
            if edit is None:
                continue
            text = cst.Module([]).code_for_node(edit.anchor).strip()
            placed.setdefault(text, set()).add(edit.func)
            children.add(edit.module.code)
            after = _function_names(edit.module.code)
            assert "json" not in after[edit.func] and "LIMIT" not in after[edit.func]  # not imported in Target
            assert after[edit.func] - before[edit.func] <= {"task", "episode", "self", "key", "goal"}
    # one edit on Target: a statement goes only where what it reads exists
    assert placed["goal = task.goal"] == {"retrieve"}
    assert placed["key = episode.task.task_id"] == {"update"}
    assert "self.cache = {}" in placed and "self.items.sort()" in placed
    for never in ("ranked = sorted(self.cache)", "note = json.dumps(ranked[:LIMIT])", "self.items.append(key)",
                  "self.cache[key] = episode.reward"):
        assert never not in placed  # reads self.cache (not in Target), json/ranked/LIMIT, or key (unbound)
    assert not any(line.startswith("return") for line in placed)
    for source in children:
        report = validate(source)
        assert report.ok, report.text()
