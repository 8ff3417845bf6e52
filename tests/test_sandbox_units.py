"""Small pieces of the sandbox: outcome rules, output capture, job validation, image hashing, backend
selection, stale clean-up and infrastructure failures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sandbox.backend import NoneBackend, docker_available, select_backend
from sandbox.limits import JobRun, Limits, Mount
from sandbox.outcome import LimitHits, Outcome, OutputTail, classify, hits_from_stderr
from tests.test_sandbox_backends import docker_image, make_backend, unavailable

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("exit_code, hits, infra, expected", [
    (0, {}, None, Outcome.OK),
    (0, {"pids": True}, None, Outcome.OK),  # a limit the job survived stays an event
    (137, {"oom": True}, None, Outcome.OOM),
    (137, {"oom": True, "timeout": True}, None, Outcome.OOM),
    (1, {"pids": True}, None, Outcome.PIDS_EXHAUSTED),
    (-9, {"pids": True, "timeout": True}, None, Outcome.PIDS_EXHAUSTED),
    (-9, {"timeout": True}, None, Outcome.TIMEOUT),
    (152, {"cpu_time": True}, None, Outcome.TIMEOUT),
    (0, {"output": True}, None, Outcome.OUTPUT_EXCEEDED),
    (-9, {"output": True, "timeout": True}, None, Outcome.OUTPUT_EXCEEDED),
    (1, {}, None, Outcome.CRASHED),
    (None, {}, "daemon gone", Outcome.INFRA_ERROR),
])
def test_classification_rules(exit_code, hits, infra, expected):
    assert classify(exit_code, LimitHits(**hits), infra) is expected
    assert expected.scored is (expected is not Outcome.INFRA_ERROR)


def test_stderr_heuristics():
    hits = LimitHits()
    hits_from_stderr("OSError: [Errno 28] No space left on device\nBlockingIOError: [Errno 11] Resource "
                     "temporarily unavailable", hits, pids_known=True)
    assert hits.scratch_full and not hits.pids
    hits_from_stderr("BlockingIOError: [Errno 11] Resource temporarily unavailable", hits, pids_known=False)
    assert hits.pids


def test_output_tail_keeps_head_and_tail():
    tail = OutputTail(100)
    tail.feed(b"HEAD" + b"x" * 10_000)
    tail.feed(b"y" * 100 + b"END")
    text = tail.text()
    assert tail.truncated and tail.total == 10_107
    assert text.startswith("HEAD") and text.endswith("END") and "bytes dropped" in text
    small = OutputTail(100)
    small.feed(b"short")
    assert not small.truncated and small.text() == "short"


def test_job_run_validation(tmp_path):
    with pytest.raises(ValueError, match="job_id"):
        JobRun("../evil", ["true"])
    with pytest.raises(ValueError, match="not /tmp"):
        JobRun("j", ["true"], mounts=[Mount(tmp_path, "/tmp")])
    with pytest.raises(ValueError, match="absolute"):
        Mount(tmp_path, "relative/path")
    with pytest.raises(ValueError):
        Limits(memory_mb=1)
    env = JobRun("j", ["true"], env={"X": "1"}).environment()
    assert env["X"] == "1" and env["TMPDIR"] == "/tmp" and "OPENAI_API_KEY" not in env


def test_image_tag_hashes_harness_and_pins():
    from sandbox.image import IMAGE_REPOSITORY, content_hash, current_tag, pinned_dependencies

    pins = pinned_dependencies()
    names = {p.split("==")[0] for p in pins}
    assert {"openai", "pydantic", "numpy", "textworld", "libcst", "rich", "tenacity"} <= names
    # every benchmark runs in the image: minihack with its binary nle, alfworld with textworld's pddl extra
    assert {"minihack", "nle", "gymnasium", "alfworld", "fast-downward-textworld", "tatsu"} <= names
    assert "torch" not in names and "pip" not in names
    assert content_hash(pins) == content_hash(list(pins))
    assert content_hash(pins) != content_hash([*pins, "extra==1.0"])
    assert current_tag().startswith(f"{IMAGE_REPOSITORY}:")


def test_dockerfile_contract():
    text = (REPO / "Dockerfile.eval").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert "--no-index" in text and "USER 10001" in text


def test_base_image_tag_depends_on_suite_and_packages():
    from sandbox.rootfs import base_tag

    assert base_tag("bookworm", ("python3",)) == base_tag("bookworm", ("python3",))
    assert base_tag("bookworm", ("python3",)) != base_tag("bookworm", ("python3", "git"))
    assert base_tag("bookworm", ("python3",)) != base_tag("trixie", ("python3",))


def test_selection():
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend("chroot")
    with pytest.warns(RuntimeWarning, match="UNISOLATED"):
        backend = select_backend("none")
    assert isinstance(backend, NoneBackend) and not backend.isolated
    if docker_available():
        assert select_backend("auto", image="alma-eval:any").name == "docker"


def test_none_backend_maps_mounts_and_clears_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-none-backend-fake")
    (tmp_path / "in.txt").write_text("data")
    with pytest.warns(RuntimeWarning):
        backend = NoneBackend()
    job = JobRun("n1", ["python", "-c", "import os, sys; print(open(sys.argv[1]).read(), os.environ.get("
                        "'OPENAI_API_KEY'), os.environ['TMPDIR'] != '/tmp')", "/in/in.txt"],
                 mounts=[Mount(tmp_path, "/in")])
    r = backend.run(job)
    assert r.outcome is Outcome.OK and r.stdout.split() == ["data", "None", "True"]
    r = backend.run(JobRun("n2", ["python", "-c", "while True: pass"], limits=Limits(wall_s=0.5)))
    assert r.outcome is Outcome.TIMEOUT


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_cgroups_are_removed():
    from sandbox import cgroups

    backend = make_backend("bubblewrap")
    try:
        name = f"alma-{_dead_pid()}-stale-abc123"
        for parent in backend.layout.parents.values():
            (parent / name).mkdir()
        assert name in cgroups.cleanup_stale(backend.layout)
        assert not any((p / name).exists() for p in backend.layout.parents.values())
    finally:
        backend.close()


def test_bubblewrap_setup_failure_is_infra_error():
    backend = make_backend("bubblewrap")
    try:
        job = JobRun("bad", ["python", "-c", "pass"], mounts=[Mount(Path("/nonexistent/alma"), "/data")])
        r = backend.run(job)
        assert r.outcome is Outcome.INFRA_ERROR and "bubblewrap" in r.detail
    finally:
        backend.close()


def test_stale_containers_are_removed():
    image = docker_image()
    import docker

    from sandbox.docker_backend import LABEL, OWNER_LABEL, DockerBackend

    client = docker.from_env()
    dead_owner = f"{os.uname().nodename}:{_dead_pid()}:1"
    stale = client.containers.create(image, ["sleep", "60"], labels={LABEL: "1", OWNER_LABEL: dead_owner})
    backend = DockerBackend(image)
    try:
        assert stale.name in backend.stale_removed
        assert client.containers.list(all=True, filters={"id": stale.id}) == []
    finally:
        backend.close()


def test_missing_image_is_infra_error():
    docker_image()  # skips (or fails under CI) without a daemon
    from sandbox.docker_backend import DockerBackend

    backend = DockerBackend("alma-eval:does-not-exist")
    r = backend.run(JobRun("noimg", ["python", "-c", "pass"]))
    assert r.outcome is Outcome.INFRA_ERROR and "sandbox.image build" in r.detail


def test_docker_backend_without_daemon_is_unavailable(monkeypatch):
    from sandbox.docker_backend import DockerBackend
    from sandbox.errors import SandboxUnavailable

    sock = Path(tempfile.mkdtemp()) / "no-daemon.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    with pytest.raises(SandboxUnavailable, match="start_docker.sh"):
        DockerBackend("alma-eval:any", timeout=2)
    assert not docker_available(timeout=1)
    with pytest.raises(SandboxUnavailable):
        select_backend("docker", image="alma-eval:any")
    try:
        fallback = select_backend("auto")  # no daemon answers: bubblewrap
    except SandboxUnavailable as exc:
        unavailable(f"bubblewrap backend unavailable: {exc}")
    assert fallback.name == "bubblewrap"
    fallback.close()
