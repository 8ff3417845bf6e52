"""Pre-started bubblewrap gates (sandbox/bwrap_backend.py): a job that takes one runs in a cgroup renamed to
its own, under the same limits (OOM and pids still classified); close() and stale cleanup leave no spare.

Skips when the bubblewrap backend cannot run here (fails under CI=true or after scripts/setup.sh).
"""

from __future__ import annotations

import os
import textwrap
import uuid

import pytest

from sandbox.bwrap_backend import PRESTART_ENV, SPARE_PREFIX, prestart_count
from sandbox.limits import JobRun, Limits
from sandbox.outcome import Outcome
from tests.test_sandbox_backends import unavailable


def test_prestart_count_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(PRESTART_ENV, raising=False)
    assert prestart_count() == 2 and prestart_count(0) == 0 and prestart_count(1) == 1
    for off in ("0", "off", "no"):
        monkeypatch.setenv(PRESTART_ENV, off)
        assert prestart_count() == 0


@pytest.fixture
def make_backend():
    from sandbox.bwrap_backend import BubblewrapBackend
    from sandbox.errors import SandboxUnavailable

    made = []

    def make(**kwargs):
        try:
            made.append(BubblewrapBackend(**kwargs))
        except SandboxUnavailable as exc:
            unavailable(f"bubblewrap backend unavailable: {exc}", "bubblewrap")
        return made[-1]

    yield make
    for b in made:
        b.close()


def job(code: str, **limits) -> JobRun:
    return JobRun(f"g-{uuid.uuid4().hex[:8]}", ["python", "-c", textwrap.dedent(code)],
                  limits=Limits(**{"wall_s": 30, **limits}))


def spares_of(backend) -> list[str]:
    return sorted({p.name for d in backend.layout.parents.values() if d.is_dir() for p in d.iterdir()
                   if p.name.startswith(f"{SPARE_PREFIX}-{os.getpid()}-")})


def served(backend) -> list[tuple[str, str]]:
    """(job id, cgroup name) of every job that takes a pre-started gate from now on."""
    seen = []
    take = backend.spares.take

    def recording(j):
        gate = take(j)
        if gate is not None:
            seen.append((j.job_id, gate.cg.name))
        return gate

    backend.spares.take = recording
    return seen


@pytest.mark.parametrize("case", ["ok", "oom", "pids"])
def test_a_job_on_a_prestarted_gate_runs_in_its_own_cgroup_under_the_same_limits(make_backend, case):
    code, limits, outcome = {
        "ok": ("import os; print(os.getuid())", {}, Outcome.OK),
        "oom": ("""
            blocks = []
            while True:
                blocks.append(bytearray(16 << 20))
                blocks[-1][::4096] = b"x" * len(blocks[-1][::4096])
         """, {"memory_mb": 96}, Outcome.OOM),
        "pids": ("""
            import os, time
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.01)
         """, {"pids": 32}, Outcome.PIDS_EXHAUSTED),
    }[case]
    backend = make_backend(prestart=1)
    assert backend.run(job("print('warm')", **limits)).outcome is Outcome.OK  # teaches the limits
    assert backend.spares.wait_ready(timeout=20)
    seen = served(backend)
    j = job(code, **limits)
    r = backend.run(j)
    assert seen and seen[0][0] == j.job_id, "the job did not take the pre-started gate"
    assert seen[0][1].startswith(f"alma-{os.getpid()}-{j.job_id}-")  # renamed to the job's cgroup name
    assert r.outcome is outcome, (r.outcome, r.exit_code, r.stderr[-500:])
    mine = [p.name for d in backend.layout.parents.values() for p in d.iterdir()
            if p.name.startswith(f"alma-{os.getpid()}-")]
    assert mine == []  # the job's cgroup is gone; only spares remain


def test_close_leaves_no_spare_and_stale_spares_are_removed(make_backend):
    backend = make_backend(prestart=2)
    assert backend.run(job("print(1)")).outcome is Outcome.OK
    assert backend.spares.wait_ready(timeout=20)
    assert len(spares_of(backend)) == 2
    layout = backend.layout
    backend.close()
    assert spares_of(backend) == []

    from tests.test_sandbox_units import _dead_pid

    stale = f"{SPARE_PREFIX}-{_dead_pid()}-deadbeef"
    for parent in layout.parents.values():
        (parent / stale).mkdir()
    again = make_backend(prestart=0)
    assert stale in again.stale_removed
    assert not any((parent / stale).exists() for parent in layout.parents.values())


def test_off_switch(make_backend, monkeypatch):
    monkeypatch.setenv(PRESTART_ENV, "0")
    backend = make_backend()
    assert backend.spares is None
    assert backend.run(job("print('fresh')")).outcome is Outcome.OK
