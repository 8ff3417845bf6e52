"""engine.cost: the price table, what a run spends (per design, step and phase), the estimate and --budget-usd.

Money is checked against the local OpenAI-compatible test server's exact token counts (prompt tokens = words
of the messages, completion tokens = words of the reply, embedding tokens = words of the inputs): whatever the
server answered with a 200 is what the run paid, and the run's ledger must say exactly that. The server is the
only double (the edge we do not own); engines run as real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from archive import Archive
from benchmarks.latency_server import first_action
from engine.config import ConfigError, load_config
from engine.cost.charge import Charge
from engine.cost.estimate import Estimator, episodes, meta_steps, prior_evaluation
from engine.cost.governor import CostGovernor, open_prices
from engine.cost.ledger import PENDING_KEY, Ledger, broker_charge
from engine.cost.prices import FREE, Price, PriceError, fmt_usd, load_prices
from harness.models.factory import Models, ModelSettings
from sandbox.broker import Broker, BrokerConfig
from tests.conftest import REPO
from tests.test_evolve import FIXED

PRICES = """
[models."meta-model"]
input = 3.0
output = 15.0

[models."task-*"]
input = 2.0
output = 8.0

[models."text-embedding-3-small"]
input = 0.5
"""

CONFIG = """
steps = {steps}
seed = 3
meta_share = 1.0
fix_rounds = 1
smoke_test = true
budget_minutes = 60
runs_dir = "{runs}"
prices = "{prices}"

[eval]
benchmark = "babaisai"
agent = "llm"
embedder = "remote"
n_train = 1
n_test = 1
repeats = 1

[sandbox]
backend = "none"
timeout_s = 300

[meta]
base_url = "{url}"
model = "meta-model"
max_tokens = 800

[task]
base_url = "{url}"
model = "task-model"
max_tokens = 32
"""


def script(request: dict) -> str:
    """The meta model plans and writes a valid design; the task model answers the first admissible action."""
    prompt = request["messages"][-1]["content"]
    if request["model"] == "meta-model":
        if "Reply with a JSON object" in prompt:
            return json.dumps({"analysis": "the parent forgets solutions", "plan": "store solved action lists"})
        return FIXED
    return first_action(prompt)


def server_bill(server) -> dict[str, tuple[int, int, int]]:
    """What the server charged, per model: (prompt tokens, completion tokens, requests), from its own rules."""
    bill: dict[str, list[int]] = {}
    for r in server.requests:
        body = r["body"]
        if r["path"].endswith("/chat/completions"):
            prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            completion = len(script(body).split())
        else:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            prompt, completion = sum(len(str(t).split()) for t in inputs), 0
        line = bill.setdefault(body["model"], [0, 0, 0])
        line[0], line[1], line[2] = line[0] + prompt, line[1] + completion, line[2] + 1
    return {m: tuple(v) for m, v in bill.items()}


def ledger_bill(charge: Charge) -> dict[str, tuple[int, int, int]]:
    bill: dict[str, list[int]] = {}
    for (_role, model), line in charge.lines.items():
        b = bill.setdefault(model, [0, 0, 0])
        b[0], b[1], b[2] = b[0] + int(line.prompt), b[1] + int(line.completion), b[2] + int(line.requests)
    return {m: tuple(v) for m, v in bill.items() if any(v)}


def dollars(bill: dict[str, tuple[int, int, int]], prices) -> float:
    return sum(prices.lookup(m).usd(p, c) for m, (p, c, _r) in bill.items())


def evolve(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "engine.evolve", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def write_config(tmp_path: Path, server, steps: int) -> Path:
    (tmp_path / "prices.toml").write_text(PRICES)
    cfg = tmp_path / "evolve.toml"
    cfg.write_text(CONFIG.format(steps=steps, runs=tmp_path / "runs", prices=tmp_path / "prices.toml",
                                 url=server.base_url))
    return cfg


def run_ledger(run_dir: Path) -> Ledger:
    with Archive.open(run_dir, lock=False) as archive:
        return Ledger.read(archive)


# ---------------------------------------------------------------------------------------------- price table
def test_price_table_exact_names_patterns_and_free_local_models(tmp_path, monkeypatch):
    table = load_prices()
    assert table.source == "packaged default"
    assert table.lookup("gpt-4o-mini") == Price(0.15, 0.60) and table.lookup("GPT-4o-mini") == Price(0.15, 0.60)
    assert table.lookup("qwen2.5-coder-0.5b") == FREE and table.lookup("Qwen2.5-Coder-7B-Instruct") == FREE
    assert table.lookup("embedded:anything-at-all") == FREE  # runs on this machine
    assert table.lookup("some-model-nobody-priced") is None
    assert table.unknown(["gpt-4o", "mystery", "hashing"]) == ["mystery"]
    own = tmp_path / "mine.toml"
    own.write_text(PRICES)
    monkeypatch.setenv("ALMA_PRICES", str(own))
    assert load_prices().lookup("task-model") == Price(2.0, 8.0)  # the environment's table
    assert load_prices(str(REPO / "engine/cost/prices.toml")).lookup("task-model") is None  # the config's wins
    assert Price(2.0, 8.0).usd(1_000_000, 500_000) == pytest.approx(6.0)
    assert [fmt_usd(v) for v in (0, 0.000012, 0.0123, 12.346, 1234.5, None)] == \
        ["$0", "$0.0000120", "$0.0123", "$12.35", "$1,234", "unknown"]


def test_a_bad_price_table_or_an_unpriced_model_under_a_budget_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[models."x"]\ninput = -1\n')
    with pytest.raises(PriceError, match=r'models\."x": input must be a number >= 0'):
        load_prices(str(bad))
    bad.write_text('[models."x"]\nprompt = 1\n')
    with pytest.raises(PriceError, match="needs `input`"):
        load_prices(str(bad))
    with pytest.raises(PriceError, match="cannot read the price table"):
        load_prices(str(tmp_path / "missing.toml"))
    config = load_config(None, {"task.base_url": "http://127.0.0.1:9/v1", "task.model": "mystery-model",
                                "budget_usd": 5.0})
    with pytest.raises(ConfigError, match="no(ne)? .*mystery-model"):
        open_prices(config)
    # the CLI: exit 2 before anything is written or spent
    runs = tmp_path / "runs"
    proc = evolve("--task-base-url", "http://127.0.0.1:9/v1", "--task-model", "mystery-model", "--budget-usd", "5",
                  "--runs-dir", str(runs), timeout=120)
    assert proc.returncode == 2 and 'models."mystery-model" with' in proc.stderr and not runs.exists()


# ---------------------------------------------------------------------------------------------- what a job paid
def test_the_broker_splits_paid_and_replayed_tokens_by_endpoint(openai_server, tmp_path):
    config = BrokerConfig(chat_base_url=openai_server.base_url, chat_model="task-model", local_chat_model=None,
                          local_embedder=None, embed_model="text-embedding-3-small", cassette_dir=tmp_path / "c",
                          backoff_base=0.01)
    names = {"task": "task-model", "embed": "text-embedding-3-small", "meta": "meta-model"}
    openai_server.script_chat(script)

    def job(broker, name):
        from tests.test_broker import post

        session = broker.open_session(name)
        assert post(session, {"messages": [{"role": "user", "content": "go north then west"}]})[0] == 200
        assert post(session, {"input": ["one two three", "four"]}, endpoint="embeddings")[0] == 200
        return session.usage()

    with Broker(config) as broker:
        first = job(broker, "j1")
        assert ledger_bill(broker_charge(first, names)) == server_bill(openai_server) == {
            "task-model": (4, 1, 1), "text-embedding-3-small": (4, 0, 1)}
        again = job(broker, "j2")  # the same requests: the cassette answers, the server sees nothing new
    assert len(openai_server.requests) == 2 and again["cassette_hits"] == 2
    assert not broker_charge(again, names)  # paid when recorded
    assert broker_charge(again, names, include_replayed=True) == broker_charge(first, names)  # a restarted job


def test_meta_tokens_of_a_proposal_cut_short_stay_on_the_ledger(openai_server, tmp_path):
    """The meta agent's calls are kept as pending cost after each one; a crash before the proposal is archived
    leaves them there, and the next engine on the run puts them on the ledger."""
    openai_server.script_chat(script)
    (tmp_path / "prices.toml").write_text(PRICES)
    config = load_config(None, {"meta.base_url": openai_server.base_url, "meta.model": "meta-model",
                                "prices": str(tmp_path / "prices.toml")})
    run_dir = tmp_path / "run"
    with Archive.open(run_dir, lock=True) as archive, \
            Models(ModelSettings(chat_base_url=openai_server.base_url, chat_model="meta-model",
                                 embedder="hashing", max_attempts=1)) as models:
        governor = CostGovernor(config, archive, meta_models=models, log=lambda _m: None)
        governor.begin_proposal(4)
        chat = governor.metered_chat(models.chat)
        chat.chat([{"role": "user", "content": "analyse this design please"}])
        chat.chat([{"role": "system", "content": "be brief"}, {"role": "user", "content": "now implement it"}])
        assert archive.get_meta(PENDING_KEY)["step"] == 4
        # the engine dies here; the next one on the run directory:
        CostGovernor(config, archive, log=lambda _m: None)
        ledger = Ledger.read(archive)
        assert archive.get_meta(PENDING_KEY) is None and not ledger.pending
    [entry] = ledger.entries
    assert (entry.what, entry.step, entry.flags) == ("proposal", 4, frozenset({"interrupted"}))
    bill = server_bill(openai_server)
    assert ledger_bill(entry.charge) == bill and bill["meta-model"][2] == 2


# ---------------------------------------------------------------------------------------------- the estimate
def test_the_prior_follows_the_protocol_and_calibration_replaces_it(tmp_path):
    base = {"eval.agent": "llm", "task.base_url": "http://127.0.0.1:9/v1", "task.model": "task-model"}
    small, big = load_config(None, {**base, "eval.n_test": 2}), load_config(None, {**base, "eval.n_test": 6})
    assert episodes(small) == 8 and episodes(big) == 12 and episodes(small, "smoke") == 2
    ratio = prior_evaluation(big).tokens / prior_evaluation(small).tokens
    assert ratio == pytest.approx(12 / 8)
    heuristic = load_config(None, {})
    assert not prior_evaluation(heuristic, "class NoMemory: pass")  # calls no model
    embeds = prior_evaluation(heuristic, "await self.toolkit.embed(texts)").tokens_by_role()
    assert embeds["embed"] > 0 and embeds["task"] == 0
    # which steps the meta agent takes is drawn from the run seed: none, all, or the same ones every time
    assert meta_steps(load_config(None, {"meta_share": 0.0}), range(1, 9)) == []
    assert meta_steps(load_config(None, {"meta_share": 1.0}), range(1, 9)) == list(range(1, 9))
    half = load_config(None, {"meta_share": 0.5, "seed": 7})
    drawn = meta_steps(half, range(1, 41))
    assert drawn == meta_steps(half, range(1, 41)) and 5 < len(drawn) < 35
    # recorded evaluations replace the prior: a design's own, else the mean (or, conservatively, the largest)
    (tmp_path / "prices.toml").write_text(PRICES)
    config = load_config(None, {**base, "prices": str(tmp_path / "prices.toml")})
    prices = open_prices(config)
    from engine.cost.ledger import record_cost

    with Archive.open(tmp_path / "run", lock=True) as archive:
        for design, tokens in (("s1", 1000), ("s2", 3000)):
            record_cost(archive, Charge().add("task", "task-model", tokens, 10, 5), what="evaluation", step=0,
                        phase="seeding", design=design, split="id")
        est = Estimator(config, prices, Ledger.read(archive), {"s1": "", "s2": "", "s3": ""})
    assert est.calibrated and est.evaluation("s2").tokens == 3010
    assert est.evaluation("s3").tokens == 2010 and est.evaluation("s3", conservative=True).tokens == 3010
    run = est.run()
    assert run.spent.tokens == 4020 and run.seeding.tokens == 1010 + 3010 + 2010
    assert "calibrated from 2 evaluations" in run.basis


# ---------------------------------------------------------------------------------------------- end to end
def test_a_runs_costs_match_the_servers_exact_token_counts(tmp_path, openai_server):
    openai_server.script_chat(script)
    cfg = write_config(tmp_path, openai_server, steps=2)
    proc = evolve("--config", str(cfg), "--name", "money")
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    # the estimate comes before anything is spent, then calibrated after seeding, then in every step's line
    assert err.index("cost estimate (prior") < err.index("sandbox backend") < err.index("seed no_memory")
    assert "cost estimate (calibrated from 5 evaluations" in err and err.count(" spent, run ~$") == 2
    run_dir = tmp_path / "runs" / "money"
    prices = load_prices(str(tmp_path / "prices.toml"))
    ledger = run_ledger(run_dir)
    total = ledger.total()
    bill = server_bill(openai_server)
    assert set(bill) == {"meta-model", "task-model", "text-embedding-3-small"}
    assert ledger_bill(total) == bill  # every token the server charged, no more, none missing
    usd = dollars(bill, prices)
    assert total.usd(prices) == pytest.approx(usd, rel=1e-12) and usd > 0
    # per phase, step and design: they add up to the total
    phases = ledger.by_phase()
    assert all(phases[p] for p in ("seeding", "steps", "heldout"))
    assert sum(c.usd(prices) for c in phases.values()) == pytest.approx(usd)
    designless = sum((e.charge for e in ledger.entries if e.design is None), Charge())  # proposals that gave nothing
    assert sum(c.usd(prices) for c in ledger.by_design().values()) + designless.usd(prices) == pytest.approx(usd)
    assert set(ledger.by_step()) <= {1, 2} and ledger.by_step()
    assert sum(c.usd(prices) for c in ledger.by_step().values()) == pytest.approx(phases["steps"].usd(prices))
    # the meta agent's tokens and its smoke evaluations are the proposals'
    proposals = [e for e in ledger.entries if e.what == "proposal"]
    assert proposals and sum((e.charge for e in proposals), Charge()).tokens_by_role()["meta"] == sum(bill["meta-model"][:2])
    # the calibrated seeding line shows what seeding cost
    calibrated = err.split("cost estimate (calibrated")[1]
    seeding_row = next(line for line in calibrated.splitlines() if "seeding (5 evaluations)" in line)
    assert seeding_row.endswith(f"~{fmt_usd(phases['seeding'].usd(prices))}")
    # heldout.json and the report carry the same figures
    doc = json.loads((run_dir / "heldout.json").read_text())
    assert doc["costs"]["usd"] == pytest.approx(usd) and doc["costs"]["prices"] == str(tmp_path / "prices.toml")
    assert {s["step"] for s in doc["costs"]["steps"]} == set(ledger.by_step())
    per_design = ledger.by_design()
    for row in doc["designs"]:
        assert row["cost"]["usd"] == pytest.approx(per_design.get(row["id"], Charge()).usd(prices))
    html = (run_dir / "report.html").read_text()
    assert f'<b id="usd-total">{fmt_usd(usd)}</b>' in html and 'id="usd-steps"' in html


def test_budget_usd_is_never_passed_and_a_resume_goes_on(tmp_path, openai_server):
    openai_server.script_chat(script)
    cfg = write_config(tmp_path, openai_server, steps=1)
    run_dir = tmp_path / "runs" / "capped"
    prices = load_prices(str(tmp_path / "prices.toml"))

    def spent() -> float:
        return dollars(server_bill(openai_server), prices)

    # 1. a budget below any evaluation: nothing starts, nothing is spent, the run ends cleanly
    first = evolve("--config", str(cfg), "--name", "capped", "--budget-usd", "0.0001")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "USD budget reached while seeding: 5 seed(s) not evaluated" in first.stderr
    assert "would pass the USD budget" in first.stderr and openai_server.requests == []
    # 2. resumed with room for the seeds only (no step: --steps 0): seeds and their held-out evaluations
    seeded = evolve("--resume", str(run_dir), "--steps", "0", "--budget-usd", "1000")
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    s0 = spent()
    assert s0 > 0 and run_ledger(run_dir).total().usd(prices) == pytest.approx(s0)
    # what the governor will reserve for step 1: the step at its most and the held-out evaluation of its child
    config = load_config(run_dir / "config.toml", {"steps": 1})
    with Archive.open(run_dir, lock=False) as archive:
        seeds = {d.id: d.source for d in archive.designs() if d.proposer == "seed"}
        est = Estimator(config, prices, Ledger.read(archive), seeds)
    need = (est.step(1, conservative=True) + est.heldout_reserve()).usd(prices)
    assert need > 0
    # 3. a budget just short of it: step 1 does not start, nothing more is spent
    short = evolve("--resume", str(run_dir), "--steps", "1", "--budget-usd", repr(s0 + need * 0.99))
    assert short.returncode == 0, short.stderr[-3000:]
    assert "USD budget reached" in short.stderr and "the next meta-agent step" in short.stderr
    assert spent() == pytest.approx(s0)
    # 4. just enough: step 1 runs, and the run stays under the budget
    budget = s0 + need * 1.01
    done = evolve("--resume", str(run_dir), "--steps", "1", "--budget-usd", repr(budget))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "USD budget reached" not in done.stderr
    with Archive.open(run_dir, lock=False) as archive:
        assert [e.step for e in archive.events("step_done")] == [1]
        assert not archive.running_evaluations()  # nothing left half-done
        ledger = Ledger.read(archive)
    assert s0 < spent() <= budget
    assert ledger_bill(ledger.total()) == server_bill(openai_server)  # across four engines and three resumes


def test_no_fix_round_starts_that_would_pass_the_budget(openai_server, tmp_path):
    """Between fix rounds the governor weighs what is spent (this proposal's calls included, as paid), one more
    round at the price of the proposal's largest call, the child's evaluation and the held-out reserve."""
    openai_server.script_chat(script)
    (tmp_path / "prices.toml").write_text(PRICES)
    config = load_config(None, {"meta.base_url": openai_server.base_url, "meta.model": "meta-model",
                                "task.base_url": openai_server.base_url, "task.model": "task-model",
                                "prices": str(tmp_path / "prices.toml"), "budget_usd": 1000.0, "steps": 1,
                                "smoke_test": False})
    from engine.cost.ledger import record_cost

    logged: list[str] = []
    with Archive.open(tmp_path / "run", lock=True) as archive, \
            Models(ModelSettings(chat_base_url=openai_server.base_url, chat_model="meta-model",
                                 embedder="hashing", max_attempts=1)) as models:
        archive.add_design("s1", "class S: pass", proposer="seed", name="s1", generation=0, step=0)
        record_cost(archive, Charge().add("task", "task-model", 1000, 10, 5), what="evaluation", step=0,
                    phase="seeding", design="s1", split="id")
        governor = CostGovernor(config, archive, meta_models=models, log=logged.append)
        governor.begin_proposal(1)
        governor.metered_chat(models.chat).chat([{"role": "user", "content": "write the design"}])
        assert not governor.meta_should_stop()  # $1000 leaves room
        spent = governor.spent().usd(load_prices(str(tmp_path / "prices.toml")))
        assert spent == pytest.approx(dollars(server_bill(openai_server), load_prices(str(tmp_path / "prices.toml")))
                                      + 1000 * 2e-6 + 10 * 8e-6)
        governor.budget = spent * 1.001  # one more round of the same size cannot fit
        assert governor.meta_should_stop()
        assert [e.payload["stopped"] for e in archive.events("budget_usd")] == ["fix_round"]
    assert logged and "no further fix round" in logged[-1]
