"""Plug-in benchmarks and agents: resolution by module path and entry point, the contract checker's violation
kinds, the Python APIs, the sandbox's access to a plug-in, and the Support Desk example end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.agents.factory import make_agent
from harness.agents.prompts import memory_notes
from harness.conformance import KINDS, check_benchmark
from harness.envs import get_benchmark
from harness.errors import PluginError
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
from harness.plugins import import_locations, known_names, load_agent_class, resolve
from tests.conftest import REPO

ENVS = "tests.plugin_fixtures.envs"
AGENTS = "tests.plugin_fixtures.agents"
EXAMPLE = REPO / "examples" / "support_desk"
SUPPORT_DESK = "support_desk.envs:SupportDesk"


def seed_source(name: str) -> str:
    return (REPO / "seeds" / f"{name}.py").read_text()


@pytest.fixture
def example_importable(monkeypatch):
    """The example on sys.path, as `PYTHONPATH=examples/support_desk` would put it (not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield
    for name in [m for m in sys.modules if m == "support_desk" or m.startswith("support_desk.")]:
        sys.modules.pop(name)


# ------------------------------------------------------------------------------------------------ resolution
def test_module_path_loads_a_benchmark_and_an_agent():
    bench = get_benchmark(f"{ENVS}:Lamp")
    assert type(bench).__name__ == "Lamp" and bench.name == "lamp"
    origin = resolve("benchmark", f"{ENVS}:Lamp")
    assert origin.via == "module path" and origin.module == ENVS and not origin.builtin
    assert load_agent_class(f"{AGENTS}:FirstAction").__name__ == "FirstAction"
    assert resolve("benchmark", "babaisai").builtin and import_locations("benchmark", "babaisai") == []
    [loc] = import_locations("benchmark", f"{ENVS}:Lamp")
    assert loc.module == "tests" and loc.path == REPO / "tests" and loc.root == REPO


@pytest.mark.parametrize("name, words", [
    ("nethack9", ["unknown benchmark 'nethack9'", "textworld", "module path"]),
    ("no_such_pkg.envs:X", ["cannot be imported", "pip install", "PYTHONPATH"]),
    (f"{ENVS}:Nope", ["has no attribute 'Nope'"]),
    (f"{ENVS}:_COLORS", ["not a class"]),
    (f"{ENVS}:NeedsArguments", ["construct without arguments", "size"]),
])
def test_names_that_do_not_load_say_what_to_do(name, words):
    with pytest.raises(PluginError) as err:
        get_benchmark(name)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_names_are_validated_in_job_specs_and_configs():
    from engine.config import EvalConfig

    assert AgentSpec(kind=f"{AGENTS}:FirstAction").kind.endswith(":FirstAction")
    assert EvalConfig(agent="my_pkg.agents:Mine").agent == "my_pkg.agents:Mine"
    for bad in ("two words", "pkg:", "a/b:C", ""):
        with pytest.raises(ValidationError):
            AgentSpec(kind=bad)
        with pytest.raises(ValidationError):
            EvalConfig(agent=bad)


def _fake_distribution(root: Path) -> None:
    info = root / "lamp_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lamp-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[alma_engine.benchmarks]\nlamp_ep = {ENVS}:Lamp\n\n[alma_engine.agents]\nfirst = {AGENTS}:FirstAction\n")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n{info.name}/RECORD,,\n")


def test_entry_points_register_names(tmp_path, monkeypatch):
    _fake_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    origin = resolve("benchmark", "lamp_ep")
    assert (origin.via, origin.target, origin.distribution) == ("entry point", f"{ENVS}:Lamp", "lamp-plugins")
    assert "lamp_ep" in known_names("benchmark") and "first" in known_names("agent")
    assert get_benchmark("lamp_ep").name == "lamp"
    agent = make_agent(AgentSpec(kind="first"), seed=3)
    assert type(agent).__name__ == "FirstAction" and agent.seed == 3
    assert memory_notes("first") == "The first-action agent ignores memory."
    # a sandbox is given the package and the distribution's metadata (where its entry points are read)
    locations = import_locations("benchmark", "lamp_ep")
    assert [loc.path for loc in locations] == [REPO / "tests", tmp_path / "lamp_plugins-1.0.dist-info"]


def test_plugin_agents_get_only_the_arguments_they_declare():
    from tests.plugin_fixtures.agents import MemoryFollower

    agent = make_agent(AgentSpec(kind=f"{AGENTS}:MemoryFollower", history=5), seed=11)
    assert isinstance(agent, MemoryFollower) and MemoryFollower.seeds[-1] == 11
    assert type(make_agent(AgentSpec(kind="random"), seed=1)).__name__ == "RandomAgent"
    with pytest.raises(PluginError, match="needs a chat model"):
        make_agent(AgentSpec(kind="llm"), seed=0)
    assert "docstring" not in memory_notes(f"{AGENTS}:MemoryFollower")
    assert memory_notes(f"{AGENTS}:MemoryFollower").startswith("Takes the first admissible action")


# ------------------------------------------------------------------------------------------------ the checker
def test_a_conforming_benchmark_passes():
    report = check_benchmark(get_benchmark(f"{ENVS}:Lamp"))
    assert report.ok, [v.text() for v in report.violations]
    assert report.played["heuristic"][0] == 6 and report.played["random"][0] == 6


@pytest.mark.parametrize("cls, kind", [
    ("WrongResetType", "reset_type"), ("WrongStepType", "step_type"),
    ("NondeterministicSuite", "suite_determinism"), ("NondeterministicReset", "reset_determinism"),
    ("MissingSplit", "splits"), ("HugeObservation", "observation_size"), ("EmptyActions", "admissible_actions"),
    ("NonStrActions", "admissible_actions"), ("NeverDone", "never_done"), ("DuplicateIds", "task_ids"),
    ("RaisesOnInadmissible", "inadmissible_action"), ("NoName", "attributes"),
])
def test_each_violation_kind_is_found(cls, kind):
    bench = getattr(__import__(ENVS, fromlist=[cls]), cls)()
    report = check_benchmark(bench)
    assert kind in report.kinds(), [v.text() for v in report.violations]
    assert kind in KINDS and all(v.message for v in report.violations)


def test_an_agent_that_returns_inadmissible_actions_is_reported():
    from tests.plugin_fixtures.agents import Liar

    report = check_benchmark(get_benchmark(f"{ENVS}:Lamp"), agents={"liar": lambda s: Liar()})
    assert report.kinds() == {"agent_action", "never_done"}


def test_check_plugin_cli_exit_codes():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "harness.check_plugin", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120)

    bad = run(f"{ENVS}:WrongResetType")
    assert bad.returncode == 1 and "VIOLATION reset_type" in bad.stdout and "fix: return" in bad.stdout
    good = run(f"{ENVS}:Lamp", "--agent", f"{AGENTS}:FirstAction")
    assert good.returncode == 0 and "OK: no contract violation" in good.stdout, good.stdout + good.stderr
    assert "FirstAction agent" in good.stdout
    missing = run("nethack9")
    assert missing.returncode == 2 and "unknown benchmark" in missing.stderr


# ------------------------------------------------------------------------------------------------ sandbox access
def _job(benchmark: str, design: str = "no_memory", agent: str = "heuristic", **protocol) -> JobSpec:
    return JobSpec(job_id="plug", design=DesignSpec(name=design, source=seed_source(design)), benchmark=benchmark,
                   agent=AgentSpec(kind=agent), models=ModelSpec(embedder="hashing"),
                   protocol=ProtocolSpec(**{"n_train": 2, "n_test": 2, "repeats": 1, **protocol}))


def test_plugin_access_per_backend(example_importable):
    from sandbox.plugins import PLUGINS_TARGET, PluginUnavailable, plugin_access, plugin_projects

    class Bwrap:
        name, isolated = "bubblewrap", True
        runtime_roots, harness_dir = [sys.prefix], str(REPO / "harness")

    job = _job(SUPPORT_DESK, agent=f"{AGENTS}:FirstAction")
    access = plugin_access(Bwrap(), job)
    assert [(m.source, m.target, m.read_only) for m in access.mounts] == [
        (EXAMPLE / "support_desk", f"{PLUGINS_TARGET}/0/support_desk", True),
        (REPO / "tests", f"{PLUGINS_TARGET}/1/tests", True)]
    assert access.env["PYTHONPATH"] == f"/opt/alma:{PLUGINS_TARGET}/0:{PLUGINS_TARGET}/1"
    assert plugin_access(Bwrap(), _job("babaisai")).mounts == []

    class NoSandbox:
        name, isolated = "none", False

    assert plugin_access(NoSandbox(), job).env["PYTHONPATH"] == f"{EXAMPLE}:{REPO}"
    assert plugin_projects(job) == [EXAMPLE]  # not alma-engine's own project for tests/

    class Image:
        def __init__(self, labels):
            self.labels = labels

    class Docker:
        name, isolated, image = "docker", True, "alma-eval:test"

        def __init__(self, modules):
            labels = {"org.alma-engine.plugins": json.dumps(modules)}
            self.client = type("C", (), {"images": type("I", (), {"get": lambda _s, _t: Image(labels)})()})()

    assert plugin_access(Docker(["support_desk"]), _job(SUPPORT_DESK)).mounts == []
    with pytest.raises(PluginUnavailable) as err:
        plugin_access(Docker([]), _job(SUPPORT_DESK))
    assert f"build_image.sh --with {EXAMPLE}" in str(err.value) and "ALMA_IMAGE_WITH" in str(err.value)


def test_image_plugins_hash_and_wheel(tmp_path):
    from sandbox.image import content_hash
    from sandbox.image_plugins import build_wheels, project_files, project_from_dir

    project = project_from_dir(EXAMPLE)
    assert project.name == "alma-support-desk" and project.requires == ()
    assert all("egg-info" not in str(p) and "__pycache__" not in str(p) for p in project_files(project))
    pins = ["numpy==1.0"]
    assert content_hash(pins, []) != content_hash(pins, [project])
    assert content_hash(pins, [project]) == content_hash(pins, [project])
    assert build_wheels([project], tmp_path) == ["support_desk"]
    assert not (EXAMPLE / "build").exists()


# ------------------------------------------------------------------------------------------------ the example
def test_support_desk_conforms(example_importable):
    report = check_benchmark(get_benchmark(SUPPORT_DESK), n_train=6, n_test=4)
    assert report.ok, [v.text() for v in report.violations]


def test_support_desk_memory_matters_in_process(example_importable):
    from harness.api import evaluate

    kw = dict(benchmark=SUPPORT_DESK, n_train=12, n_test=8, repeats=1, embedder="hashing", seed=0)
    none = evaluate(REPO / "seeds" / "no_memory.py", **kw)
    traj = evaluate(seed_source("trajectory_retrieval"), name="trajectory_retrieval", **kw)
    assert none.benchmark == SUPPORT_DESK and traj.design == "trajectory_retrieval"
    assert none.score < traj.score and traj.score >= 0.75, (none.score, traj.score)
    ood = evaluate(REPO / "seeds" / "trajectory_retrieval.py", split="ood", **kw)
    assert ood.score < traj.score  # newcomers: no remembered quirks to use
    plug = evaluate(REPO / "seeds" / "no_memory.py", agent=f"{AGENTS}:FirstAction", **kw)
    assert plug.agent == f"{AGENTS}:FirstAction"


def test_api_design_argument():
    from harness.api import design_source
    from harness.errors import DesignError

    assert design_source(REPO / "seeds" / "no_memory.py")[0] == "no_memory"
    assert design_source(str(REPO / "seeds" / "no_memory.py"))[0] == "no_memory"
    assert design_source(seed_source("no_memory")) == ("design", seed_source("no_memory"))
    with pytest.raises(DesignError, match="cannot read the design file"):
        design_source("seeds/typo.py")


def test_support_desk_in_bubblewrap(example_importable, tmp_path):
    from harness.suites import prepare_suite
    from sandbox.broker import Broker, BrokerConfig
    from sandbox.job import JobRunner
    from tests.test_sandbox_backends import make_backend

    backend = make_backend("bubblewrap")
    try:
        with Broker(BrokerConfig(local_embedder="hashing")) as broker:
            runner = JobRunner(backend, broker, prepare=prepare_suite, cache_root=tmp_path, retries=0)
            report = runner.run(_job(SUPPORT_DESK, "trajectory_retrieval", n_train=12, n_test=8))
    finally:
        backend.close()
    assert report.outcome.value == "ok", report.detail + report.stderr_tail
    assert report.result.score >= 0.75 and (tmp_path / "support_desk.envs_SupportDesk").is_dir()


def test_engine_api_evolve_on_the_example(example_importable, tmp_path):
    from engine.api import evolve
    from tests.test_sandbox_backends import make_backend

    make_backend("bubblewrap").close()  # skips where bubblewrap cannot run
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name in ("no_memory", "trajectory_retrieval"):
        (seeds / f"{name}.py").write_text(seed_source(name))
    lines: list[str] = []
    run = evolve({"steps": 0, "runs_dir": str(tmp_path / "runs"), "seeds_dir": str(seeds), "eval_cache": False,
                  "eval": {"benchmark": SUPPORT_DESK, "n_train": 8, "n_test": 4, "heldout_seed": 7},
                  "sandbox": {"backend": "bubblewrap"}}, name="plug", log=lines.append)
    assert run.run_dir == tmp_path / "runs" / "plug" and run.archive_path.is_file()
    assert run.heldout is not None and run.heldout["benchmark"] == SUPPORT_DESK
    scores = {d["name"]: d["score"] for d in run.heldout["designs"]}
    assert scores["no_memory"] < scores["trajectory_retrieval"], scores
    assert run.best is not None and run.best.name == "trajectory_retrieval" and "class" in run.best.source
    assert any("bubblewrap" in line for line in lines)


def test_support_desk_in_docker(example_importable, tmp_path):
    import os

    from harness.suites import prepare_suite
    from sandbox.backend import docker_available
    from sandbox.broker import Broker, BrokerConfig
    from sandbox.job import JobRunner
    from tests.test_sandbox_backends import unavailable

    if not docker_available():
        unavailable("no Docker daemon answers (scripts/start_docker.sh starts one)")
    import docker

    from sandbox.docker_backend import DockerBackend
    from sandbox.image import build_image, current_tag, image_exists

    tag = current_tag([EXAMPLE])
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("ALMA_TEST_BUILD_IMAGE") == "1":
        tag = build_image(with_dirs=[EXAMPLE])
    elif not image_exists(docker.from_env(), tag):
        unavailable(f"the evaluation image {tag} is not built (bash scripts/build_image.sh --with {EXAMPLE})")
    backend = DockerBackend(tag)
    try:
        with Broker(BrokerConfig(local_embedder="hashing")) as broker:
            runner = JobRunner(backend, broker, prepare=prepare_suite, cache_root=tmp_path, retries=0)
            report = runner.run(_job(SUPPORT_DESK, "trajectory_retrieval", n_train=12, n_test=8))
    finally:
        backend.close()
    assert report.outcome.value == "ok", report.detail + report.stderr_tail
    assert report.result.score >= 0.75
