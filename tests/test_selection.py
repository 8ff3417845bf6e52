"""Parent selection (archive.selection): the paper's formula, the seeded stream, exclusions."""

from __future__ import annotations

import math

import pytest

from archive import Archive, ArchiveError, NoveltyConfig, ParentSelector, selection_probabilities


def add_evaluated(a: Archive, design_id: str, score: float, *, visits: int = 0, successes=None) -> None:
    a.add_design(design_id, f"# {design_id}", proposer="seed")
    a.set_status(design_id, "evaluating")
    ev = a.begin_evaluation(design_id, "textworld", "train")
    a.finish_evaluation(ev.id, outcome="ok", score=score, stderr=0.0, successes=successes)
    a.set_status(design_id, "evaluated")
    if visits:
        a.record_selection([design_id] * visits, step=None, strategy="setup")


def build(path, visits=(0, 2, 0, 5), novelty: NoveltyConfig | None = None) -> Archive:
    """No-memory baseline (0.2) and three memory designs; rewards 0, 0.3, 0.6, -0.1."""
    a = Archive.open(path, novelty=novelty)
    scores = {"nomem": 0.2, "m1": 0.5, "m2": 0.8, "m3": 0.1}
    successes = {"nomem": {"t1": 0, "t2": 0}, "m1": {"t1": 1, "t2": 0}, "m2": {"t1": 1, "t2": 1},
                 "m3": {"t1": 0, "t2": 1}}
    for (design_id, score), v in zip(scores.items(), visits, strict=True):
        add_evaluated(a, design_id, score, visits=v, successes=successes[design_id])
    a.set_baseline("nomem")
    return a


def by_hand(rewards, visits, tau=0.5, alpha=0.5, extra=None):
    """p_i = exp((sigmoid(r_i) - alpha*log(1+v_i) + extra_i) / tau) / sum_j (...), in scalar math."""
    extra = extra or [0.0] * len(rewards)
    terms = [math.exp((1 / (1 + math.exp(-r)) - alpha * math.log(1 + v) + e) / tau)
             for r, v, e in zip(rewards, visits, extra, strict=True)]
    return [t / sum(terms) for t in terms]


def ids(designs):
    return [d.id for d in designs]


def test_probabilities_match_the_papers_formula(tmp_path):
    with build(tmp_path) as a:
        p = ParentSelector().probabilities(a)
        expected = by_hand([0.0, 0.3, 0.6, -0.1], [0, 2, 0, 5])
        assert list(p) == ["nomem", "m1", "m2", "m3"]
        assert list(p.values()) == pytest.approx(expected, rel=1e-12)
        p2 = ParentSelector(tau=2.0, alpha=0.1).probabilities(a)
        assert list(p2.values()) == pytest.approx(by_hand([0.0, 0.3, 0.6, -0.1], [0, 2, 0, 5], 2.0, 0.1))
    assert selection_probabilities([0.1, -0.4, 0.9], [1, 0, 3]) == pytest.approx(
        by_hand([0.1, -0.4, 0.9], [1, 0, 3]))


def test_without_a_baseline_the_raw_score_is_used(tmp_path):
    with Archive.open(tmp_path) as a:
        add_evaluated(a, "x", 0.25)
        add_evaluated(a, "y", 0.75, visits=1)
        expected = by_hand([0.25, 0.75], [0, 1])
        assert list(ParentSelector().probabilities(a).values()) == pytest.approx(expected)


def test_novelty_strategy_weights_by_novelty(tmp_path):
    with Archive.open(tmp_path, novelty=NoveltyConfig(k=1, code_weight=0)) as a:
        add_evaluated(a, "a", 0.5, successes={"t1": 1, "t2": 1, "t3": 1, "t4": 1})
        add_evaluated(a, "b", 0.5, successes={"t1": 1, "t2": 1, "t3": 1, "t4": 0})
        add_evaluated(a, "c", 0.5, successes={"t1": 0, "t2": 0, "t3": 0, "t4": 0})
        nov = {d.id: d.novelty for d in a.designs()}
        assert nov == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.75})
        p = ParentSelector("novelty", beta=1.0).probabilities(a)
        expected = by_hand([0.5] * 3, [0] * 3, extra=[0.25 / 0.75, 0.25 / 0.75, 1.0])
        assert list(p.values()) == pytest.approx(expected) and p["c"] > p["a"]


def test_greedy_takes_the_top_score_ties_to_fewer_visits(tmp_path):
    with Archive.open(tmp_path) as a:
        add_evaluated(a, "low", 0.1)
        add_evaluated(a, "top_visited", 0.9, visits=3)
        add_evaluated(a, "top_fresh", 0.9, visits=1)
        selector = ParentSelector("greedy")
        assert ids(selector.select(a, 1, step=1)) == ["top_fresh"]
        assert ids(selector.select(a, 1, step=2)) == ["top_fresh"]  # 2 visits < 3
        assert ids(selector.select(a, 1, step=3)) == ["top_visited"]  # 3 visits each: the older design
        assert selector.probabilities(a) == {"low": 0.0, "top_visited": 0.0, "top_fresh": 1.0}
        assert ids(selector.select(a, 4, step=4)) == ["top_fresh", "top_visited", "low", "top_fresh"]


def test_select_counts_visits_and_logs_the_step(tmp_path):
    with build(tmp_path, visits=(0, 0, 0, 0)) as a:
        selector = ParentSelector(seed=3)
        picked = selector.select(a, 3, step=7)
        assert len(set(ids(picked))) == 3  # without replacement
        assert all(d.visits == 1 for d in picked)
        event = a.events("select")[-1]
        assert event.step == 7 and event.payload["selected"] == ids(picked)
        assert event.payload["probabilities"]["m2"] == pytest.approx(by_hand([0, 0.3, 0.6, -0.1], [0] * 4)[2])
        assert a.get_meta(selector.state_key) == selector.state()
        many = selector.select(a, 6, step=8)  # more than the 4 candidates: all 4, then repeats
        assert sorted(ids(many)[:4]) == ["m1", "m2", "m3", "nomem"]
        assert sum(d.visits for d in a.designs()) == 3 + 6


def test_the_stream_advances_and_reproduces(tmp_path):
    def run(path, seed, n=12):
        with build(path, visits=(0, 0, 0, 0)) as a:
            selector = ParentSelector(seed=seed, alpha=0.0)  # constant probabilities: only the stream moves
            return [ids(selector.select(a, 1, step=s))[0] for s in range(n)]

    first = run(tmp_path / "one", seed=11)
    assert len(set(first)) > 1  # consecutive calls differ (a re-seeded generator would repeat one pick)
    assert run(tmp_path / "two", seed=11) == first  # same seed, same history: same sequence
    assert run(tmp_path / "three", seed=12) != first


def test_state_save_and_restore_continues_the_stream(tmp_path):
    with build(tmp_path / "straight", visits=(0, 0, 0, 0)) as a:
        selector = ParentSelector(seed=5)
        straight = [ids(selector.select(a, 2, step=s)) for s in range(6)]
        straight_visits = {d.id: d.visits for d in a.designs()}
    with build(tmp_path / "resumed", visits=(0, 0, 0, 0)) as a:
        selector = ParentSelector(seed=5)
        resumed = [ids(selector.select(a, 2, step=s)) for s in range(3)]
    with Archive.open(tmp_path / "resumed") as a:  # a new process would do exactly this
        selector = ParentSelector(seed=999)
        assert selector.restore(a)
        resumed += [ids(selector.select(a, 2, step=s)) for s in range(3, 6)]
        assert {d.id: d.visits for d in a.designs()} == straight_visits
    assert resumed == straight
    with Archive.open(tmp_path / "fresh") as a:
        assert not ParentSelector().restore(a)
        a.set_meta("selector/parents", {"bit_generator": {"bit_generator": "MT19937"}})
        with pytest.raises(ArchiveError, match="not a PCG64 state"):
            ParentSelector().restore(a)


def test_a_rolled_back_step_is_resynchronised_by_restore(tmp_path):
    with build(tmp_path, visits=(0, 0, 0, 0)) as a:
        selector = ParentSelector(seed=2)
        selector.select(a, 1, step=0)
        saved = selector.state()
        with pytest.raises(RuntimeError):
            with a.transaction():
                selector.select(a, 2, step=1)
                raise RuntimeError("proposal failed")
        assert sum(d.visits for d in a.designs()) == 1 and len(a.events("select")) == 1
        assert selector.state() != saved and selector.restore(a) and selector.state() == saved


def test_hostile_and_unevaluated_designs_are_never_selected(tmp_path):
    with Archive.open(tmp_path) as a:
        add_evaluated(a, "ok1", 0.3)
        add_evaluated(a, "ok2", 0.4)
        add_evaluated(a, "cheater", 1.0)
        add_evaluated(a, "odd", 0.9)
        a.set_audit("cheater", "hostile", note="wrote the score file")
        a.set_audit("odd", "suspicious")
        a.add_design("pending", "# p", proposer="meta_agent")
        a.add_design("running", "# r", proposer="meta_agent")
        a.set_status("running", "evaluating")
        selector = ParentSelector(seed=0)
        assert set(selector.probabilities(a)) == {"ok1", "ok2", "odd"}
        drawn = {i for s in range(40) for i in ids(selector.select(a, 3, step=s))}
        assert drawn == {"ok1", "ok2", "odd"}
        assert ids(ParentSelector("greedy").select(a, 1)) == ["odd"]
        strict = ParentSelector(exclude_suspicious=True, name="strict")
        assert set(strict.probabilities(a)) == {"ok1", "ok2"}
        assert a.get("cheater").visits == 0


def test_selection_errors(tmp_path):
    with Archive.open(tmp_path) as a:
        with pytest.raises(ArchiveError, match="no design .* can be a parent"):
            ParentSelector().select(a)
        add_evaluated(a, "x", 0.5)
        with pytest.raises(ArchiveError, match="k >= 1"):
            ParentSelector().select(a, 0)
    with pytest.raises(ArchiveError, match="unknown selection strategy"):
        ParentSelector("roulette")
    with pytest.raises(ArchiveError, match="tau > 0"):
        ParentSelector(tau=0)


def test_draw_frequencies_follow_the_probabilities(tmp_path):
    with build(tmp_path, visits=(0, 0, 0, 0)) as a:
        selector = ParentSelector(seed=4, tau=0.1, alpha=0.0)  # alpha 0: visits do not move p
        p = selector.probabilities(a)
        n = 600
        counts = dict.fromkeys(p, 0)
        for step in range(n):
            counts[ids(selector.select(a, 1, step=step))[0]] += 1
        for design_id, prob in p.items():
            assert counts[design_id] / n == pytest.approx(prob, abs=4 * math.sqrt(prob * (1 - prob) / n))


def test_elite_keeps_neutral_children_selectable_and_explores_the_rest(tmp_path):
    from archive import elite_probabilities

    with Archive.open(tmp_path) as a:
        add_evaluated(a, "leader", 0.75, visits=3)
        add_evaluated(a, "neutral", 0.625)  # one task of 8 below: within noise of the leader
        add_evaluated(a, "worse", 0.25)
        add_evaluated(a, "worst", 0.0)
        selector = ParentSelector("elite", margin=0.125, explore=0.1)
        p = selector.probabilities(a)
        # the elite share 0.9 by 1/(1+visits): leader 1/4, neutral 1/1; the other two share 0.1
        assert p["leader"] == pytest.approx(0.9 * 0.25 / 1.25)
        assert p["neutral"] == pytest.approx(0.9 * 1.0 / 1.25)
        assert p["worse"] == pytest.approx(0.05) and p["worst"] == pytest.approx(0.05)
        assert sum(p.values()) == pytest.approx(1.0)
        picks = ids(selector.select(a, 2, step=1))
        assert len(set(picks)) == 2
    # everyone within the margin: all probability to the elite, none lost to exploration
    assert elite_probabilities([0.5, 0.5], [0, 1], margin=0.0).tolist() == pytest.approx([2 / 3, 1 / 3])
    with pytest.raises(ArchiveError, match="margin"):
        ParentSelector("elite", margin=-1)
