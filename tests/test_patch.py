"""Patch edits (engine.code.patch) and the meta agent's patch mode: a reply with only the changed definitions is
merged into every seed, the result validates, loads and runs the new code, and everything else stays byte for
byte; the fix loop feeds a merge failure back to the model. The model is a scripted chat object (the edge we
do not own)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import libcst as cst
import pytest

from engine.code.genome import Genome, normalise_source
from engine.code.patch import PatchError, apply_patch
from engine.code.syntax import class_members, design_classes
from engine.code.validate import validate
from engine.config import EvolveConfig
from engine.search.meta_agent import MetaAgent
from harness.design import Toolkit
from harness.loader import load_design_source
from harness.models.embed import HashingEmbedder
from harness.types import Task
from tests.test_evolve import FIXED as NOTES

ROOT = Path(__file__).resolve().parents[1]
SEEDS = {p.stem: p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.py"))
         if p.name != "__init__.py"}
TRAJ = SEEDS["trajectory_retrieval"]

TRUNCATED = "```python\nclass TrajectoryRetrieval(MemoryDesign):\n    async def retrieve(self, task)\n```"


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _design(source: str) -> cst.ClassDef:
    (cls,) = design_classes(cst.parse_module(source))
    return cls


def _constant(source: str) -> tuple[str, int] | None:
    """The first module-level ``NAME = <int>`` of a design, if any."""
    for stmt in cst.parse_module(source).body:
        small = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) else None
        if (isinstance(small, cst.Assign) and isinstance(small.value, cst.Integer)
                and small.targets[0].target.value.isupper()):
            return small.targets[0].target.value, int(small.value.value)
    return None


def _retrieve(source: str, tmp_path: Path) -> dict:
    cls = load_design_source(source, "patched")
    design = cls(Toolkit(llm=None, embedder=HashingEmbedder(), scratch_dir=tmp_path))
    task = Task(task_id="t", benchmark="textworld", goal="take the key", observation="a room")
    return asyncio.run(design.retrieve(task))


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_changed_method_and_constant_merge_into_every_seed(seed, tmp_path):
    parent = SEEDS[seed]
    name, value = _constant(parent) or ("PATCH_LIMIT", 0)
    reply = f'''Here is the change:
```python
{name} = {value + 7}


class {_design(parent).name.value}(MemoryDesign):
    async def retrieve(self, task):
        return {{"text": "limit " + str({name})}}
```'''
    child = apply_patch(parent, reply)
    assert validate(child).ok, validate(child).text()
    old, new = class_members(_design(parent)), class_members(_design(child))
    assert list(old) == list(new)  # replaced in place, nothing added or dropped
    assert _code(new["retrieve"]) != _code(old["retrieve"])
    assert all(_code(new[k]) == _code(old[k]) for k in old if k != "retrieve")
    assert _constant(child) == (name, value + 7) and f"{name} = {value}\n" not in child
    assert _retrieve(child, tmp_path) == {"text": f"limit {value + 7}"}
    if name != "PATCH_LIMIT":  # the constant stays where it was, with its comment
        assert child.index(f"{name} = ") == parent.index(f"{name} = ")


def test_new_method_is_appended_and_a_new_helper_goes_before_the_class(tmp_path):
    reply = '''class Whatever(MemoryDesign):
    def _bonus(self) -> str:
        return _shout("bonus")

    async def retrieve(self, task):
        return {"text": self._bonus()}


def _shout(text):
    return text.upper()
'''
    child = apply_patch(TRAJ, reply)
    assert validate(child).ok, validate(child).text()
    cls = _design(child)
    assert cls.name.value == "TrajectoryRetrieval" and _code(cls).count("(MemoryDesign)") == 1
    assert list(class_members(cls))[-1] == "_bonus"
    assert child.index("def _shout(") < child.index("class TrajectoryRetrieval(")
    assert _retrieve(child, tmp_path) == {"text": "BONUS"}


def test_new_import_is_added_once_and_known_ones_are_not_repeated():
    reply = '''import heapq
import json
from harness.design import MAX_MEMORY_CHARS, MemoryDesign, Toolkit
from harness.types import Episode, Step, Task


def _top(xs: list[float], k: int) -> list[float]:
    return heapq.nlargest(k, xs)
'''
    child = apply_patch(TRAJ, reply)
    assert validate(child).ok, validate(child).text()
    assert child.count("import heapq\n") == 1 and child.count("import json\n") == 1
    assert "from harness.design import MAX_MEMORY_CHARS\n" in child  # only the name the design lacked
    assert child.count("from harness.types import") == 1
    assert child.index("import heapq") < child.index("TOP_K = ")
    again = apply_patch(child, reply.replace("nlargest", "nsmallest"))
    assert again.count("import heapq\n") == 1 and "nsmallest" in again and "nlargest" not in again


def test_a_complete_module_reply_is_merged_and_pruned(tmp_path):
    child = apply_patch(TRAJ, NOTES)
    assert validate(child).ok, validate(child).text()
    cls = _design(child)
    assert cls.name.value == "TrajectoryRetrieval"  # the parent's name, docstring and constructor stay
    assert _code(cls.body.body[0]) == _code(_design(TRAJ).body.body[0])
    assert not child.startswith('"""Trajectory retrieval')  # the module docstring follows the whole new design
    assert _code(class_members(cls)["__init__"]) == _code(class_members(_design(TRAJ))["__init__"])
    assert "notes.txt" in child and "def _render(" not in child  # helpers of the old methods are dropped
    assert _retrieve(child, tmp_path) == {}


def test_a_method_without_its_class_and_an_ellipsis_stub_are_understood():
    reply = '''async def update(self, episode):
    return None


async def retrieve(self, task):
    ...
'''
    child = apply_patch(TRAJ, reply)
    members = class_members(_design(child))
    assert "return None" in _code(members["update"])
    assert _code(members["retrieve"]) == _code(class_members(_design(TRAJ))["retrieve"])
    assert "\nasync def update(" not in child


@pytest.mark.parametrize("reply, words", [
    (TRUNCATED, "not valid"),
    ("I would store the trajectories better.", "not valid"),
    ("print('hello')\n", "nothing to merge"),
    ("TOP_K = 2\n", "changes nothing"),
])
def test_unmergeable_replies_raise_patch_error(reply, words):
    with pytest.raises(PatchError, match=words):
        apply_patch(TRAJ, reply)


def test_a_parent_without_a_single_design_class_raises_patch_error():
    with pytest.raises(PatchError, match="exactly one"):
        apply_patch("X = 1\n", "X = 2\n")


class ScriptedChat:
    """A chat client whose replies are scripted (the model is the edge we do not own)."""

    def __init__(self, *replies: str):
        self.replies, self.prompts = list(replies), []

    def chat(self, messages, json_mode=False, max_tokens=None, temperature=None):
        self.prompts.append(messages[-1]["content"])
        return self.replies.pop(0)


PLAN = json.dumps({"analysis": "retrieval is too narrow", "plan": "show three trajectories"})
GOOD = "```python\nTOP_K = 3\n```"


@pytest.mark.parametrize("broken, shown", [
    (TRUNCATED, "could not be merged"),
    ("```python\nTOP_K = eval('3')\n```", "forbidden"),
])
def test_patch_mode_fix_loop_repairs_a_broken_patch(broken, shown):
    chat = ScriptedChat(PLAN, broken, GOOD)
    parent = Genome.from_text(TRAJ)
    proposal = MetaAgent(chat, fix_rounds=2).propose(parent, score=0.2, baseline=0.1, benchmark="textworld",
                                                     logs="(no logs)")
    assert proposal.plan == "show three trajectories" and len(proposal.attempts) == 2
    first, second = proposal.attempts
    assert not first.ok and shown in first.problems() and first.reply == broken  # kept for the logs
    assert (first.patch_error is not None) == (first.genome is None)
    assert second.ok and proposal.final is second.genome and second.genome.parents == (parent.id,)
    assert "TOP_K = 3" in second.genome.source and "eval('3')" not in second.genome.source
    implement, fix = chat.prompts[1:]
    assert "Do not repeat unchanged code" in implement
    assert "class TrajectoryRetrieval(MemoryDesign)" in implement
    assert "failed verification" in fix and first.problems() in fix
    assert (first.genome.source if first.genome else TRAJ) in fix  # the fix is merged into what it shows


def test_rewrite_mode_is_kept_and_patch_is_the_configured_default():
    chat = ScriptedChat(PLAN, NOTES)
    proposal = MetaAgent(chat, edit_mode="rewrite").propose(Genome.from_text(TRAJ), score=None, baseline=None,
                                                            benchmark="textworld", logs="")
    assert proposal.final is not None and proposal.final.name == "Notes"
    assert "Reply with the whole" in chat.prompts[1]
    assert EvolveConfig().meta_edit == "patch"
    with pytest.raises(ValueError, match="edit_mode"):
        MetaAgent(chat, edit_mode="diff")


def test_no_fix_round_starts_after_the_deadline():
    chat = ScriptedChat(PLAN, TRUNCATED, GOOD)
    proposal = MetaAgent(chat, fix_rounds=3).propose(Genome.from_text(TRAJ), score=0.2, baseline=0.1,
                                                     benchmark="textworld", logs="(no logs)",
                                                     deadline=time.monotonic() - 1)
    assert len(proposal.attempts) == 1 and proposal.final is None  # the fix (GOOD) was never asked for


def test_a_reply_cut_off_at_the_output_limit_keeps_its_complete_definitions():
    echoed = TRAJ.replace("TOP_K = 2 ", "TOP_K = 4 ", 1)
    cut = echoed[: echoed.index("    async def update")] + "    async def upd"  # cut mid-method
    child = apply_patch(TRAJ, "```python\n" + cut)
    assert "TOP_K = 4 " in child and validate(child).ok
    assert child.replace("TOP_K = 4 ", "TOP_K = 2 ", 1) == normalise_source(TRAJ)  # nothing else changed
    with pytest.raises(PatchError, match="changes nothing"):  # an unchanged echo, cut off
        apply_patch(TRAJ, "```python\n" + TRAJ[: TRAJ.index("    async def update")] + "    async def upd")
