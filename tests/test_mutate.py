"""Structural operators (engine.code.mutate): every child is valid, new, loadable, and what it claims to be.

The seeds are read as genomes; children are checked with the validator, loaded with the harness loader, and some
are run against a real toolkit (scratch directory + the hashing embedder; no LLM, which the designs tolerate).
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import tokenize
from pathlib import Path

import libcst as cst
import pytest

from engine.code.genome import Genome
from engine.code.mutate import OPERATORS, crossover, mutate_constants, swap_method
from engine.code.syntax import class_members, design_classes
from engine.code.validate import validate
from harness.design import CONTRACT, Toolkit
from harness.loader import load_design_source
from harness.models.embed import HashingEmbedder
from harness.types import Episode, Step, Task

ROOT = Path(__file__).resolve().parents[1]
SEEDS = {g.name: g for g in (Genome.from_file(p) for p in sorted((ROOT / "seeds").glob("*.py"))
                             if p.name != "__init__.py")}
RNG_SEEDS = [0, 1, 2]
RETRIEVE, UPDATE = list(CONTRACT["methods"])[:2]

ALPHA = '''from harness.design import MemoryDesign

LIMIT = 2


def _fmt(x):
    return f"A:{x}"


class Alpha(MemoryDesign):
    def __init__(self, toolkit):
        super().__init__(toolkit)
        self.log = []

    def _store(self, item):
        self.log.append(item)

    async def retrieve(self, task):
        return {"text": " | ".join(_fmt(x) for x in self.log[-LIMIT:])}

    async def update(self, episode):
        self._store(episode.task.goal)
'''

BETA = '''from harness.design import MemoryDesign

LIMIT = 5


def _fmt(x):
    return f"B:{x}"


class Beta(MemoryDesign):
    def __init__(self, toolkit):
        super().__init__(toolkit)
        self.log = {}

    def _store(self, key, value):
        self.log[key] = value

    async def retrieve(self, task):
        return {"text": str(self.log)}

    async def update(self, episode):
        self._store(episode.task.task_id, _fmt(episode.task.goal)[:LIMIT])
'''

TASK = Task(task_id="tw/w01/q1", benchmark="textworld", goal="Put the brass key into the wooden chest.",
            observation="-= Kitchen =- A brass key lies on the table. There is a closed wooden chest here.")
EPISODE = Episode(task=TASK, steps=[Step("take brass key", "Taken.", 0.0), Step("open chest", "Opened.", 0.0),
                                    Step("insert brass key into chest", "Done!", 1.0, True)],
                  won=True, reward=1.0, progress=1.0)


def method_code(genome: Genome, name: str) -> str:
    (cls,) = design_classes(cst.parse_module(genome.source))
    return cst.Module([]).code_for_node(class_members(cls)[name]).strip()


def untag(text: str, donor: Genome) -> str:
    """Undo the renames a splice applies to code moved from ``donor`` (suffix ``_x<first 4 of its id>``)."""
    return re.sub(rf"_x{donor.id[:4]}\d*\b", "", text, flags=re.IGNORECASE)


def assert_good_child(child: Genome | None, parents: list[Genome], operator: str) -> Genome:
    assert child is not None
    assert child.operator == operator and child.parents == tuple(p.id for p in parents)
    assert all(child.id != p.id for p in parents)
    report = validate(child.source)
    assert report.ok, report.text()
    assert load_design_source(child.source, child.name).__name__ == child.name
    return child


def tokens(source: str) -> list[tokenize.TokenInfo]:
    return [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)]


def run(genome: Genome, scratch: Path) -> dict:
    """Instantiate the design on a real toolkit, learn from one episode, recall for the same task."""
    cls = load_design_source(genome.source, genome.name)
    design = cls(Toolkit(llm=None, embedder=HashingEmbedder(), scratch_dir=scratch))

    async def play() -> dict:
        await design.update(EPISODE)
        return await design.retrieve(TASK)

    return asyncio.run(play())


# -------------------------------------------------------------------------------- mutate:constants


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("name", [n for n in SEEDS if n != "NoMemory"])
def test_mutate_constants_changes_only_numbers(name, seed):
    parent = SEEDS[name]
    child = assert_good_child(mutate_constants(parent, random.Random(seed)), [parent], "mutate:constants")
    before, after = tokens(parent.source), tokens(child.source)
    assert len(before) == len(after)
    changed = [(a.string, b.string) for a, b in zip(before, after, strict=True) if a.string != b.string]
    assert changed  # numbers, possibly inside an f-string's expressions (one STRING token in Python 3.11)
    number = r"\d+(?:\.\d*)?(?:e-?\d+)?"
    pairs = []
    for old, new in changed:
        assert re.sub(number, "N", old) == re.sub(number, "N", new)
        pairs += [(x, y) for x, y in zip(re.findall(number, old), re.findall(number, new), strict=True) if x != y]
    assert 1 <= len(pairs) <= 3
    for old, new in pairs:
        if re.fullmatch(r"\d+", old):
            assert re.fullmatch(r"\d+", new) and int(new) >= min(1, int(old))
        elif 0.0 <= float(old) <= 1.0:
            assert 0.0 <= float(new) <= 1.0


def test_mutate_constants_without_constants_gives_none():
    assert mutate_constants(SEEDS["NoMemory"], random.Random(0)) is None


def test_mutate_constants_leaves_structural_numbers_alone():
    source = ALPHA.replace("LIMIT = 2\n", "LIMIT = 2\nTHRESHOLD = 0.5\nWINDOW = 40\n").replace(
        '        self._store(episode.task.goal)',
        '        steps = episode.steps[1:] + episode.steps[:-1]\n'
        '        first = steps[0] if steps else None\n'
        '        last = steps[-1] if steps else None\n'
        '        for _ in range(0):\n'
        '            pass\n'
        '        if len(steps) % 7 == 1 and first is not last and 0.5 > THRESHOLD:\n'
        '            steps = steps[:WINDOW]\n'
        '        self._store(episode.task.goal)')
    parent = Genome.from_text(source)
    for seed in range(12):
        child = assert_good_child(mutate_constants(parent, random.Random(seed)), [parent], "mutate:constants")
        for fixed in ("steps[1:]", "steps[:-1]", "steps[0]", "steps[-1]", "range(0)", "% 7 == 1"):
            assert fixed in child.source
        values = dict(re.findall(r"^(LIMIT|THRESHOLD|WINDOW) = (\S+)$", child.source, re.MULTILINE))
        assert int(values["LIMIT"]) >= 1 and int(values["WINDOW"]) >= 1
        assert 0.0 <= float(values["THRESHOLD"]) <= 1.0


def test_mutate_constants_prefers_the_declared_knobs():
    """UPPER_CASE constants and parameter defaults are what a design declares tunable: over many children of
    trajectory_retrieval, a declared knob changes in most, a literal inside a method body in few."""
    parent = SEEDS["TrajectoryRetrieval"]
    knobs = dict(re.findall(r"^([A-Z_]+) = (\S+)", parent.source, re.MULTILINE))
    knob_changed = literal_only = 0
    for seed in range(40):
        child = mutate_constants(parent, random.Random(seed))
        values = dict(re.findall(r"^([A-Z_]+) = (\S+)", child.source, re.MULTILINE))
        if any(values[k] != v for k, v in knobs.items() if k in values):
            knob_changed += 1
        else:
            literal_only += 1
    assert knob_changed >= 2 * literal_only, (knob_changed, literal_only)


# -------------------------------------------------------------------------------- swap and crossover


@pytest.mark.parametrize("a, b, name", [
    ("TrajectoryRetrieval", "ReasoningBank", UPDATE),
    ("DynamicCheatsheet", "GMemory", RETRIEVE),
    ("GMemory", "TrajectoryRetrieval", UPDATE),
    ("ReasoningBank", "DynamicCheatsheet", RETRIEVE),
])
def test_swap_method_moves_the_method(a, b, name):
    pa, pb = SEEDS[a], SEEDS[b]
    child = assert_good_child(swap_method(pa, pb, name, random.Random(0)), [pa, pb], f"swap:{name}")
    assert child.name == pa.name
    assert untag(method_code(child, name), pb) == method_code(pb, name)
    other = UPDATE if name == RETRIEVE else RETRIEVE
    assert method_code(child, other) == method_code(pa, other)


@pytest.mark.parametrize("a, b", [
    ("TrajectoryRetrieval", "ReasoningBank"),
    ("GMemory", "DynamicCheatsheet"),
    ("DynamicCheatsheet", "TrajectoryRetrieval"),
])
def test_crossover_takes_retrieve_from_one_and_update_from_the_other(a, b, tmp_path):
    pa, pb = SEEDS[a], SEEDS[b]
    child = assert_good_child(crossover(pa, pb, random.Random(0)), [pa, pb], "crossover")
    assert method_code(child, RETRIEVE) == method_code(pa, RETRIEVE)
    assert untag(method_code(child, UPDATE), pb) == method_code(pb, UPDATE)
    assert OPERATORS["crossover"]([pa, pb], random.Random(1)).id == child.id  # deterministic
    retrieved = run(child, tmp_path)
    assert isinstance(retrieved, dict)


def test_crossover_prunes_what_only_the_old_update_used():
    pa, pb = SEEDS["TrajectoryRetrieval"], SEEDS["ReasoningBank"]
    child = crossover(pa, pb)
    assert "def _step_record" in pa.source and "def _step_record" not in child.source
    assert "def _render(" in child.source  # still used by retrieve


def test_swap_renames_what_means_something_else(tmp_path):
    alpha, beta = Genome.from_text(ALPHA), Genome.from_text(BETA)
    child = assert_good_child(swap_method(alpha, beta, UPDATE), [alpha, beta], f"swap:{UPDATE}")
    tag = f"x{beta.id[:4]}"
    for renamed in (f"def _fmt_{tag}(", f"LIMIT_{tag.upper()} = 5", f"def _store_{tag}(", f"self.log_{tag} = {{}}"):
        assert renamed in child.source
    assert 'return f"A:{x}"' in child.source and "LIMIT = 2" in child.source
    cls = load_design_source(child.source, child.name)
    design = cls(Toolkit(llm=None, embedder=HashingEmbedder(), scratch_dir=tmp_path))

    async def play() -> dict:
        await design.update(EPISODE)
        return await design.retrieve(TASK)

    assert asyncio.run(play()) == {"text": ""}  # alpha's retrieve still sees alpha's (empty) list
    assert getattr(design, f"log_{tag}") == {TASK.task_id: "B:Put"}  # beta's update, beta's constants


# -------------------------------------------------------------------------------- the registry


def test_registry_names_and_arity():
    assert set(OPERATORS) == {"mutate:constants", "crossover", "compound",
                              *(f"swap:{m}" for m in CONTRACT["methods"])}
    with pytest.raises(ValueError, match="takes 2 parent"):
        OPERATORS["crossover"]([SEEDS["NoMemory"]], random.Random(0))


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_every_operator_yields_valid_distinct_children_or_none(seed):
    alpha, beta = Genome.from_text(ALPHA), Genome.from_text(BETA)
    made = 0
    for name, op in OPERATORS.items():
        parents = [alpha, beta][: op.arity]
        child = op(parents, random.Random(seed))
        if child is not None:
            assert_good_child(child, parents, name)
            made += 1
    assert made == len(OPERATORS)


def test_operators_never_raise_on_odd_input():
    broken = Genome.from_text("def broken(:\n")
    aliased = Genome.from_text(ALPHA.replace("from harness.design import MemoryDesign",
                                             "import harness.design as hd").replace("(MemoryDesign)",
                                                                                     "(hd.MemoryDesign)"))
    alpha = Genome.from_text(ALPHA)
    assert mutate_constants(broken, random.Random(0)) is None
    assert swap_method(alpha, broken, UPDATE) is None and crossover(broken, alpha) is None
    assert swap_method(alpha, alpha, UPDATE) is None  # nothing new
    assert swap_method(alpha, SEEDS["NoMemory"], "no_such_method") is None
    assert swap_method(alpha, SEEDS["NoMemory"], CONTRACT["constructor"]["name"]) is None
    child = swap_method(aliased, Genome.from_text(BETA), UPDATE)
    assert_good_child(child, [aliased, Genome.from_text(BETA)], f"swap:{UPDATE}")
    child = crossover(SEEDS["NoMemory"], aliased)
    assert_good_child(child, [SEEDS["NoMemory"], aliased], "crossover")
