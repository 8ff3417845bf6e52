"""Harness jobs end to end through the job layer (and the CLI): result validated on the host, outcome
refinement, infrastructure retries, model calls through the broker, cassette replay of a whole job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.suites import prepare_suite
from sandbox.broker import Broker, BrokerConfig, Budget
from sandbox.job import JobReport, JobRunner
from sandbox.limits import Limits
from sandbox.outcome import Outcome
from tests.test_sandbox_backends import make_backend, unavailable

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-alma-job-fake-key-777"

ASKING_DESIGN = '''
from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class Asking(MemoryDesign):
    """Asks the LLM and embeds the goal on every retrieve; remembers nothing."""

    def __init__(self, toolkit: Toolkit):
        super().__init__(toolkit)

    async def retrieve(self, task: Task) -> dict:
        note = await self.toolkit.llm.complete("hint for: " + task.goal, temperature=0.7)
        vectors = await self.toolkit.embedder.embed([task.goal])
        return {"text": note, "dim": len(vectors[0])}

    async def update(self, episode: Episode) -> None:
        return None
'''


def spec(design_source: str, name: str = "design", **models) -> JobSpec:
    return JobSpec(job_id=f"t-{uuid.uuid4().hex[:10]}", design=DesignSpec(name=name, source=design_source),
                   models=ModelSpec(**{"embedder": "hashing", **models}),
                   protocol=ProtocolSpec(n_train=1, n_test=1, repeats=1, seed=0, design_call_timeout_s=30))


def seed(name: str) -> str:
    return (REPO / "seeds" / f"{name}.py").read_text()


@pytest.fixture(scope="module", params=["bubblewrap", "docker"])
def backend(request):
    if request.param == "docker":
        from sandbox.backend import docker_available

        if not docker_available():
            unavailable("no Docker daemon answers (scripts/start_docker.sh starts one)")
        import docker

        from sandbox.image import build_image, current_tag, image_exists

        if os.environ.get("CI", "").lower() == "true" or os.environ.get("ALMA_TEST_BUILD_IMAGE") == "1":
            build_image()
        elif not image_exists(docker.from_env(), current_tag()):
            unavailable(f"the evaluation image {current_tag()} is not built (python -m sandbox.image build)")
    b = make_backend(request.param)
    yield b
    b.close()


@pytest.fixture
def runner_for(backend, tmp_path):
    brokers = []

    def make(**broker_config) -> JobRunner:
        broker = Broker(BrokerConfig(**{"local_embedder": "hashing", "local_chat_model": None, "chat_model": "test-model",
                                        "backoff_base": 0.01, **broker_config}))
        brokers.append(broker)
        return JobRunner(backend, broker, limits=Limits(wall_s=120, memory_mb=1024), retry_wait_s=0.01,
                         prepare=prepare_suite,
                         cache_root=Path(os.environ["ALMA_CACHE_DIR"]), work_root=tmp_path)

    yield make
    for b in brokers:
        b.close()


def test_harness_job_ok_with_validated_result(runner_for):
    job = spec(seed("no_memory"), "no_memory")
    report = runner_for().run(job)
    assert report.outcome is Outcome.OK, (report.detail, report.stderr_tail)
    assert report.result is not None and report.result.job_id == job.job_id
    assert len(report.result.episodes) == 2 and report.scored and report.attempts == 1


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", ["alfworld", "minihack", "babaisai"])
def test_every_benchmark_runs_in_the_sandbox(runner_for, benchmark):
    """The image (Docker) and the host venv (bubblewrap) both hold every benchmark; its suite is prepared on
    the host and mounted read-only, and a seed design with memory plays it end to end."""
    job = spec(seed("trajectory_retrieval"), "trajectory_retrieval").model_copy(update={"benchmark": benchmark})
    report = runner_for().run(job)
    assert report.outcome is Outcome.OK, (report.detail, report.stderr_tail)
    assert report.result.benchmark == benchmark
    episodes = report.result.episodes
    assert [e.phase for e in episodes] == ["collect", "deploy"]
    assert all(e.task_id.startswith(f"{benchmark}/") and e.steps >= 1 for e in episodes)


def test_design_that_does_not_load_is_design_error(runner_for):
    report = runner_for().run(spec((REPO / "tests" / "bad_designs" / "syntax_error.py").read_text()))
    assert report.outcome is Outcome.DESIGN_ERROR and report.exit_code == 3 and report.result is None
    assert report.scored


def test_model_calls_go_through_the_broker_and_the_key_stays_out(runner_for, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    runner = runner_for(chat_base_url=openai_server.base_url)
    report = runner.run(spec(ASKING_DESIGN, chat_model="test-model", embedder="remote"))
    assert report.outcome is Outcome.OK, (report.detail, report.stderr_tail)
    assert report.broker_usage["requests"] >= 4  # one chat + one embedding per retrieve, 2 episodes
    retrieved = [e.retrieved for e in report.result.episodes if e.retrieved]
    assert retrieved and all(r["text"].startswith("reply to: hint for") and r["dim"] == 256 for r in retrieved)
    assert FAKE_KEY not in report.model_dump_json()


def test_whole_job_replays_from_the_cassette_with_no_upstream(runner_for, openai_server, tmp_path):
    counter = iter(range(1000))
    openai_server.script_chat(lambda req: f"sampled hint {next(counter)}")
    job = spec(ASKING_DESIGN, chat_model="test-model")
    cassette = tmp_path / "cassette"
    first = runner_for(chat_base_url=openai_server.base_url, cassette_dir=cassette, cassette_mode="record").run(job)
    assert first.outcome is Outcome.OK, first.stderr_tail
    calls = len(openai_server.requests)
    again = runner_for(cassette_dir=cassette, cassette_mode="replay").run(job)
    assert again.outcome is Outcome.OK, (again.detail, again.stderr_tail)
    assert len(openai_server.requests) == calls
    assert [e.retrieved for e in again.result.episodes] == [e.retrieved for e in first.result.episodes]
    assert again.broker_usage["cassette_hits"] == again.broker_usage["requests"]


def test_budget_exhaustion_is_a_clear_failure_not_a_hang(runner_for, openai_server):
    runner = runner_for(chat_base_url=openai_server.base_url)
    runner.budget = Budget(max_requests=1)
    report = runner.run(spec(ASKING_DESIGN, chat_model="test-model"))
    assert report.wall_s < 60
    assert any(e.get("event") == "budget_exceeded" for e in report.events)


@pytest.mark.parametrize("code, outcome, attempts", [
    ("import sys; sys.exit(4)", Outcome.INFRA_ERROR, 3),
    ("import sys; sys.exit(3)", Outcome.DESIGN_ERROR, 1),
    ("pass", Outcome.CRASHED, 1),
    ("import os; os.symlink('/job/job.json', '/out/result.json')", Outcome.CRASHED, 1),
])
def test_outcome_refinement_and_retries(runner_for, code, outcome, attempts):
    report = runner_for().run(spec(seed("no_memory")), command=["python", "-c", code])
    assert (report.outcome, report.attempts) == (outcome, attempts), report.detail
    assert report.scored is (outcome is not Outcome.INFRA_ERROR)


def test_cli_runs_one_isolated_job(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.run", "--backend", "bubblewrap", "--design", str(REPO / "seeds" /
         "no_memory.py"), "--train", "1", "--test", "1", "--repeats", "1", "--embedder", "hashing",
         "--timeout", "120", "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    if proc.returncode == 2 and "bubblewrap" in proc.stderr:
        unavailable(proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "outcome=ok score=" in proc.stdout
    report = JobReport.model_validate(json.loads(out.read_text()))
    assert report.outcome is Outcome.OK and report.backend == "bubblewrap"


def test_cli_exits_nonzero_unless_ok(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.run", "--backend", "bubblewrap", "--design", str(REPO / "tests" /
         "bad_designs" / "syntax_error.py"), "--train", "1", "--test", "1", "--repeats", "1", "--embedder",
         "hashing", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1 and "outcome=design_error" in proc.stdout, proc.stdout + proc.stderr
