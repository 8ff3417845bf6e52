"""The TextWorld benchmark: generated games, cached suites, shared worlds and the text-environment contract.

One small suite (2 train, 2 id, 2 ood tasks: 6 generated games) is shared by the whole module."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("textworld")

from harness.envs import get_benchmark  # noqa: E402
from harness.envs import textworld_games as games  # noqa: E402
from harness.envs.base import TaskSpec  # noqa: E402
from harness.errors import BenchmarkError  # noqa: E402

pytestmark = pytest.mark.slow

SEED, N_TRAIN, N_TEST = 7, 2, 2


@pytest.fixture(scope="module")
def bench():
    return get_benchmark("textworld")


@pytest.fixture(scope="module")
def built(bench, tmp_path_factory):
    cache = tmp_path_factory.mktemp("twcache")
    before = games.GENERATION_COUNT
    suite = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    return suite, cache, games.GENERATION_COUNT - before


@pytest.fixture(scope="module")
def env(bench):
    env = bench.make_env()
    yield env
    env.close()


def _all(suite):
    return suite.train + suite.id + suite.ood


def _game(task: TaskSpec):
    from textworld.generator.game import Game

    return Game.load(str(Path(task.params["game_file"]).with_suffix(".json")))


def test_suite_shape_and_contract(bench, built):
    suite, cache, generated = built
    assert bench.name == "textworld" and bench.step_limit == 9
    assert (suite.benchmark, suite.seed) == ("textworld", SEED)
    assert (len(suite.train), len(suite.id), len(suite.ood)) == (N_TRAIN, N_TEST, N_TEST)
    assert generated == len(_all(suite))
    ids = [t.task_id for t in _all(suite)]
    assert len(set(ids)) == len(ids)
    for split in ("train", "id", "ood"):
        for task in suite.split(split):
            assert task.split == split and task.benchmark == "textworld" and task.world_id
            assert Path(task.params["game_file"]).parent == cache.resolve()
            json.dumps(task.to_dict())  # JSON-serialisable
            assert "walkthrough" not in json.dumps(task.params)
            assert TaskSpec.from_dict(task.to_dict()) == task
            assert task.params["step_limit"] == (40 if split == "ood" else 9)  # two fetches in a larger world


def test_build_is_deterministic_per_seed(bench, built):
    suite, cache, _ = built
    again = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    assert [t.to_dict() for t in _all(again)] == [t.to_dict() for t in _all(suite)]
    # Layout only (no generation): the same seed gives the same plan, another seed other worlds.
    plan = bench.plan_suite(SEED, N_TRAIN, N_TEST)
    assert plan == bench.plan_suite(SEED, N_TRAIN, N_TEST)
    other = bench.plan_suite(SEED + 1, N_TRAIN, N_TEST)
    keys = {p.key() for split in plan.values() for _, _, p in split}
    other_keys = {p.key() for split in other.values() for _, _, p in split}
    assert keys.isdisjoint(other_keys)
    worlds = {w for tasks in plan.values() for _, w, _ in tasks}
    assert worlds.isdisjoint({w for tasks in other.values() for _, w, _ in tasks})


def test_second_build_reuses_cache(bench, built):
    suite, cache, _ = built
    mtimes = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    count = games.GENERATION_COUNT
    start = time.monotonic()
    again = bench.build_suite(SEED, N_TRAIN, N_TEST, cache_dir=str(cache))
    elapsed = time.monotonic() - start
    assert games.GENERATION_COUNT == count
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes
    assert elapsed < 5.0, f"cached build took {elapsed:.1f}s"
    assert len(_all(again)) == len(_all(suite))
    assert not list(cache.glob(".tmp-*"))


def test_train_and_id_share_worlds_ood_is_new(built):
    suite, _, _ = built
    train_worlds = {t.world_id for t in suite.train}
    assert {t.world_id for t in suite.id} <= train_worlds
    assert not {t.world_id for t in suite.ood} & train_worlds
    # Same world: identical map, furniture, objects and names; only the player's start and the quest differ.
    train, test = suite.train[0], next(t for t in suite.id if t.world_id == suite.train[0].world_id)
    g1, g2 = _game(train), _game(test)

    def world_facts(game):
        return {str(f) for f in game.world.facts if not (f.name == "at" and f.arguments[0].name == "P")}

    assert world_facts(g1) == world_facts(g2)
    assert {k: v.name for k, v in g1.infos.items()} == {k: v.name for k, v in g2.infos.items()}
    assert g1.objective != g2.objective
    assert world_facts(_game(suite.ood[0])) != world_facts(g1)


def test_walkthrough_wins_every_task_with_score_semantics(env, built):
    suite, _, _ = built
    for task in _all(suite):
        first = env.reset(task)
        walkthrough = _game(task).walkthrough  # test-only: the agent never sees it
        assert walkthrough and first.goal.startswith("Find the ")
        total, progress, result = 0.0, 0.0, None
        for i, command in enumerate(walkthrough):
            result = env.step(command)
            assert result.reward >= 0 and result.progress is not None and result.progress >= progress
            total += result.reward
            progress = result.progress
            assert result.done == (i == len(walkthrough) - 1), (task.task_id, command, result.observation)
        assert result.won and result.done and result.progress == 1.0 and result.admissible_actions == []
        n_goals = task.params["generation"]["level"]["n_goals"]
        assert total == 2 * n_goals  # one point for holding each object, one for putting it in place
        after = env.step("look")
        assert after.done and after.won and after.reward == 0


def test_reward_is_score_delta_and_progress_is_share(env, built):
    suite, _, _ = built
    task = suite.train[0]
    walkthrough = _game(task).walkthrough
    env.reset(task)
    took = next(i for i, c in enumerate(walkthrough) if c.startswith("take "))
    for command in walkthrough[:took]:
        result = env.step(command)
        assert (result.reward, result.progress, result.done) == (0.0, 0.0, False)
    result = env.step(walkthrough[took])
    assert (result.reward, result.progress, result.won) == (1.0, 0.5, False)
    result = env.step("inventory")
    assert result.reward == 0.0 and result.progress == 0.5 and "carrying" in result.observation.lower()


def test_observation_is_clean_and_reset_switches_games(env, built):
    suite, _, _ = built
    a, b = suite.train[0], suite.ood[0]
    first = env.reset(a)
    assert "$$$$" not in first.text and "-= " in first.text and first.goal not in first.text
    assert first.admissible_actions == sorted(first.admissible_actions) and "look" in first.admissible_actions
    step = env.step(first.admissible_actions[0])
    assert not re.search(r"-= .* =-\d+/\d+|^>", step.observation, re.M), step.observation
    other = env.reset(b)  # another game on the same instance
    assert other.goal != first.goal and other.goal == _game(b).objective
    again = env.reset(a)
    assert again.text == first.text and again.goal == first.goal
    result = env.step("look")
    assert result.progress == 0.0 and not result.done


def test_step_before_reset_and_foreign_task(bench):
    fresh = bench.make_env()
    with pytest.raises(BenchmarkError, match="reset"):
        fresh.step("look")
    with pytest.raises(BenchmarkError, match="not a textworld task"):
        fresh.reset(TaskSpec("x", "babaisai", "train"))
    fresh.close()
    fresh.close()


def test_missing_or_corrupt_game_raises(built, tmp_path, bench):
    suite, _, _ = built
    task = suite.train[0]
    src = Path(task.params["game_file"])
    for path in src.parent.glob(src.stem + ".*"):
        shutil.copy(path, tmp_path / path.name)
    copy = TaskSpec(task.task_id, task.benchmark, task.split, task.world_id,
                    {**task.params, "game_file": str(tmp_path / src.name)})
    env = bench.make_env()
    try:
        assert env.reset(copy).goal  # the copy plays
        (tmp_path / src.name).write_bytes(b"\0" * 10)
        with pytest.raises(BenchmarkError, match="build_suite"):
            env.reset(copy)
        (tmp_path / src.name).unlink()
        with pytest.raises(BenchmarkError, match="missing"):
            env.reset(copy)
    finally:
        env.close()


def test_corrupt_cache_entry_is_regenerated(built, tmp_path):
    suite, _, _ = built
    params = games.GameParams.from_dict(suite.train[0].params["generation"])
    src = Path(suite.train[0].params["game_file"])
    for path in src.parent.glob(src.stem + ".*"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / src.name).write_bytes(b"broken")
    count = games.GENERATION_COUNT
    path = games.ensure_game(params, tmp_path)
    assert games.GENERATION_COUNT == count + 1
    assert games.check_cached(games.game_paths(tmp_path, params.key())) is None
    # Generation is deterministic (the story's header carries the compile date, so compare the description).
    regenerated, original = path.with_suffix(".json"), src.with_suffix(".json")
    assert json.loads(regenerated.read_text()) == json.loads(original.read_text())


def test_failed_generation_raises_and_leaves_nothing(tmp_path, monkeypatch):
    params = games.GameParams(games.LEVELS["fetch6"], {"map": 1, "objects": 2, "grammar": 3, "quest": 4}, 0)
    monkeypatch.setenv("INFORM_HOME", str(tmp_path / "no-inform7"))
    cache = tmp_path / "cache"
    with pytest.raises(BenchmarkError, match="Inform7"):
        games.ensure_game(params, cache)
    assert list(cache.iterdir()) == []


def test_bad_configuration_is_reported():
    from harness.envs.textworld_env import TextWorldBenchmark

    with pytest.raises(BenchmarkError, match="unknown textworld level"):
        TextWorldBenchmark(train_level="nope")
    with pytest.raises(BenchmarkError, match="n_train"):
        TextWorldBenchmark().plan_suite(0, -1, 2)


def test_meta_commands_are_refused_and_commands_are_one_line(env, built):
    suite, _, _ = built
    first = env.reset(suite.train[0])
    for command in ("restart", "quit", "UNDO", "save game"):
        result = env.step(command)
        assert "not available" in result.observation and not result.done and result.reward == 0
        assert result.admissible_actions == first.admissible_actions
    assert "-= " in env.step("  look\n").observation  # one line, trimmed
    env.step("look\ninventory")  # played as one line, so the next answer belongs to the next command
    assert "carrying" in env.step("inventory").observation.lower()


def test_each_task_plays_under_its_levels_step_limit_unless_the_job_overrides_it(built, tmp_path):
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    suite, cache, _ = built
    source = (Path(__file__).resolve().parents[1] / "seeds" / "no_memory.py").read_text()
    with open_models(ModelSettings(embedder="hashing")) as models:
        def steps(split: str, override: int | None) -> list[int]:
            job = JobSpec(job_id="t", design=DesignSpec(name="no_memory", source=source), benchmark="textworld",
                          models=ModelSpec(embedder="hashing"), cache_dir=str(cache), isolate_design=False,
                          protocol=ProtocolSpec(n_train=N_TRAIN, n_test=N_TEST, repeats=1, split=split,
                                                seed=SEED, step_limit=override))
            return [e.steps for e in ProtocolRun(job, models).run_sync().episodes if e.phase == "deploy"]

        ood = steps("ood", None)
        assert max(ood) <= 40 and max(ood) > 9  # two fetches in 9 rooms: the memory-less agent needs more than 9
        assert max(steps("id", None)) <= 9
        assert max(steps("ood", 6)) <= 6
