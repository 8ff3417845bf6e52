"""The MiniHack benchmark: suite design, reproducible levels, the text observation, locally generated Boxoban
levels (standard format, solvable through the env), a planner that wins on the observed map, and a protocol
run end to end. One small suite and one env are shared by the module."""

from __future__ import annotations

import importlib.util
import re
from collections import deque
from pathlib import Path

import pytest

if importlib.util.find_spec("minihack") is None:  # importorskip would import it without the pkg_resources stand-in
    pytest.skip("minihack is not installed", allow_module_level=True)

from harness.envs import get_benchmark  # noqa: E402
from harness.envs import minihack_boxoban as boxoban  # noqa: E402
from harness.envs.base import TaskSpec  # noqa: E402
from harness.envs.minihack_env import FAMILIES, ID_FAMILIES, OOD_FAMILIES  # noqa: E402
from harness.envs.minihack_text import CARDINAL, DIRECTIONS, relative  # noqa: E402
from harness.errors import BenchmarkError  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SEED, N_TRAIN, N_TEST = 3, 8, 6


@pytest.fixture(scope="module")
def bench():
    return get_benchmark("minihack")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("minihack-cache")


@pytest.fixture(scope="module")
def suite(bench, cache):
    return bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))


@pytest.fixture(scope="module")
def env(bench):
    env = bench.make_env()
    yield env
    env.close()


def tasks_of(suite, family, splits=("train", "id", "ood")):
    return [t for s in splits for t in suite.split(s) if t.params["family"] == family]


def test_suite_is_deterministic_with_train_id_sharing_worlds_and_held_out_ood(bench, suite, cache, tmp_path):
    assert bench.name == "minihack" and bench.step_limit == 100
    assert (len(suite.train), len(suite.id), len(suite.ood)) == (N_TRAIN, N_TEST, N_TEST)
    again = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    assert [t.to_dict() for t in again.train + again.id + again.ood] == \
        [t.to_dict() for t in suite.train + suite.id + suite.ood]
    other = bench.build_suite(SEED + 1, N_TRAIN, N_TEST, cache_dir=str(tmp_path))
    assert [t.world_id for t in other.train] != [t.world_id for t in suite.train]
    assert {t.params["family"] for t in suite.train + suite.id} == set(ID_FAMILIES)
    assert {t.params["family"] for t in suite.ood} == set(OOD_FAMILIES)
    train_worlds = {t.world_id for t in suite.train}
    shared = [t for t in suite.id if t.world_id in train_worlds]
    assert shared and len(shared) < len(suite.id)  # some id tasks replay train worlds, others are fresh
    for t in shared:  # same level, another game seed
        twin = next(x for x in suite.train if x.world_id == t.world_id)
        assert t.params["level_seed"] == twin.params["level_seed"] and t.params["game_seed"] != twin.params["game_seed"]
    assert not {t.world_id for t in suite.ood} & train_worlds
    for t in suite.train + suite.id + suite.ood:
        assert t.world_id == f"{FAMILIES[t.params['family']].env_id}/{t.params['level_seed']}"
        assert TaskSpec.from_dict(t.to_dict()) == t


def test_reset_reproduces_the_level_and_another_level_seed_differs(bench, env, suite):
    maze = tasks_of(suite, "MazeWalk-9x9", ("train",))
    first = env.reset(maze[0])
    env.reset(suite.ood[0])  # another env id in between: gym envs are cached per id
    assert env.reset(maze[0]).text == first.text
    fresh = bench.make_env()
    try:
        assert fresh.reset(maze[0]).text == first.text
    finally:
        fresh.close()
    assert env.reset(maze[1]).text != first.text
    assert first.goal.startswith("Find the way") and first.admissible_actions == list(DIRECTIONS)


def test_observation_text_has_message_relative_descriptions_map_inventory_and_status(env, suite):
    quest = tasks_of(suite, "Quest-Easy")[0]
    first = env.reset(quest)
    text = first.text
    for part in ("Message: ", "Next to you: ", "You see: ", "Map (you are @):", "Inventory: ", "Status: "):
        assert part in text
    assert re.search(r"molten lava \(\d+ squares\), the nearest (\d+ steps? (north|south) and )?\d+ steps? east", text)
    corridor = env.reset(tasks_of(suite, "Corridor-R3")[0]).text
    assert re.search(r"You see: .*an? (doorway|closed door|open door) \d+ steps? (north|south|east|west)", corridor)
    assert relative(-2, -4) == "2 steps north and 4 steps west" and relative(0, 1) == "1 step east"
    first = env.reset(quest)
    assert "Full moon" not in text and "New moon" not in text  # date-dependent messages are left out
    game_map = text.split("Map (you are @):\n", 1)[1].split("\nInventory:", 1)[0]
    assert "@" in game_map and "}" in game_map and not game_map.startswith("\n")
    assert "wand" in text and "horn" in text and "zap wand" in first.admissible_actions
    asked = env.step("zap wand")  # the adapter names the wand; the game then asks for a direction
    assert "Message: In what direction?" in asked.observation
    assert asked.admissible_actions == list(DIRECTIONS)
    frozen = env.step("east")
    assert "Message: The lava cools and solidifies." in frozen.observation
    assert not frozen.done and frozen.reward == 0.0 and frozen.progress is None


def test_unknown_action_takes_no_step_and_death_ends_the_game(env, suite):
    quest = tasks_of(suite, "Quest-Easy")[0]
    first = env.reset(quest)
    odd = env.step("dance")
    assert "Unknown action 'dance'" in odd.observation and not odd.done and not odd.won
    assert odd.observation.split("Map (you are @):")[1] == first.text.split("Map (you are @):")[1]
    result = None
    for _ in range(12):  # walk east into the lava river
        result = env.step("east")
        if result.done:
            break
    assert result is not None and result.done and not result.won and "You died. Burned by molten lava." in result.observation
    assert result.admissible_actions == [] and "game is over" in env.step("east").observation


def test_boxoban_levels_are_standard_format_and_their_solutions_win_through_the_env(env, suite, cache):
    boxes = tasks_of(suite, "Boxoban", ("train", "id"))
    assert boxes
    level_file = Path(boxes[0].params["level_file"])
    assert level_file.is_relative_to(cache) and level_file.parts[-3:] == ("local", "train", "levels.txt")
    text = level_file.read_text()
    assert re.fullmatch(r"(; \d+\n([#@$. ]{10}\n){10}\n)+", text)
    for task in boxes:
        rows = boxoban.read_level(level_file, task.params["level_number"])
        assert sum(r.count("@") for r in rows) == 1 and sum(r.count("$") for r in rows) == task.params["boxes"]
        solution = boxoban.solve(rows)
        assert solution is not None and len(solution) == task.params["reference_steps"]
        env.reset(task)
        results = [env.step(move) for move in solution]
        assert results[-1].won and results[-1].done and results[-1].progress == 1.0 and results[-1].reward == 1.0
        assert not any(r.done for r in results[:-1])


def test_boxoban_generator_is_deterministic_and_rebuilt_without_the_level_file(env, suite):
    for seed in range(30):
        level = boxoban.generate_level(seed, 1 + seed % 2)
        assert level == boxoban.generate_level(seed, 1 + seed % 2)
        assert not any(set(r) - set("#@$. ") for r in level.rows)
        assert boxoban.solve(level.rows) is not None and len(level.solution) <= boxoban.MAX_SOLUTION
    task = tasks_of(suite, "Boxoban")[0]
    from_file = env.reset(task).text
    moved = TaskSpec.from_dict({**task.to_dict(), "params": {**task.params, "level_file": "/nonexistent/x.txt"}})
    assert env.reset(moved).text == from_file
    with pytest.raises(BenchmarkError, match="Boxoban level"):
        env.reset(TaskSpec.from_dict({**task.to_dict(), "params": {**task.params, "level_number": 999}}))


def _plan(env, blocked: set) -> str | None:
    """First move of a shortest cardinal path on the observed map to '>' or else to the nearest unseen cell."""
    chars, blstats = env.obs["chars"], env.obs["blstats"]
    start = (int(blstats[1]), int(blstats[0]))
    steps = {name: (d_r, d_c) for name, d_r, d_c in boxoban.MOVES}
    first: dict = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        ch = chr(chars[cell])
        if ch == ">" or (ch == " " and cell not in blocked):
            return first[cell]
        if cell != start and ch not in ".#<":
            continue
        for name, (d_r, d_c) in steps.items():
            nxt = (cell[0] + d_r, cell[1] + d_c)
            if 0 <= nxt[0] < chars.shape[0] and 0 <= nxt[1] < chars.shape[1] and nxt not in first:
                first[nxt] = first[cell] or name
                queue.append(nxt)
    return None


def test_a_planner_on_the_observed_map_wins_a_maze(env, suite):
    wins = 0
    for task in tasks_of(suite, "MazeWalk-9x9")[:3]:
        env.reset(task)
        blocked: set = set()
        for _ in range(100):
            move = _plan(env, blocked)
            assert move in CARDINAL
            before = (int(env.obs["blstats"][1]), int(env.obs["blstats"][0]))
            result = env.step(move)
            if result.done:
                wins += result.won
                break
            d_r, d_c = next((r, c) for name, r, c in boxoban.MOVES if name == move)
            if (int(env.obs["blstats"][1]), int(env.obs["blstats"][0])) == before:
                blocked.add((before[0] + d_r, before[1] + d_c))
    assert wins >= 1


def test_missing_minihack_is_an_actionable_error(bench, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "minihack" else real(name, *a))
    with pytest.raises(BenchmarkError, match="pip install minihack"):
        bench.build_suite(0, 1, 1)


def test_protocol_runs_end_to_end_with_the_heuristic_agent_and_no_memory(tmp_path):
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    spec = JobSpec(job_id="mh", design=DesignSpec(name="no_memory", source=(REPO / "seeds/no_memory.py").read_text()),
                   benchmark="minihack", models=ModelSpec(embedder="hashing"), cache_dir=str(tmp_path),
                   protocol=ProtocolSpec(n_train=2, n_test=2, repeats=1, mode="batched", seed=0))
    with open_models(ModelSettings(embedder="hashing")) as models:
        result = ProtocolRun(spec, models).run_sync()
    assert result.benchmark == "minihack" and result.design_errors == 0
    assert [e.phase for e in result.episodes].count("collect") == 2
    assert [e.phase for e in result.episodes].count("deploy") == 2
    assert all(0 < e.steps <= 100 and e.error is None for e in result.episodes)
    assert 0.0 <= result.score <= 1.0
