"""The ALFWorld benchmark: generated games (six task types, planner-checked), cached suites, splits by floor
plan, the text-environment contract, official-data discovery, and a protocol run end to end.

One small generated suite (2 train, 2 id, 2 ood tasks: 6 games, one of each task type) is shared by the module."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("alfworld") is None or importlib.util.find_spec("fast_downward") is None:
    pytest.skip("alfworld (with fast-downward-textworld) is not installed", allow_module_level=True)

from harness.envs import alfworld_gen as gen  # noqa: E402
from harness.envs import get_benchmark  # noqa: E402
from harness.envs.alfworld_env import ALFWorldBenchmark  # noqa: E402
from harness.envs.alfworld_scenes import TASK_TYPES, floor_plans  # noqa: E402
from harness.envs.base import TaskSpec  # noqa: E402
from harness.errors import BenchmarkError  # noqa: E402
from tests.conftest import REPO  # noqa: E402

pytestmark = pytest.mark.slow

SEED, N_TRAIN, N_TEST = 3, 2, 2
OPENING = "You are in the middle of a room. Looking quickly around you, you see "


@pytest.fixture(scope="module")
def bench():
    return ALFWorldBenchmark(source="generated")


@pytest.fixture(scope="module")
def built(bench, tmp_path_factory):
    cache = tmp_path_factory.mktemp("alfcache")
    before, argv = gen.GENERATION_COUNT, list(sys.argv)
    start = time.monotonic()
    suite = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    assert sys.argv == argv  # fast-downward's translator rebinds sys.argv; the session restores it
    return suite, cache, gen.GENERATION_COUNT - before, time.monotonic() - start


@pytest.fixture(scope="module")
def env(bench):
    env = bench.make_env()
    yield env
    env.close()


def _all(suite):
    return suite.train + suite.id + suite.ood


def test_registry_and_suite_contract(bench, built):
    suite, cache, generated, _ = built
    assert type(get_benchmark("alfworld")).__name__ == "ALFWorldBenchmark"
    assert bench.name == "alfworld" and bench.step_limit == 30
    assert (suite.benchmark, suite.seed) == ("alfworld", SEED)
    assert (len(suite.train), len(suite.id), len(suite.ood)) == (N_TRAIN, N_TEST, N_TEST)
    assert generated == len(_all(suite))
    assert len({t.task_id for t in _all(suite)}) == len(_all(suite))
    for split in ("train", "id", "ood"):
        for task in suite.split(split):
            assert task.split == split and task.benchmark == "alfworld" and task.world_id.startswith("FloorPlan")
            assert Path(task.params["game_file"]).parent == cache.resolve()
            assert task.params["source"] == "generated"
            text = json.dumps(task.to_dict())
            assert "plan" not in json.loads(text)["params"] and "walkthrough" not in text
            assert TaskSpec.from_dict(task.to_dict()) == task
    assert not list(cache.glob(".tmp-*"))  # atomic writes left nothing behind


def test_build_is_deterministic_and_cached(bench, built):
    suite, cache, _, _ = built
    count = gen.GENERATION_COUNT
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    again = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    assert gen.GENERATION_COUNT == count
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    assert [t.to_dict() for t in _all(again)] == [t.to_dict() for t in _all(suite)]
    plan = bench.plan_suite(SEED, N_TRAIN, N_TEST)
    assert plan == bench.plan_suite(SEED, N_TRAIN, N_TEST)
    other = bench.plan_suite(SEED + 1, N_TRAIN, N_TEST)
    keys = {p.key() for split in plan.values() for _, _, p in split}
    assert keys.isdisjoint({p.key() for split in other.values() for _, _, p in split})


def test_small_suites_hold_all_six_task_types(bench, built):
    suite, _, _, _ = built
    assert sorted(gen.read_meta(t.params["game_file"])["task_type"] for t in _all(suite)) == sorted(TASK_TYPES)
    for seed in range(4):  # layout only, no generation
        plan = bench.plan_suite(seed, 2, 2)
        assert {p.task_type for split in plan.values() for _, _, p in split} == set(TASK_TYPES)


def test_splits_by_floor_plan(bench, built):
    suite, _, _, _ = built
    train, test = set(floor_plans("train")), set(floor_plans("test"))
    assert len(train) == 96 and len(test) == 24 and not train & test
    train_worlds = {t.world_id for t in suite.train}
    assert train_worlds <= train and {t.world_id for t in suite.id} <= train_worlds
    assert {t.world_id for t in suite.ood} <= test  # ood: floor plans never seen in training
    big = bench.plan_suite(11, 12, 8)
    assert not {w for _, w, _ in big["ood"]} & {w for _, w, _ in big["train"]}
    assert {w for _, w, _ in big["id"]} <= {w for _, w, _ in big["train"]}
    # in-distribution: a training floor plan with another goal or object placement
    for task in suite.id:
        twin = next(t for t in suite.train if t.world_id == task.world_id)
        mine, theirs = (json.loads(Path(t.params["game_file"]).read_text()) for t in (task, twin))
        assert mine["pddl_problem"] != theirs["pddl_problem"]
        assert _receptacles(mine) == _receptacles(theirs)  # same room, same furniture


def _receptacles(game: dict) -> list[str]:
    return [line for line in game["pddl_problem"].splitlines() if line.endswith(" - receptacle") and "?" not in line]


def test_generated_problems_use_alfred_naming_without_metric(built):
    suite, _, _, _ = built
    game = json.loads(Path(suite.train[0].params["game_file"]).read_text())
    assert set(game) >= {"pddl_domain", "grammar", "pddl_problem", "solvable"} and game["solvable"] is True
    problem = game["pddl_problem"]
    assert ":metric" not in problem and "(:domain alfred)" in problem
    assert "_bar_" in problem and "|" not in problem and "UNKNOWN GOAL" not in game["grammar"]


def test_every_task_type_is_solvable_by_following_the_planners_plan(env, built, bench):
    suite, _, _, _ = built
    for task in _all(suite):
        meta = gen.read_meta(task.params["game_file"])
        plan = meta["plan"]
        assert meta["solvable"] and 0 < len(plan) <= bench.step_limit
        first = env.reset(task)
        actions = first.admissible_actions
        for i, command in enumerate(plan):
            assert command in actions, (task.task_id, command)
            result = env.step(command)
            actions = result.admissible_actions
            last = i == len(plan) - 1
            assert result.won is last and result.done is last, (task.task_id, i, result.observation)
            assert result.reward == (1.0 if last else 0.0)
            assert result.progress == (1.0 if last else None)
        assert result.admissible_actions == []
        over = env.step("look")
        assert over.done and over.won and over.observation == "The game is over."


def test_observation_goal_and_admissible_actions(env, built):
    suite, _, _, _ = built
    task = suite.train[0]
    first = env.reset(task)
    meta = gen.read_meta(task.params["game_file"])
    assert first.text.startswith(OPENING) and "Welcome to TextWorld" not in first.text
    assert first.goal == meta["goal"] and first.goal.startswith("Your task is to: ") and first.goal.endswith(".")
    assert first.text.endswith(first.goal)
    assert {"look", "inventory", "help"} <= set(first.admissible_actions)
    assert all(a.startswith("go to ") for a in first.admissible_actions if a not in ("look", "inventory", "help"))
    assert first.admissible_actions == sorted(first.admissible_actions)
    # the agent-facing environment never asks the planner
    assert env._env.unwrapped.request_infos.policy_commands is False
    assert "policy_commands" not in env._env.unwrapped.state or not env._env.unwrapped.state["policy_commands"]
    nothing = env.step("fly to the moon")
    assert nothing.observation == "Nothing happens." and not nothing.done and nothing.progress is None
    assert nothing.admissible_actions == first.admissible_actions
    target = next(a for a in first.admissible_actions if a.startswith("go to "))
    arrived = env.step(f"  {target}\n")
    assert arrived.observation.startswith(f"You arrive at {target[6:]}.")


def test_env_errors_switching_games_and_close(bench, built, tmp_path):
    suite, _, _, _ = built
    env = bench.make_env()
    with pytest.raises(BenchmarkError, match="before reset"):
        env.step("look")
    with pytest.raises(BenchmarkError, match="not an alfworld task"):
        env.reset(TaskSpec("x", "textworld", "train", params={"game_file": "x.z8"}))
    a, b = suite.train[0], suite.ood[0]
    goal_a = env.reset(a).goal
    assert env.reset(b).goal != goal_a
    assert env.reset(a).goal == goal_a
    env.close()
    env.close()
    with pytest.raises(BenchmarkError, match="before reset"):
        env.step("look")
    broken = tmp_path / "broken"
    broken.mkdir()
    src = Path(a.params["game_file"])
    (broken / src.name).write_text(src.read_text()[:500])
    shutil.copy(src.with_suffix("").with_suffix(gen.META_EXT), broken)
    bad = TaskSpec(a.task_id, "alfworld", "train", a.world_id, dict(a.params, game_file=str(broken / src.name)))
    with pytest.raises(BenchmarkError, match="build_suite"):
        env.reset(bad)
    env.close()


def _fake_official(root: Path, suite) -> None:
    """An official-looking json_2.1.1 tree made of generated games (plus entries ALFWorld skips)."""
    splits = {"train": suite.train, "valid_seen": suite.id, "valid_unseen": suite.ood}
    for folder, tasks in splits.items():
        for i, task in enumerate(tasks):
            meta = gen.read_meta(task.params["game_file"])
            number = task.world_id.removeprefix("FloorPlan")
            trial = root / "json_2.1.1" / folder / f"{meta['task_type']}-X-None-Y-{number}" / f"trial_T{i}"
            trial.mkdir(parents=True)
            shutil.copy(task.params["game_file"], trial / "game.tw-pddl")
            (trial / "traj_data.json").write_text(json.dumps({"scene": {"floor_plan": task.world_id}}))
        skipped = root / "json_2.1.1" / folder / "pick_and_place_with_movable_recep-A-B-C-1" / "trial_T0"
        skipped.mkdir(parents=True)
        shutil.copy(tasks[0].params["game_file"], skipped / "game.tw-pddl")


def test_official_data_is_used_when_alfworld_data_holds_it(built, tmp_path, monkeypatch):
    suite, _, _, _ = built
    _fake_official(tmp_path, suite)
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    bench = ALFWorldBenchmark()  # source="auto"
    count = gen.GENERATION_COUNT
    official = bench.build_suite(5, 2, 2)
    assert gen.GENERATION_COUNT == count
    assert [t.to_dict() for t in _all(official)] == [t.to_dict() for t in _all(bench.build_suite(5, 2, 2))]
    for split, folder in (("train", "train"), ("id", "valid_seen"), ("ood", "valid_unseen")):
        tasks = official.split(split)
        assert len(tasks) == 2 and all(t.params["source"] == "official" for t in tasks)
        assert all(f"/{folder}/" in t.params["game_file"] and "movable" not in t.task_id for t in tasks)
        assert {t.world_id for t in tasks} == {t.world_id for t in suite.split(split)}
    env = bench.make_env()
    try:
        first = env.reset(official.ood[0])
        assert first.text.startswith(OPENING) and first.goal.startswith("Your task is to: ")
    finally:
        env.close()
    with pytest.raises(BenchmarkError, match="usable games"):
        bench.build_suite(5, 3, 2)
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path / "empty"))
    with pytest.raises(BenchmarkError, match="alfworld-download"):
        ALFWorldBenchmark(source="official").build_suite(0, 1, 1)


def test_missing_package_is_reported_with_the_install_command(monkeypatch):
    from harness.envs import alfworld_pddl

    monkeypatch.setitem(sys.modules, "alfworld", None)
    with pytest.raises(BenchmarkError, match="pip install alfworld"):
        alfworld_pddl.require_alfworld()


def test_protocol_run_end_to_end_with_heuristic_agent_and_no_memory(built, tmp_path, monkeypatch):
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    suite, cache, _, _ = built
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))  # no official data here: generated games
    source = (REPO / "seeds" / "no_memory.py").read_text()
    job = JobSpec(job_id="alf", design=DesignSpec(name="no_memory", source=source), benchmark="alfworld",
                  models=ModelSpec(embedder="hashing"), cache_dir=str(cache),
                  protocol=ProtocolSpec(n_train=N_TRAIN, n_test=N_TEST, repeats=2, mode="batched", concurrency=2,
                                        seed=SEED, step_limit=4))
    count = gen.GENERATION_COUNT
    with open_models(ModelSettings(embedder="hashing")) as models:
        run = ProtocolRun(job, models)
        assert [t.task_id for t in run.suite.id] == [t.task_id for t in suite.id]
        result = run.run_sync()
    assert gen.GENERATION_COUNT == count
    assert result.benchmark == "alfworld" and result.n_train == N_TRAIN and result.n_test == N_TEST
    assert result.design_errors == 0 and 0.0 <= result.score <= 1.0
    deploy = [e for e in result.episodes if e.phase == "deploy"]
    assert len(deploy) == 2 * N_TEST and all(1 <= e.steps <= 4 for e in result.episodes)
    assert all(e.retrieved == {} for e in result.episodes)


def test_the_heuristic_agent_completes_generated_errands(built, tmp_path, monkeypatch):
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    suite, cache, _, _ = built
    monkeypatch.setenv("ALFWORLD_DATA", str(tmp_path))
    source = (REPO / "seeds" / "no_memory.py").read_text()
    job = JobSpec(job_id="alf-win", design=DesignSpec(name="no_memory", source=source), benchmark="alfworld",
                  models=ModelSpec(embedder="hashing"), cache_dir=str(cache), isolate_design=False,
                  protocol=ProtocolSpec(n_train=N_TRAIN, n_test=N_TEST, repeats=1, seed=SEED))
    with open_models(ModelSettings(embedder="hashing")) as models:
        result = ProtocolRun(job, models).run_sync()
    episodes = [e for e in result.episodes]
    assert sum(e.won for e in episodes) >= 3, [(e.task_id, e.won, e.actions[-3:]) for e in episodes]
    # an errand ends with the object placed (or a lamp used), not by running out of steps
    assert all(e.actions[-1].startswith(("move ", "put ", "use ")) for e in episodes if e.won)
