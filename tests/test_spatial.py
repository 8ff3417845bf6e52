"""The map a text makes (harness.agents.spatial) and the heuristic agent walking it: doors from moves followed by
room headers, what was seen where, shortest routes, and routes taken from memory or from the agent's own steps."""

from __future__ import annotations

from harness.agents.heuristic import HeuristicAgent
from harness.agents.spatial import TextMap, room_of

REMEMBERED = ("[1] SOLVED\nGoal: Find the staple and put it on the desk.\n"
              "Start: -= Lounge =- You arrive in a lounge. There is an exit to the south.\n"
              "Actions that solved it: open gateway -> go south -= Workshop =- -> take staple from bookshelf -> "
              "go north -= Lounge =- -> go east -= Attic =- -> go north -= Bedroom =- -> put staple on desk\n"
              "[2] SOLVED\nGoal: Find the dvd and put it into the safe.\n")


def test_moves_followed_by_headers_make_doors_both_ways():
    m = TextMap().read(REMEMBERED)
    assert m.doors["lounge"] == {"south": "workshop", "east": "attic"}
    assert m.doors["workshop"] == {"north": "lounge"}
    assert m.doors["attic"] == {"west": "lounge", "north": "bedroom"}
    assert m.doors["bedroom"] == {"south": "attic"}


def test_what_is_where_ignores_the_delivered_object_and_the_next_record():
    m = TextMap().read(REMEMBERED)
    assert m.rooms_with("staple") == {"workshop"}  # taken there; put on the desk in the bedroom, not found there
    assert m.rooms_with("bookshelf") == {"workshop"}
    assert m.rooms_with("desk") == {"bedroom"}
    assert m.rooms_with("dvd") == set()  # the next record's goal line is not part of the bedroom's segment


def test_a_header_alone_on_its_line_covers_the_raw_observation():
    obs = "-= Workshop =-\nYou find yourself in a workshop.\n\nOn the bookshelf you see a folder and a staple."
    m = TextMap().read(obs)
    assert room_of(obs) == "workshop"
    assert m.rooms_with("folder") == {"workshop"}


def test_words_between_a_move_and_a_header_break_the_door():
    m = TextMap().read("-= Lounge =- go south -> open safe -> -= Workshop =- a bench")
    assert "lounge" not in m.doors and m.rooms_with("bench") == {"workshop"}
    m = TextMap().read("-= Lounge =- > go south [reward +1]\n-= Workshop =-")
    assert m.doors["lounge"] == {"south": "workshop"}


def test_route_is_the_shortest_known_path():
    m = TextMap()
    for a, d, b in [("a", "east", "b"), ("b", "east", "c"), ("c", "south", "d"), ("a", "south", "e"),
                    ("e", "east", "f"), ("f", "east", "d")]:
        m.add_door(a, d, b)
    assert m.route("a", {"d"}) == ["east", "east", "south"]
    assert m.route("d", {"a"}) == ["north", "west", "west"]
    assert m.route("a", {"a"}) == []
    assert m.route("a", {"nowhere"}) is None


LOUNGE = "-= Lounge =-\nYou arrive in a lounge. There is a closed gateway leading east."
LOUNGE_ACTIONS = ["examine gateway", "go north", "go south", "go west", "inventory", "look", "open gateway"]
GOAL = "Find the staple and put it on the desk."


def test_the_agent_walks_the_remembered_route_and_explores_without_it():
    with_memory, without = set(), set()
    for seed in range(8):
        agent = HeuristicAgent(seed=seed)
        agent.begin(GOAL, LOUNGE, REMEMBERED)
        with_memory.add(agent.act(LOUNGE, LOUNGE_ACTIONS))
        agent = HeuristicAgent(seed=seed)
        agent.begin(GOAL, LOUNGE, "")
        without.add(agent.act(LOUNGE, LOUNGE_ACTIONS))
    assert with_memory == {"go south"}
    assert len(without) > 1 and without <= {"go north", "go south", "go west", "open gateway"}


def test_after_taking_the_object_the_agent_heads_for_the_destination():
    agent = HeuristicAgent(seed=0)
    agent.begin(GOAL, LOUNGE, REMEMBERED)
    assert agent.act(LOUNGE, LOUNGE_ACTIONS) == "go south"
    workshop = "-= Workshop =-\nYou find yourself in a workshop. On the bookshelf you see a staple."
    assert agent.act(workshop, ["go north", "take staple from bookshelf", "look"]) == "take staple from bookshelf"
    assert agent.act("You take the staple from the bookshelf.", ["go north", "put staple on bookshelf"]) == "go north"
    # back in the lounge: the desk is in the bedroom, east then north; the gateway east is closed, so open it
    assert agent.act(LOUNGE, LOUNGE_ACTIONS) == "open gateway"
    assert agent.act("You open gateway.", LOUNGE_ACTIONS[:-1] + ["go east", "close gateway"]) == "go east"


def test_a_room_searched_in_vain_is_given_up_for_the_next_place_seen():
    memory = ("-= Hall =- go east -= Pantry =- -> examine dvd -> go west -= Hall =- -> go north -= Corridor =- -> "
              "go north -= Den =- -> take dvd")
    agent = HeuristicAgent(seed=0)
    agent.begin("Find the dvd and put it into the safe.", "-= Hall =-\nA hall.", memory)
    assert agent.act("-= Hall =-\nA hall.", ["go east", "go north", "look"]) == "go east"  # the pantry is nearer
    pantry = "-= Pantry =-\nAn empty pantry."
    for _ in range(6):
        last = agent.act(pantry, ["go west", "look", "inventory", "examine shelf", "open shelf"])
        if last == "go west":
            break
    assert last == "go west"  # not there: back out towards the den
    assert agent.act("-= Hall =-\nA hall.", ["go east", "go north", "look"]) == "go north"


def test_a_dead_end_is_left_and_goal_objects_are_not_dropped():
    agent = HeuristicAgent(seed=0)
    agent.begin("Find the lamp and put it into the locker.", "-= Hall =-\nA hall.", "")
    assert agent.act("-= Hall =-\nA hall.", ["go west"]) == "go west"
    closet = "-= Closet =-\nA closet. You see a lamp and a cucumber."
    assert agent.act(closet, ["go east", "take lamp", "take cucumber", "look"]) == "take lamp"
    assert agent.act("You take the lamp.", ["go east", "drop lamp", "take cucumber", "eat lamp"]) == "go east"


def test_insert_into_the_goal_container_is_progress():
    agent = HeuristicAgent(seed=0, noise=0.0)
    agent.begin("Find the staple and put it into the locker.", "-= Playroom =-\nA locker.", "")
    assert agent.act("-= Playroom =-\nA locker.", ["insert staple into locker", "close locker", "go east",
                                                  "insert staple into safe"]) == "insert staple into locker"


def test_two_fetches_each_object_goes_where_the_goal_wants_it_and_stays_there():
    goal = "Find the worm and put it on the bookshelf, then find the sponge and put it into the case."
    agent = HeuristicAgent(seed=0, noise=0.0)
    room = "-= Study =-\nA study. There is a bookshelf and a case. There is a worm and a sponge on the floor."
    agent.begin(goal, room, "")
    actions = ["take worm", "take sponge", "go east", "look"]
    assert agent.act(room, actions) == "take worm"
    holding = ["put worm on bookshelf", "insert worm into case", "take sponge", "go east"]
    assert agent.act("You pick up the worm from the ground.", holding) == "put worm on bookshelf"
    after = ["take worm from bookshelf", "take sponge", "go east", "look"]
    assert agent.act("You put the worm on the bookshelf.", after) == "take sponge"
    last = ["take worm from bookshelf", "put sponge on bookshelf", "insert sponge into case", "go east"]
    assert agent.act("You pick up the sponge from the ground.", last) == "insert sponge into case"


TRAIL = ("Start: -= Lounge =- You arrive in a lounge.\n"
         "Actions that solved it: go north -> go east -> go west -> go north -> take staple from bookshelf -> go south\n"
         "Steps that earned reward: take staple from bookshelf -> put staple on desk\n")


def test_moves_from_a_named_room_are_a_trail_with_loops_cut():
    m = TextMap().read(TRAIL)
    assert m.places("staple") == {("lounge", ("north", "north"))}  # east then west went nowhere
    assert m.places("desk") == set()  # the next line is not where the trail ended
    assert m.locate(("lounge", ("north", "north"))) == ("lounge", ("north", "north"))
    m.add_door("lounge", "north", "hall")  # walked: the trail resolves as far as the doors are known
    assert m.locate(("lounge", ("north", "north"))) == ("hall", ("north",))


def test_the_agent_follows_a_trail_and_gives_up_a_way_that_does_not_exist():
    agent = HeuristicAgent(seed=0)
    lounge = "-= Lounge =-\nA lounge."
    agent.begin(GOAL, lounge, TRAIL)
    assert agent.act(lounge, ["go north", "go east", "look"]) == "go north"
    hall = "-= Hall =-\nA hall."
    assert agent.act(hall, ["go north", "go south", "go west"]) == "go north"
    # elsewhere, the remembered way leads through a wall: after a few steps the agent stops insisting on it
    agent = HeuristicAgent(seed=0)
    agent.begin(GOAL, lounge, TRAIL)
    actions = ["go east", "go west", "look", "open box"]
    agent.act(lounge, actions)
    assert agent.nav.plan(actions).kind == "route"  # north, through what may be a closed door: open things
    for _ in range(3):
        agent.act(lounge, actions)
    assert agent.nav.plan(actions) is None or agent.nav.plan(actions).kind == "explore"  # north given up


def test_a_closed_door_is_an_exit_to_explore_and_is_opened_when_nothing_else_is_new():
    hall = "-= Hall =-\nA hall with a chest. There is a closed portal leading north. There is an exit to the west."
    closet = "-= Closet =-\nAn empty closet. There is an exit to the east."
    for seed in range(6):
        agent = HeuristicAgent(seed=seed)
        agent.begin("Find the lamp and put it into the locker.", hall, "")
        assert agent.act(hall, ["go west", "open chest", "open portal", "look"]) == "go west"  # the open way first
        assert agent.act(closet, ["go east", "look"]) == "go east"
        # back in the hall: west is known, the way back east too; the closed portal is the only new exit
        assert agent.nav.exits["hall"] == {"north", "west"}
        assert agent.act(hall, ["go west", "open chest", "open portal", "look"]) == "open portal"
        assert agent.act("You open the portal.", ["go west", "go north", "close portal"]) == "go north"


OTHER_WORLD = ("[1] SOLVED\nGoal: Find the lamp and put it into the locker.\n"
               "Actions: go east -= Hall =- -> go south -= Vault =- -> take lamp -> go north -= Hall =-\n"
               "[2] SOLVED\nGoal: Find the lamp and put it into the locker.\n"
               "Actions: go west -= Hall =- -> go north -= Den =- -> take lamp\n")


def test_memory_is_trusted_block_by_block_as_far_as_it_agrees_with_what_is_seen():
    agent = HeuristicAgent(seed=0)
    hall = "-= Hall =-\nA hall. There is an exit to the north. There is an exit to the east."
    agent.begin("Find the lamp and put it into the locker.", hall, OTHER_WORLD)
    assert agent.nav.map.places("lamp") == {("vault", ()), ("den", ())}
    # block 1 remembers a door south of the hall: this hall has none -> another world
    assert agent.act(hall, ["go north", "go east", "look"]) == "go north"  # the den, as block 2 remembers it
    assert agent.nav.distrusted == {0} and agent.nav.map.places("lamp") == {("den", ())}
    # the door leads elsewhere than block 2 said: block 2 is distrusted too, and what the agent saw stays
    agent.act("-= Garden =-\nA garden. There is an exit to the south.", ["go south", "look"])
    assert agent.nav.distrusted == {0, 1}
    assert agent.nav.map.doors["hall"] == {"north": "garden"} and agent.nav.map.places("lamp") == set()


def test_the_way_the_plan_takes_is_not_punished_as_dithering():
    agent = HeuristicAgent(seed=0)
    hall = "-= Hall =-\nA hall. There is an exit to the north. There is an exit to the east."
    nook = "-= Nook =-\nA nook. There is an exit to the south. There is an exit to the east."
    agent.begin("Find the lamp and put it into the locker.", hall, "-= Hall =- go east -= Yard =- -> take lamp")
    for obs, actions in [(hall, ["go north"]), (nook, ["go south"]), (hall, ["go north"])]:
        agent.act(obs, actions)  # pushed back and forth (only one way was open)
    # south again, back the way it came for the second time, is still the way to the lamp: not dithering
    assert agent.act(nook, ["go south", "go east", "look"]) == "go south"
