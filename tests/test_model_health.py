"""Silent model failures (sandbox.model_health): empty, truncated and refused replies counted per model, alone
and through a real Broker whose upstream is the local OpenAI-compatible test server (the only test double)."""

from __future__ import annotations

import pytest

from harness.jobspec import EpisodeRecord
from harness.models.chat import ChatClient
from sandbox.broker import Broker, BrokerConfig
from sandbox.model_health import KINDS, ModelHealth, check, classify, load_refusals, parsed_steps


def reply(content, finish_reason: str = "stop") -> dict:
    return {"choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content}}]}


def make_broker(server, **overrides) -> Broker:
    config = {"chat_base_url": server.base_url, "local_embedder": "hashing", "backoff_base": 0.01,
              "max_attempts": 2, "local_chat_model": None, "chat_model": "test-model", **overrides}
    return Broker(BrokerConfig(**config))


def chat(session, content: str = "hi") -> str:
    client = ChatClient("http://alma-broker/v1", "test-model", uds=str(session.socket_path), max_attempts=1)
    return client.chat([{"role": "user", "content": content}])


def test_the_refusal_openings_come_from_the_data_file():
    patterns = load_refusals()
    assert "as an ai" in patterns and "i cannot help with" in patterns
    assert all(p and p == p.lower() and not p.startswith("#") for p in patterns)


@pytest.mark.parametrize(("message", "kind"), [
    (reply("go north"), "ok"),
    (reply(None), "empty"),
    (reply("  \n\t"), "empty"),
    ({"choices": []}, "empty"),
    ({"id": "no choices at all"}, "empty"),
    (reply("go nor", "length"), "truncated"),
    (reply(None, "length"), "truncated"),  # a reasoning model that spent max_tokens thinking: the cut is the cause
    (reply("I\u2019m sorry, but I can\u2019t help with that."), "refused"),
    (reply('  "As an AI language model, I do not play games.'), "refused"),
    (reply("i cannot help with THAT"), "refused"),
    (reply("go north. I'm sorry, but I can't say more"), "ok"),  # only the opening counts
    (reply([{"type": "text", "text": "take lamp"}]), "ok"),
])
def test_each_reply_has_exactly_one_kind(message, kind):
    assert classify(message) == kind


def test_counts_rates_and_verdict_per_model():
    health = ModelHealth()
    for _ in range(14):
        health.record("m", reply(""))
    for _ in range(6):
        health.record("m", reply("open door"))
    for _ in range(3):
        health.record("other", reply(None))  # too few replies to judge
    assert health.counts() == {"m": {"ok": 6, "empty": 14, "truncated": 0, "refused": 0},
                               "other": {"ok": 0, "empty": 3, "truncated": 0, "refused": 0}}
    assert health.rates()["m"]["empty"] == pytest.approx(0.7)
    assert health.verdict(0.5, 10) == ("model m: 14 of 20 replies were empty (70%) — check the endpoint / "
                                       "model name")
    assert health.verdict(0.75, 10) is None
    assert health.verdict(0.5, 21) is None
    assert check(health).startswith("the model replies look broken: model m: 14 of 20 replies were empty")
    assert check(None) is None and check(ModelHealth()) is None


def test_bad_kinds_together_pass_the_threshold():
    health = ModelHealth()
    for content, finish, n in (("", "stop", 4), ("cut", "length", 4), ("As an AI, no.", "stop", 3),
                               ("go", "stop", 9)):
        for _ in range(n):
            health.record("m", reply(content, finish))
    assert health.verdict(0.5, 10) == ("model m: 11 of 20 replies were empty, truncated or refusals (55%: 4 empty, "
                                       "4 truncated, 3 refused) — check the endpoint / model name, max_tokens and "
                                       "the prompt")
    truncated = ModelHealth()
    truncated.add("m", {"truncated": 8, "ok": 2})
    assert "8 of 10 replies were truncated at max_tokens" in truncated.verdict(0.5, 10)


def test_usage_counts_fold_in_and_bad_arguments_are_refused():
    health = ModelHealth()
    health.add_usage("m", {"replies_ok": 2, "replies_refused": 9, "requests": 11})
    assert health.counts()["m"] == {"ok": 2, "empty": 0, "truncated": 0, "refused": 9}
    assert "9 of 11 replies were refusals (82%)" in health.verdict(0.5, 10)
    with pytest.raises(ValueError, match="unknown reply kinds"):
        health.add("m", {"weird": 1})
    with pytest.raises(ValueError, match="threshold"):
        health.verdict(0, 10)
    with pytest.raises(ValueError, match="min_requests"):
        health.verdict(0.5, 0)


def test_the_broker_counts_every_forwarded_chat_reply_once(openai_server, tmp_path):
    script = iter([{"content": None}, {"content": "   "}, {"content": "north", "finish_reason": "length"},
                   "I'm sorry, but I can't help with that.", "go north", "go south"])
    openai_server.script_chat(lambda request: next(script))
    with make_broker(openai_server, cassette_dir=tmp_path / "cassette") as broker:
        session = broker.open_session("h1")
        answers = [chat(session, f"question {i}") for i in range(6)]
        assert answers[:2] == ["", "   "] and answers[4:] == ["go north", "go south"]
        expected = {"ok": 2, "empty": 2, "truncated": 1, "refused": 1}
        assert broker.health.counts() == {"test-model": expected}
        usage = session.usage()
        assert {k: usage[f"replies_{k}"] for k in KINDS} == expected
        assert sum(expected.values()) == len(openai_server.chat_requests())
        # the first bad reply of each kind is an event, never named like a policy refusal (the audit's signal)
        names = [e["event"] for e in session.events]
        assert names == ["empty_reply", "truncated_reply", "refusal_reply"]
        assert all(e["kind"] == "broker" and "test-model" in e["detail"] for e in session.events)
        # a cassette hit (another job asking the same) is not counted again; embeddings are not counted at all
        other = broker.open_session("h2")
        assert chat(other, "question 0") == ""
        assert other.usage()["cassette_hits"] == 1 and other.usage()["replies_empty"] == 0
        assert broker.health.counts() == {"test-model": expected}


def test_the_verdict_appears_past_the_threshold_through_the_broker(openai_server):
    openai_server.script_chat(lambda request: {"content": ""} if "empty" in request["messages"][-1]["content"]
                              else "take key")
    with make_broker(openai_server) as broker:
        session = broker.open_session("h3")
        for i in range(4):
            chat(session, f"empty {i}")
        assert check(broker.health, 0.5, 5) is None  # not enough replies yet
        chat(session, "fine")
        assert check(broker.health, 0.5, 5) == ("the model replies look broken: model test-model: 4 of 5 replies "
                                                "were empty (80%) — check the endpoint / model name")
        assert session.usage()["replies_empty"] == 4 and session.usage()["replies_ok"] == 1


def test_replies_that_name_no_action_are_judged_apart_from_the_reply_kinds():
    health = ModelHealth()
    for _ in range(20):
        health.record("m", reply("I would rather think first."))  # fine to the broker: ok
    episodes = [EpisodeRecord(task_id="a", phase="collect", split="train", won=False, steps=12, unparsed=9),
                EpisodeRecord(task_id="b", phase="deploy", split="test", won=True, steps=4, unparsed=0),
                EpisodeRecord(task_id="c", phase="deploy", split="test", won=False, steps=0)]
    assert parsed_steps(episodes) == (16, 9) and parsed_steps(episodes[2:]) is None
    health.add_parsing("m", *parsed_steps(episodes))
    assert health.parsing() == {"m": {"actions": 16, "unparsed": 9}}
    assert health.verdict(0.5, 10) == ("model m: 9 of 16 replies named no admissible action (56%) — the reply "
                                       "format does not parse: check the model and the agent's prompt")
    assert health.verdict(0.6, 10) is None and health.verdict(0.5, 17) is None
    capped = EpisodeRecord(task_id="d", phase="deploy", split="test", won=False, steps=3)
    capped.unparsed = 7  # a plug-in agent's count past its steps is capped at them
    assert parsed_steps([capped]) == (3, 3)
    with pytest.raises(ValueError, match="unparsed <= actions"):
        health.add_parsing("m", 2, 3)
