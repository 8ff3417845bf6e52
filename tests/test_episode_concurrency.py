"""Concurrent deployment episodes from the engine: ``eval.episode_concurrency`` (``--episode-concurrency``)
reaches the job spec, and a batched evaluation played 4 episodes at a time gives exactly the per-episode
results of one at a time (so the evaluation cache may answer one with the other). Played on BabaIsAI (fast,
pure Python) through the engine's Evaluator with the ``none`` backend."""

from __future__ import annotations

from engine.code.genome import Genome
from engine.config import load_config
from engine.evolve import build_parser, overrides
from engine.search.evalcache import cache_key
from engine.search.evaluator import Evaluator
from sandbox.outcome import Outcome
from tests.conftest import REPO

#: shows the actions of every collected episode whose goal shares a word with the task's: every deployment
#: episode reads the file collection wrote (several at once when episodes run concurrently)
ACTIONS_MEMORY = '''
import json

from harness.design import MemoryDesign


class ActionsMemory(MemoryDesign):
    def _path(self):
        return self.toolkit.scratch_dir / "episodes.jsonl"

    async def retrieve(self, task):
        if not self._path().exists():
            return {}
        words = set(task.goal.lower().split())
        lines = []
        for line in self._path().read_text().splitlines():
            episode = json.loads(line)
            if words & set(episode["goal"].lower().split()):
                lines.append(episode["goal"] + ": " + "; ".join(episode["actions"]))
        return {"text": "\\n".join(lines)}

    async def update(self, episode):
        with self._path().open("a") as f:
            f.write(json.dumps({"goal": episode.task.goal, "actions": [s.action for s in episode.steps]}) + "\\n")
'''


def config(tmp_path, episode_concurrency: int | None):
    args = build_parser().parse_args(["--backend", "none", "--runs-dir", str(tmp_path)]
                                     + (["--episode-concurrency", str(episode_concurrency)]
                                        if episode_concurrency else []))
    base = tmp_path / "config.toml"
    base.write_text('[eval]\nbenchmark = "babaisai"\nn_train = 3\nn_test = 4\nrepeats = 2\nembedder = "hashing"\n')
    return load_config(base, overrides(args))


def test_the_flag_reaches_the_job_spec_and_not_the_cache_key(tmp_path):
    genome = Genome.from_file(REPO / "seeds" / "trajectory_retrieval.py")
    assert config(tmp_path, None).eval.episode_concurrency == 1
    specs = {}
    for n in (1, 4):
        evaluator = Evaluator(config(tmp_path, n), tmp_path / f"run{n}")
        try:
            specs[n] = evaluator.job_spec(genome, "id")
            assert evaluator.job_spec(genome, "heldout").protocol.concurrency == n
        finally:
            evaluator.close()
    assert specs[1].protocol.concurrency == 1 and specs[4].protocol.concurrency == 4
    assert cache_key(specs[1]) == cache_key(specs[4])
    assert cache_key(specs[1]) != cache_key(specs[1].model_copy(update={"protocol": specs[1].protocol.model_copy(
        update={"repeats": 3})}))


def test_four_episodes_at_once_give_the_same_results_as_one(tmp_path):
    genome = Genome.from_text(ACTIONS_MEMORY)
    results = {}
    for n in (1, 4):
        evaluator = Evaluator(config(tmp_path, n), tmp_path / f"run{n}")
        try:
            report, _ = evaluator.evaluate(genome, "id")
        finally:
            evaluator.close()
        assert report.outcome is Outcome.OK, report.detail + report.stderr_tail
        results[n] = report.result
    one, four = results[1], results[4]
    assert (one.score, one.stderr, one.progress) == (four.score, four.stderr, four.progress)

    def episodes(result):
        return [(e.phase, e.task_id, e.repeat, e.won, e.steps, e.progress, e.actions, e.retrieved, e.error)
                for e in result.episodes]

    assert episodes(one) == episodes(four)
    assert len([e for e in one.episodes if e.phase == "deploy"]) == 8
    assert any(e.retrieved.get("text") for e in one.episodes if e.phase == "deploy")  # memory was read


def test_remote_latency_server_counts_every_token_once_through_retries(tmp_path):
    """benchmarks/remote_latency.py's server with 429s and timeouts, one tiny LLM-agent evaluation (backend none,
    2 episodes at once): every failed attempt is retried and the broker's tokens equal the server's sums over its
    successful replies."""
    import argparse

    from benchmarks import remote_latency as rl
    from benchmarks.latency_server import LatencyServer

    args = argparse.Namespace(benchmark="babaisai", train=1, test=2, seed=0, backend="none", client_timeout=0.5,
                              max_attempts=10, broker_concurrency=None)
    genome = Genome.from_text(rl.DESIGN)
    with LatencyServer(latency_s=0.01, error_rate=0.25, timeout_rate=0.1, hang_s=1.0, seed=3) as server:
        config = rl.make_config(args, server.base_url, 2)
        evaluator = rl.make_evaluator(args, config, tmp_path / "run")
        spec = evaluator.job_spec(genome, "id")
        spec.protocol.step_limit = 3  # every spec the benchmark's run_batch asks for: this one, 3 steps an episode
        evaluator.job_spec = lambda *a, tag="", **k: spec.model_copy(update={"job_id": f"latency{tag}"})
        try:
            with rl.job_executor("local", config, tmp_path / "run", evaluator=evaluator) as jobs:
                _, done = rl.run_batch(jobs, evaluator, genome, 1, "t", tmp_path / "out")
        finally:
            evaluator.close()
        acc = rl.accounting(server, 0, done)
        s = server.summary()
    assert done[0].report.result.n_train == 1 and len(done[0].report.result.episodes) == 3
    assert s["ok"] == 3 * 3 + 1 == acc["broker"]["chat_requests"] + acc["broker"]["embed_requests"]
    assert s["attempts"] - s["ok"] == s["429"] + s["timeout"] and s["429"] and s["timeout"]  # seed 3: both early
    assert acc["ok"], acc["pairs"]
    assert acc["broker"]["chat_prompt_tokens"] > 0 and acc["broker"]["embed_tokens"] > 0
    collect, deploy = rl.per_episode_calls(server.records, done[0].nonce)
    assert sorted(collect.values()) == [4] and list(deploy.values()) == [3, 3]


def test_remote_latency_steady_state_keeps_k_in_flight(tmp_path):
    """benchmarks/remote_latency.py --steady: k evaluations in flight, one submitted as each finishes, 3 k in all;
    the window is measured between the k-th and the 2k-th completion and every token is still counted once."""
    import argparse

    from benchmarks import remote_latency as rl
    from benchmarks.latency_server import LatencyServer

    args = argparse.Namespace(benchmark="babaisai", train=1, test=1, seed=0, backend="none", client_timeout=5.0,
                              max_attempts=3, broker_concurrency=None)
    genome = Genome.from_text(rl.DESIGN)
    with LatencyServer(latency_s=0.05) as server:
        config = rl.make_config(args, server.base_url, 1)
        evaluator = rl.make_evaluator(args, config, tmp_path / "run")
        spec = evaluator.job_spec(genome, "id")
        spec.protocol.step_limit = 2
        evaluator.job_spec = lambda *a, tag="", **k: spec.model_copy(update={"job_id": f"steady{tag}"})
        try:
            with rl.job_executor("local", config, tmp_path / "run", evaluator=evaluator, workers=2) as jobs:
                window, done = rl.run_steady(jobs, evaluator, genome, 2, "s", tmp_path / "out")
        finally:
            evaluator.close()
        acc = rl.accounting(server, 0, done)
        peak = server.peak_active
    assert len(done) == 6 and len({d.key for d in done}) == 6 and len({d.nonce for d in done}) == 6
    assert 0 < window < max(d.wall_s for d in done) * 3
    assert peak <= 2  # one request at a time per evaluation, two evaluations in flight
    assert acc["ok"], acc["pairs"]
