"""The heuristic agent's errands in "go to <place>" worlds (harness.agents.places): goals parsed from ALFWorld's
templates, and the agent taking, transforming and placing objects from what it has seen where."""

from __future__ import annotations

import pytest

from harness.agents.heuristic import HeuristicAgent
from harness.agents.places import Errand, parse_goal

START = ("You are in the middle of a room. Looking quickly around you, you see a cabinet 2, a cabinet 1, a "
         "countertop 1, a drawer 1, a fridge 1, a microwave 1, and a sinkbasin 1.\n\n"
         "Your task is to: {goal}.")
PLACES = ["cabinet 1", "cabinet 2", "countertop 1", "drawer 1", "fridge 1", "microwave 1", "sinkbasin 1"]


def go_actions(here: str | None = None) -> list[str]:
    return [f"go to {p}" for p in PLACES if p != here] + ["inventory", "look"]


@pytest.mark.parametrize("goal, parsed", [
    ("put some ladle on countertop", ("ladle", "countertop", None, 1)),
    ("put a ladle in drawer", ("ladle", "drawer", None, 1)),
    ("put a clean ladle in drawer", ("ladle", "drawer", "clean", 1)),
    ("heat some egg and put it in countertop", ("egg", "countertop", "heat", 1)),
    ("put a hot egg in countertop", ("egg", "countertop", "heat", 1)),
    ("cool some apple and put it in cabinet", ("apple", "cabinet", "cool", 1)),
    ("find two spatula and put them in drawer", ("spatula", "drawer", None, 2)),
    ("put two spatula in drawer", ("spatula", "drawer", None, 2)),
    ("look at newspaper under the desklamp", ("newspaper", "desklamp", "look", 1)),
    ("examine the cd with the floorlamp", ("cd", "floorlamp", "look", 1)),
    ("Find the dvd and put it on the stand", None),  # a TextWorld goal: no errand
])
def test_alfworld_goal_templates_are_parsed(goal, parsed):
    assert parse_goal(f"Your task is to: {goal}.") == parsed


def test_a_clean_errand_takes_cleans_and_places_the_object():
    goal = "Your task is to: clean some ladle and put it in drawer."
    agent = HeuristicAgent(seed=0)
    start = START.format(goal="clean some ladle and put it in drawer")
    agent.begin(goal, start, "")
    first = agent.act(start, go_actions())
    assert first.startswith("go to ")
    # the script of the world: the ladle is on the countertop; answers as ALFWorld words them
    assert agent.act("You arrive at countertop 1. On the countertop 1, you see a ladle 1, and a fork 2.",
                     go_actions("countertop 1") + ["take ladle 1 from countertop 1", "take fork 2 from countertop 1"]
                     ) == "take ladle 1 from countertop 1"
    assert agent.act("You pick up the ladle 1 from the countertop 1.",
                     go_actions("countertop 1") + ["move ladle 1 to countertop 1"]) == "go to sinkbasin 1"
    assert agent.act("You arrive at sinkbasin 1. On the sinkbasin 1, you see nothing.",
                     go_actions("sinkbasin 1") + ["clean ladle 1 with sinkbasin 1", "move ladle 1 to sinkbasin 1"]
                     ) == "clean ladle 1 with sinkbasin 1"
    assert agent.act("You clean the ladle 1 using the sinkbasin 1.",
                     go_actions("sinkbasin 1") + ["move ladle 1 to sinkbasin 1"]) == "go to drawer 1"
    assert agent.act("You arrive at drawer 1. The drawer 1 is closed.",
                     go_actions("drawer 1") + ["open drawer 1", "examine drawer 1"]) == "open drawer 1"
    assert agent.act("You open the drawer 1. The drawer 1 is open. In it, you see nothing.",
                     go_actions("drawer 1") + ["close drawer 1", "move ladle 1 to drawer 1"]) == "move ladle 1 to drawer 1"


def test_exploration_visits_each_place_once_and_memory_names_where_to_look_first():
    goal = "Your task is to: put some ladle on countertop."
    start = START.format(goal="put some ladle on countertop")
    plain = Errand(goal, start, "")
    plain.observe(start, go_actions())
    assert plain.next_action(go_actions()) == "go to cabinet 1"
    plain.observe("You arrive at cabinet 1. The cabinet 1 is closed.", go_actions("cabinet 1") + ["open cabinet 1"])
    assert plain.next_action(go_actions("cabinet 1") + ["open cabinet 1"]) == "open cabinet 1"
    plain.observe("You open the cabinet 1. The cabinet 1 is open. In it, you see a cup 1.", go_actions("cabinet 1"))
    assert plain.next_action(go_actions("cabinet 1")) == "go to cabinet 2"  # not back to cabinet 1
    memory = "[1] SOLVED\nActions: go to fridge 1 -> open fridge 1 -> take ladle 3 from fridge 1 -> go to countertop 1"
    hinted = Errand(goal, start, memory)
    hinted.observe(start, go_actions())
    assert hinted.next_action(go_actions()) == "go to fridge 1"


def test_a_look_errand_brings_the_object_to_the_lamp_seen_elsewhere():
    goal = "Your task is to: look at newspaper under the desklamp."
    errand = Errand(goal, START.format(goal="look at newspaper under the desklamp"), "")
    errand.observe("You arrive at cabinet 1. On the cabinet 1, you see a desklamp 1.", go_actions("cabinet 1"))
    errand.observe("You arrive at countertop 1. On the countertop 1, you see a newspaper 2.",
                   go_actions("countertop 1"))
    here = go_actions("countertop 1") + ["take newspaper 2 from countertop 1"]
    assert errand.next_action(here) == "take newspaper 2 from countertop 1"
    errand.observe("You pick up the newspaper 2 from the countertop 1.", go_actions("countertop 1"))
    assert errand.next_action(go_actions("countertop 1")) == "go to cabinet 1"
    errand.observe("You arrive at cabinet 1. On the cabinet 1, you see a desklamp 1.", go_actions("cabinet 1"))
    assert errand.next_action(go_actions("cabinet 1") + ["use desklamp 1"]) == "use desklamp 1"


def test_two_objects_the_placed_one_is_not_taken_again():
    goal = "Your task is to: find two spatula and put them in drawer."
    errand = Errand(goal, START.format(goal="find two spatula and put them in drawer"), "")
    errand.observe("You arrive at countertop 1. On the countertop 1, you see a spatula 1, and a spatula 2.",
                   go_actions("countertop 1"))
    errand.observe("You pick up the spatula 1 from the countertop 1.", go_actions("countertop 1"))
    errand.observe("You arrive at drawer 1. The drawer 1 is open. In it, you see nothing.", go_actions("drawer 1"))
    errand.observe("You move the spatula 1 to the drawer 1.", go_actions("drawer 1"))
    assert errand.holding is None and errand.placed == {"spatula 1"}
    assert errand.next_action(go_actions("drawer 1")) == "go to countertop 1"  # where the second one lies


def test_the_older_alfworld_wording_loc_n_is_placed_by_the_command_that_led_there():
    goal = "Your task is to: put some ladle on countertop."
    errand = Errand(goal, START.format(goal="put some ladle on countertop"), "")
    errand.record("go to cabinet 2")
    errand.observe("You arrive at loc 12. On the cabinet 2, you see a ladle 1.", go_actions("cabinet 2"))
    assert errand.at == "cabinet 2" and errand.visited == {"cabinet 2"} and errand.seen["cabinet 2"] == {"ladle 1"}
