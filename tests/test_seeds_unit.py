"""The hand-written seed designs, loaded as genomes and driven through the project's real model clients.

Every seed is read as source text by ``harness.loader`` and given a toolkit whose LLM and embedder are the real
``ChatClient``/``AsyncLLM`` and ``RemoteEmbedder`` talking to the local OpenAI-compatible test server, whose
chat replies each test scripts (useful JSON, garbage, or HTTP errors).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from harness.design import MemoryDesign, Toolkit, memory_text
from harness.loader import load_design_file
from harness.models.chat import AsyncLLM, ChatClient
from harness.models.embed import HashingEmbedder, RemoteEmbedder
from harness.types import Episode, Step, Task

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"
SEEDS = ["no_memory", "trajectory_retrieval", "reasoning_bank", "dynamic_cheatsheet", "g_memory"]
MEMORY_SEEDS = SEEDS[1:]
LLM_SEEDS = ["reasoning_bank", "dynamic_cheatsheet", "g_memory"]
FAST = {"timeout": 10.0, "backoff_base": 0.001}

# -------------------------------------------------------------------------------- a small TextWorld-like world

CHEST_GOAL = "Find the brass key in the kitchen and put it into the wooden chest."
CHEST_OBS = "-= Kitchen =- You are in a kitchen. A brass key lies on the table. There is a closed wooden chest here."
CHEST_WIN = ["look", "take brass key from table", "open wooden chest", "insert brass key into wooden chest"]
APPLE_GOAL = "Eat the red apple that grows in the garden."
APPLE_OBS = "-= Garden =- You are in a garden. A stone path leads north. An apple tree stands here."
APPLE_LOSS = ["go north", "take stone", "drop stone", "take stone"]
GATE_GOAL = "Unlock the iron gate with the silver key and open it."
GATE_OBS = "-= Courtyard =- You are in a courtyard. An iron gate blocks the way east."
GATE_WIN = ["go west", "take silver key", "go east", "unlock iron gate with silver key", "open iron gate"]

LLM_ITEM_TITLE = "Open the container before inserting"
LLM_INSIGHT = "Always open a closed container such as the wooden chest before inserting an item into it."
LLM_SHEET_LINE = "- Open closed containers before putting things into them."


def task(goal: str, obs: str, task_id: str) -> Task:
    return Task(task_id=task_id, benchmark="textworld", goal=goal, observation=obs)


def episode(t: Task, actions: list[str], won: bool, rewarded: tuple[int, ...] = ()) -> Episode:
    last = len(actions) - 1
    steps = []
    for i, action in enumerate(actions):
        reward = 1.0 if (i in rewarded or (won and i == last)) else 0.0
        steps.append(Step(action=action, observation=f"You {action}. Something happens.", reward=reward,
                          done=i == last))
    total = sum(s.reward for s in steps)
    return Episode(task=t, steps=steps, won=won, reward=total, progress=1.0 if won else 0.25)


SCENARIO = [
    (task(CHEST_GOAL, CHEST_OBS, "tw/w01/q1"), CHEST_WIN, True),
    (task(APPLE_GOAL, APPLE_OBS, "tw/w02/q1"), APPLE_LOSS, False),
    (task(GATE_GOAL, GATE_OBS, "tw/w03/q1"), GATE_WIN, True),
]
#: a new task similar to the chest one (same objective, a differently worded first observation)
QUERY = task(CHEST_GOAL, "-= Kitchen =- A brass key is on the table; a wooden chest stands in the corner.", "tw/w09/q2")

# -------------------------------------------------------------------------------- scripted LLM replies


def useful_chat(request: dict) -> str:
    """A competent model: JSON items/insights in JSON mode, a tagged cheatsheet that keeps the old one."""
    prompt = request["messages"][-1]["content"]
    if request.get("response_format", {}).get("type") == "json_object" or "JSON" in prompt:
        return json.dumps({
            "items": [{"title": LLM_ITEM_TITLE, "description": "When an item must go into a closed container.",
                       "content": "Open the wooden chest first, then insert the brass key into it."}],
            "insights": [LLM_INSIGHT],
        })
    old = re.search(r"CURRENT CHEATSHEET:\n(.*?)\n\nGAME JUST PLAYED", prompt, re.DOTALL)
    body = old.group(1).strip() if old else ""
    body = "" if body.startswith("(empty") else body
    if LLM_SHEET_LINE not in body:
        body = f"{body}\n{LLM_SHEET_LINE}".strip()
    return f"Here is the new sheet.\n<cheatsheet>\n{body}\n</cheatsheet>"


GARBAGE = [
    "",
    "{{{ this is not json",
    "```json\n{\"items\": [{\"title\": 3, \"content\": null}]}\n```",
    "[1, 2, 3]",
    '{"insights": "not a list", "items": {"nested": true}}',
    "<cheatsheet></cheatsheet>",
    "<cheatsheet>ok</cheatsheet>",
    '{"items": [{"title": "<short name of the strategy>", "description": "<one sentence: when it applies>", '
    '"content": "<1-3 sentences: what to do, with the key commands>"}]}',
    "null",
    json.dumps({"items": [{"title": "Cooking", "description": "General advice for any game.",
                           "content": "Improve your cooking skills with a griddle and an oven."}],
                "insights": ["The agent failed to find the brass key and put it into the wooden chest.",
                             "Practise active listening and griddle techniques."]}),
    "\u0000\ufffd" * 50,
]


def garbage_chat():
    replies = iter(GARBAGE * 100)
    return lambda request: next(replies)


# -------------------------------------------------------------------------------- helpers


@pytest.fixture
def clients(openai_server):
    """Factory of toolkits on the real clients; every client made is closed at the end of the test."""
    made: list = []

    def make(scratch: Path, *, embedder: str = "remote", max_attempts: int = 2) -> Toolkit:
        chat = ChatClient(openai_server.base_url, openai_server.model, max_attempts=max_attempts, **FAST)
        made.append(chat)
        if embedder == "remote":
            emb = RemoteEmbedder(openai_server.base_url, "test-embed", max_attempts=max_attempts, **FAST)
            made.append(emb)
        else:
            emb = HashingEmbedder()
        return Toolkit(llm=AsyncLLM(chat), embedder=emb, scratch_dir=scratch)

    yield make
    for client in made:
        client.close()


def load(seed: str) -> type[MemoryDesign]:
    return load_design_file(SEEDS_DIR / f"{seed}.py")


async def play(design: MemoryDesign, scenario=SCENARIO) -> None:
    """As the harness does: retrieve before each episode, update after it with what was retrieved."""
    for t, actions, won in scenario:
        retrieved = await design.retrieve(t)
        assert isinstance(retrieved, dict)
        ep = episode(t, actions, won)
        ep.retrieved = retrieved
        await design.update(ep)


def check_result(result: dict) -> str:
    assert isinstance(result, dict)
    json.dumps(result)  # JSON-serialisable, as the evaluation logs need
    text = result.get("text", "")
    assert isinstance(text, str)
    assert len(text) <= 3000
    return memory_text(result)


def assert_recalls_chest_solution(text: str) -> None:
    assert "take brass key from table" in text
    assert "insert brass key into wooden chest" in text


# -------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_loads_as_a_genome(seed):
    cls = load(seed)
    assert issubclass(cls, MemoryDesign)
    source = (SEEDS_DIR / f"{seed}.py").read_text()
    doc = source.split('"""')[1]
    assert len(doc) > 80  # a module docstring naming the mechanism
    imports = re.findall(r"^(?:from|import) ([\w.]+)", source, re.MULTILINE)
    allowed = {"__future__", "json", "math", "re", "sqlite3", "collections", "dataclasses", "typing",
               "itertools", "heapq", "hashlib", "random", "statistics", "textwrap", "datetime", "pathlib",
               "numpy", "harness.design", "harness.types"}
    assert set(imports) <= allowed, set(imports) - allowed


@pytest.mark.parametrize("seed", SEEDS)
def test_retrieve_on_empty_memory_returns_a_dict(seed, clients, tmp_path):
    design = load(seed)(clients(tmp_path / "scratch"))
    result = asyncio.run(design.retrieve(QUERY))
    check_result(result)
    assert memory_text(result) == ""


def test_no_memory_stays_empty(clients, tmp_path):
    design = load("no_memory")(clients(tmp_path / "scratch"))
    asyncio.run(play(design))
    assert asyncio.run(design.retrieve(QUERY)) == {}


@pytest.mark.parametrize("seed", MEMORY_SEEDS)
def test_recalls_successful_actions_for_a_similar_task(seed, clients, tmp_path, openai_server):
    openai_server.script_chat(useful_chat)
    design = load(seed)(clients(tmp_path / "scratch"))
    asyncio.run(play(design))
    text = check_result(asyncio.run(design.retrieve(QUERY)))
    assert_recalls_chest_solution(text)
    if seed in LLM_SEEDS:
        assert openai_server.chat_requests(), "the LLM was never asked"
        expected = {"reasoning_bank": LLM_ITEM_TITLE, "g_memory": LLM_INSIGHT,
                    "dynamic_cheatsheet": LLM_SHEET_LINE}[seed]
        assert expected in text  # the LLM's distillation is used, not only the fallback


def test_trajectory_retrieval_prefers_successful_trajectories(clients, tmp_path):
    design = load("trajectory_retrieval")(clients(tmp_path / "scratch"))
    chest = SCENARIO[0][0]
    scenario = [(chest, ["look", "take brass key from table", "eat brass key"], False), *SCENARIO]
    asyncio.run(play(design, scenario))
    text = check_result(asyncio.run(design.retrieve(QUERY)))
    assert text.splitlines()[1].startswith("[1] SOLVED")
    assert "eat brass key" not in text  # a failed attempt's dead end is not offered as an action
    assert "take stone" not in text
    assert_recalls_chest_solution(text)


@pytest.mark.parametrize("seed", MEMORY_SEEDS)
def test_state_survives_reinstantiation_and_copy(seed, clients, tmp_path, openai_server):
    openai_server.script_chat(useful_chat)
    scratch = tmp_path / "scratch"
    cls = load(seed)
    first = cls(clients(scratch))
    asyncio.run(play(first))
    before = asyncio.run(first.retrieve(QUERY))
    del first

    again = load(seed)(clients(scratch))  # a fresh load and a fresh toolkit on the same scratch dir
    after = asyncio.run(again.retrieve(QUERY))
    assert memory_text(after) == memory_text(before)
    assert_recalls_chest_solution(memory_text(after))

    copy = tmp_path / "snapshot"  # the engine snapshots scratch dirs for sequential deployment repeats
    shutil.copytree(scratch, copy)
    copied = cls(clients(copy))
    assert memory_text(asyncio.run(copied.retrieve(QUERY))) == memory_text(before)
    # the copy learns on its own; the original is untouched
    asyncio.run(copied.update(episode(SCENARIO[2][0], GATE_WIN, True)))
    assert memory_text(asyncio.run(cls(clients(scratch)).retrieve(QUERY))) == memory_text(before)


@pytest.mark.parametrize("seed", SEEDS)
def test_garbage_llm_output_does_not_crash(seed, clients, tmp_path, openai_server):
    openai_server.script_chat(garbage_chat())
    design = load(seed)(clients(tmp_path / "scratch"))
    for _ in range(len(GARBAGE) // len(SCENARIO) + 1):  # enough updates to meet every garbage reply
        asyncio.run(play(design))
    result = asyncio.run(design.retrieve(QUERY))
    text = check_result(result)
    if seed != "no_memory":
        assert_recalls_chest_solution(text)  # the non-LLM path still learns
        assert "<short name" not in text and "<1-3 sentences" not in text  # echoed schema is rejected
        assert "griddle" not in text  # advice not grounded in the episode is rejected
        assert "The agent failed to find" not in text  # so is a restatement of the goal


@pytest.mark.parametrize("seed", MEMORY_SEEDS)
def test_failing_endpoints_do_not_crash(seed, clients, tmp_path, openai_server):
    """Chat and embeddings both answer HTTP 500: designs fall back to their non-LLM, lexical paths."""
    design = load(seed)(clients(tmp_path / "scratch", max_attempts=1))
    openai_server.fail_next(10_000, status=500)
    asyncio.run(play(design))
    text = check_result(asyncio.run(design.retrieve(QUERY)))
    assert_recalls_chest_solution(text)


@pytest.mark.parametrize("seed", MEMORY_SEEDS)
def test_embedding_dimension_is_not_hard_coded(seed, clients, tmp_path, openai_server):
    """Memory written with one embedder (64-d remote) is read with another (256-d hashing)."""
    openai_server.script_chat(garbage_chat())
    scratch = tmp_path / "scratch"
    asyncio.run(play(load(seed)(clients(scratch))))
    design = load(seed)(clients(scratch, embedder="hashing"))
    assert_recalls_chest_solution(check_result(asyncio.run(design.retrieve(QUERY))))
    asyncio.run(play(design))  # and keeps learning with the new dimension
    assert_recalls_chest_solution(check_result(asyncio.run(design.retrieve(QUERY))))


@pytest.mark.parametrize("seed", MEMORY_SEEDS)
def test_retrieved_text_stays_bounded(seed, clients, tmp_path, openai_server):
    openai_server.script_chat(useful_chat)
    design = load(seed)(clients(tmp_path / "scratch", embedder="hashing"))
    long_run = []
    for n in range(12):
        t = task(f"{CHEST_GOAL} Variant {n}.", CHEST_OBS + " " + "dusty shelf " * 60, f"tw/w{n:02d}/q1")
        actions = [f"go {d} to room {n}-{i}" for i, d in enumerate(["north", "east", "south", "west"] * 12)]
        long_run.append((t, actions + CHEST_WIN[1:], True))
    asyncio.run(play(design, long_run))
    text = check_result(asyncio.run(design.retrieve(QUERY)))
    assert 0 < len(text) <= 3000
    assert "insert brass key into wooden chest" in text  # the finishing actions survive truncation
