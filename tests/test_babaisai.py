"""BabaIsAI: rules, mechanics, solver-checked level families, suite determinism and observation text."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.envs import get_benchmark
from harness.envs.babaisai import GOAL, BabaIsAIBenchmark
from harness.envs.babaisai.families import FAMILIES, IN_FAMILIES, OOD_FAMILIES
from harness.envs.babaisai.levels import STEP_LIMIT, Level, generate
from harness.envs.babaisai.rules import Rule, parse_rules
from harness.envs.babaisai.solver import solve, solve_bfs
from harness.envs.babaisai.text import describe_offset
from harness.envs.babaisai.world import ACTIONS, Thing, canonical, judge, rules_of
from harness.envs.base import TaskSpec

ACTIONS_LIST = ["down", "idle", "left", "right", "up"]


def task_for(level: Level, task_id: str = "t") -> TaskSpec:
    return TaskSpec(task_id=task_id, benchmark="babaisai", split="train", params={"level": level.to_dict()})


def play(rows: list[str], actions: list[str]):
    """Reset an env on an ASCII level and play ``actions``; return (env, first observation, results)."""
    env = BabaIsAIBenchmark().make_env()
    first = env.reset(task_for(Level.from_grid(rows)))
    return env, first, [env.step(a) for a in actions]


def baba(env) -> tuple[int, int]:
    (me,) = [t for t in env.state if t.name == "baba" and not t.text]
    return me.x, me.y


# ---------------------------------------------------------------- rules


def test_rules_read_horizontally_and_vertically():
    level = Level.from_grid([
        "BIY..",
        "O....",
        "I.KIS",
        "!....",
    ])
    assert rules_of(level.things) == {Rule("baba", "you"), Rule("ball", "win"), Rule("key", "stop")}


def test_rules_need_noun_is_property_in_reading_order():
    # reversed, gapped, diagonal and property-first lines spell nothing; one block may serve two rules
    assert parse_rules({(0, 0): "you", (1, 0): "is", (2, 0): "baba"}) == set()
    assert parse_rules({(0, 0): "baba", (2, 0): "is", (3, 0): "you"}) == set()
    assert parse_rules({(0, 0): "baba", (1, 1): "is", (2, 2): "you"}) == set()
    assert parse_rules({(0, 0): "baba", (1, 0): "is", (2, 0): "ball"}) == set()
    shared = {(0, 0): "baba", (1, 0): "is", (2, 0): "you", (0, 1): "is", (0, 2): "win"}
    assert parse_rules(shared) == {Rule("baba", "you"), Rule("baba", "win")}
    assert str(Rule("wall", "stop")) == "wall is stop"


# ---------------------------------------------------------------- mechanics


def test_walk_and_edges_block():
    env, _, results = play(["@..", "...", "BIY"], ["right", "right", "right", "up"])
    assert baba(env) == (2, 0)
    assert "You moved right." in results[0].observation
    assert "could not move right: you are at the edge of the map" in results[2].observation
    assert not any(r.done for r in results)


def test_push_chain_moves_every_text_block_and_keeps_the_rule():
    env, _, results = play(["@OI!.", ".....", "BIY.."], ["right"])
    assert "You pushed rule `ball`, rule `is` and rule `win` right." in results[0].observation
    assert sorted((t.x, t.name) for t in env.state if t.y == 0) == [(1, "baba"), (2, "ball"), (3, "is"), (4, "win")]
    assert Rule("ball", "win") in env.rules
    # the chain now touches the edge: nothing moves
    result = env.step("right")
    assert baba(env) == (1, 0) and "the blocks you push would leave the map" in result.observation


def test_stop_blocks_the_player_and_push_chains():
    env, _, results = play(["@#.", "...", "WIS", "BIY"], ["right"])
    assert baba(env) == (0, 0)
    assert "the wall (wall is stop) is in the way" in results[0].observation
    # a text block pushed into a STOP wall does not move either
    env, _, results = play(["@O#", "...", "WIS", "BIY"], ["right"])
    assert baba(env) == (0, 0) and "the blocks you push run into the wall (wall is stop)" in results[0].observation
    assert ("ball", 1) in [(t.name, t.x) for t in env.state if t.text]


def test_push_objects_are_pushed_and_others_are_walked_over():
    env, _, _ = play(["@ko..", ".....", "KIP..", "BIY.."], ["right"])
    cells = {}
    for t in env.state:
        if not t.text:
            cells.setdefault((t.x, t.y), set()).add(t.name)
    assert cells[(1, 0)] == {"baba"} and cells[(2, 0)] == {"key", "ball"}  # key pushed onto the ball's cell
    env.step("right")  # the key is pushed on; baba walks onto the ball (no rule: it is not solid)
    assert baba(env) == (2, 0)
    assert [t.x for t in env.state if t.name == "key" and not t.text] == [3]


def test_breaking_wall_is_stop_lets_you_walk_through_walls():
    rows = ["@#o#.", "..#..", "WIS..", ".....", "BIY..", "OI!.."]
    env, _, results = play(rows, ["right"])
    assert baba(env) == (0, 0) and not results[0].done  # the ball is boxed in by STOP walls
    for action in ["down", "right"]:
        env.step(action)
    result = env.step("down")  # push `is` down, out of line
    assert "Rule broken: wall is stop." in result.observation
    assert Rule("wall", "stop") not in env.rules
    for action in ["up", "up"]:
        result = env.step(action)
    assert baba(env) == (1, 0) and not result.done  # standing on a wall
    result = env.step("right")
    assert result.won and result.done and result.reward == 1.0 and result.progress == 1.0


def test_forming_a_rule_makes_an_object_win():
    rows = ["@.o.", "....", "OI..", "..!.", "....", "BIY."]
    env, _, results = play(rows, ["right", "right"])
    assert baba(env) == (2, 0) and not results[-1].won  # no WIN rule yet: the ball is just a ball
    for action in ["right", "down", "down", "down", "down", "left"]:
        env.step(action)
    result = env.step("up")  # push `win` up into the slot
    assert "Rule formed: ball is win." in result.observation and not result.done
    for action in ["right", "up", "up", "up"]:
        result = env.step(action)
    assert not result.done
    result = env.step("left")
    assert result.won and result.done


def test_you_and_win_on_the_same_object_wins_at_once():
    env, _, results = play(["BIY", "I..", ".!.", ".@."], ["right", "up", "left"])
    assert not any(r.done for r in results[:2])
    assert "Rule formed: baba is win." in results[-1].observation
    assert results[-1].won and results[-1].done and results[-1].reward == 1.0


def test_no_you_rule_left_loses():
    env, _, results = play(["....", "BIY.", "..@."], ["up"])
    assert "Rule broken: baba is you." in results[0].observation
    result = results[0]
    assert result.done and not result.won and result.reward == 0.0 and result.progress is None
    assert "you lost" in result.observation and "No object is YOU." in result.observation
    after = env.step("left")
    assert after.done and not after.won and "game is over" in after.observation


def test_defeat_destroys_you():
    env, _, results = play(["@k.", "KIX", "BIY"], ["right"])
    assert results[0].done and not results[0].won
    assert "was destroyed" in results[0].observation
    assert not [t for t in env.state if t.name == "baba" and not t.text]


def test_unknown_action_changes_nothing():
    env, first, _ = play(["@..", "BIY", "OI!"], [])
    before = env.state
    result = env.step("jump")
    assert result.observation.startswith("Unknown action 'jump'")
    assert env.state == before and not result.done and result.reward == 0.0
    assert result.admissible_actions == ACTIONS_LIST == list(ACTIONS) == first.admissible_actions
    waited = env.step("idle")
    assert "You waited." in waited.observation and env.state == before


# ---------------------------------------------------------------- observation text


def test_observation_lists_rules_and_offsets_from_you():
    level = Level(7, 5, canonical([
        Thing(3, 3, "baba"), Thing(5, 2, "ball", "red"), Thing(0, 0, "baba", text=True),
        Thing(1, 0, "is", text=True), Thing(2, 0, "you", text=True), Thing(2, 3, "win", text=True),
        Thing(3, 3, "key", "blue"),
    ]))
    env = BabaIsAIBenchmark().make_env()
    first = env.reset(task_for(level))
    assert first.goal == GOAL
    text = first.text
    assert "Active rules: baba is you\n" in text
    assert "You are the baba. You can move at most 3 steps left, 3 right, 3 up and 1 down" in text
    assert "- blue key at your position" in text
    assert "- rule `win` 1 step left" in text
    assert "- red ball 2 steps right and 1 step up" in text
    assert "- rule `baba` 3 steps left and 3 steps up" in text
    lines = text.splitlines()
    assert lines.index("- blue key at your position") < lines.index("- rule `win` 1 step left") < lines.index(
        "- red ball 2 steps right and 1 step up")
    assert describe_offset(0, 0) == "at your position" and describe_offset(-1, 2) == "1 step left and 2 steps down"


# ---------------------------------------------------------------- solver and families


def test_solver_is_shortest_and_matches_bfs():
    level = Level.from_grid(["@.o", "...", "OI.", "..!", "BIY"])
    plan = solve(level.width, level.height, level.things)
    assert plan is not None and len(plan) == len(solve_bfs(level.width, level.height, level.things))
    assert solve(level.width, level.height, level.things, max_steps=len(plan) - 1) is None
    for family in ("goto_win", "break_stop", "make_win"):
        for seed in range(3):
            lv = generate(family, seed).level
            fast = solve(lv.width, lv.height, lv.things)
            ref = solve_bfs(lv.width, lv.height, lv.things)
            assert fast is not None and ref is not None and len(fast) == len(ref)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_generated_level_is_solvable_within_the_step_limit(family):
    env = BabaIsAIBenchmark().make_env()
    extra = 1 if family in OOD_FAMILIES else 0
    for seed in range(30):
        made = generate(family, seed, extra=extra)
        assert 3 <= len(made.plan) <= STEP_LIMIT
        assert not judge(made.level.things).won
        env.reset(task_for(made.level))
        results = [env.step(a) for a in made.plan]
        assert results[-1].won and results[-1].done and results[-1].reward == 1.0
        assert not any(r.done for r in results[:-1])


def test_generation_is_deterministic_and_variants_move_the_start():
    a, b = generate("two_room-make_win", 11), generate("two_room-make_win", 11)
    assert a.level == b.level and a.plan == b.plan
    v1 = generate("two_room-make_win", 11, variant=1).level
    others = [t for t in v1.things if not (t.name == "baba" and not t.text)]
    assert others == [t for t in a.level.things if not (t.name == "baba" and not t.text)]
    assert v1 != a.level
    assert Level.from_dict(json.loads(json.dumps(a.level.to_dict()))) == a.level


# ---------------------------------------------------------------- benchmark and suite


def test_registry_and_suite_shape():
    bench = get_benchmark("babaisai")
    assert bench.name == "babaisai" and bench.step_limit == 20
    suite = bench.build_suite(seed=3, n_train=14, n_test=8)
    assert (len(suite.train), len(suite.id), len(suite.ood)) == (14, 8, 8)
    ids = [t.task_id for t in suite.train + suite.id + suite.ood]
    assert len(ids) == len(set(ids))
    assert {t.params["family"] for t in suite.train} == set(IN_FAMILIES)
    assert {t.params["family"] for t in suite.id} <= set(IN_FAMILIES)
    assert {t.params["family"] for t in suite.ood} == set(OOD_FAMILIES)
    train_worlds = {t.world_id for t in suite.train}
    assert any(t.world_id in train_worlds for t in suite.id)  # shared layouts ...
    assert any(t.world_id not in train_worlds for t in suite.id)  # ... and fresh ones
    train_levels = [json.dumps(t.params["level"]) for t in suite.train]
    assert not any(json.dumps(t.params["level"]) in train_levels for t in suite.id)
    assert all(3 <= t.params["reference_steps"] <= 20 for t in suite.train + suite.id + suite.ood)


def test_suite_and_reset_are_deterministic():
    bench = BabaIsAIBenchmark()
    one = bench.build_suite(seed=5, n_train=6, n_test=4)
    two = bench.build_suite(seed=5, n_train=6, n_test=4)
    assert [t.to_dict() for t in one.train + one.id + one.ood] == [t.to_dict() for t in two.train + two.id + two.ood]
    other = bench.build_suite(seed=6, n_train=6, n_test=4)
    assert [t.params["level"] for t in one.train] != [t.params["level"] for t in other.train]
    env = bench.make_env()
    task = one.id[0]
    assert env.reset(task).text == env.reset(task).text
    # without the serialised level, reset regenerates the very same level from the seeds
    bare = TaskSpec.from_dict({**task.to_dict(), "params": {k: v for k, v in task.params.items() if k != "level"}})
    assert env.reset(bare).text == env.reset(task).text


def test_suite_is_the_same_in_another_process():
    code = (
        "import json; from harness.envs.babaisai import BabaIsAIBenchmark as B; "
        "s = B().build_suite(seed=9, n_train=6, n_test=2); "
        "print(json.dumps([t.to_dict() for t in s.train + s.id + s.ood], sort_keys=True))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    here = BabaIsAIBenchmark().build_suite(seed=9, n_train=6, n_test=2)
    assert json.loads(out.stdout) == json.loads(json.dumps([t.to_dict() for t in here.train + here.id + here.ood]))
