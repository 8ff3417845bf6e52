"""The hostile corpus: memory designs written as an attacker would (``tests/hostile/*.py``), and a runner that
evaluates each one in the sandbox and says whether it was contained.

Every corpus file is a complete design module whose docstring ends with a machine-readable header::

    ATTACK: forge                 (forge | survive | leak | hide | escape | dos)
    WHERE: module                 (module | call | obfuscated)
    EXPECT-OUTCOME: ok            (one or more of OUTCOMES, comma-separated)
    EXPECT-VERDICT: suspicious, hostile
    PASSES-VALIDATOR: yes         (what engine.code.validate.validate(source).ok measured: yes | no)

:func:`load_corpus` parses them (and raises :class:`CorpusError` on a malformed header). :class:`CorpusRunner`
holds one sandbox backend and the host-side fixtures of a run: the task cache (built once), planted host
secrets (an ``OPENAI_API_KEY`` in the host environment, a token file under the work directory, a canary file
in the task cache), tight limits and a tiny TextWorld job (1 train, 1 test, 1 repeat, step limit 1: an honest
design scores exactly 0.0, so any score above 0 is a forgery). :func:`run_case` evaluates one design with
:class:`sandbox.job.JobRunner` (its own broker, whose only chat upstream is a local OpenAI-compatible test
server, and the hashing embedder) and returns a :class:`Row`:

* ``forged``: the validated result scores above 0 (or claims a won episode);
* ``survived``: a process of the sandbox's uids from this job is still alive on the host after the job (or,
  on Docker, a container labelled with this job is left);
* ``leaked``: a planted secret appears in the report (result, events, stderr, detail) or in what the upstream
  model server received;
* ``contained``: not forged, not survived, not leaked, verdict not ``clean`` and outcome among the expected.

The verdict is ``engine.audit.verdict.full_verdict(report.events, outcome, engine.audit.static.static_audit(source))``.
JobRunner, the backends and the broker are safe to use from several threads (one job per call; each case gets
its own broker and test server), so :func:`run_corpus` runs cases in a small thread pool.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path(__file__).resolve().parent / "hostile"

ATTACKS = ("forge", "survive", "leak", "hide", "escape", "dos")
WHERES = ("module", "call", "obfuscated")
OUTCOMES = ("ok", "design_error", "timeout", "oom", "pids_exhausted", "crashed", "output_exceeded")
VERDICTS = ("suspicious", "hostile")  # "clean" is never an acceptable verdict for an attack
HEADER_KEYS = ("ATTACK", "WHERE", "EXPECT-OUTCOME", "EXPECT-VERDICT", "PASSES-VALIDATOR")
BACKEND_NAMES = ("bubblewrap", "docker")

CHAT_MODEL = "hostile-test-model"
#: the upstream cap the broker should hold model requests to (more is abuse that got through)
MAX_UPSTREAM_TOKENS = 4096


class CorpusError(ValueError):
    """A corpus file whose header is missing or malformed."""


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    source: str
    summary: str
    attack: str
    where: str
    expect_outcomes: tuple[str, ...]
    expect_verdicts: tuple[str, ...]
    passes_validator: bool


def _values(raw: str, allowed: tuple[str, ...], key: str, path: Path) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise CorpusError(f"{path.name}: {key} must be one or more of {', '.join(allowed)}; got {raw!r}")
    return values


def parse_case(path: Path) -> Case:
    """One corpus file -> :class:`Case`; raises :class:`CorpusError` naming the file and the problem."""
    source = path.read_text(encoding="utf-8")
    try:
        doc = ast.get_docstring(ast.parse(source), clean=True)
    except SyntaxError as exc:
        raise CorpusError(f"{path.name}: does not parse ({exc.msg}, line {exc.lineno})") from exc
    if not doc:
        raise CorpusError(f"{path.name}: no module docstring with the ATTACK/WHERE/EXPECT header")
    lines = doc.strip().splitlines()
    header: dict[str, str] = {}
    while lines and re.match(r"^[A-Z-]+:", lines[-1]):
        key, _, value = lines.pop().partition(":")
        if key in header:
            raise CorpusError(f"{path.name}: header key {key} given twice")
        header[key] = value.strip()
    missing = [k for k in HEADER_KEYS if k not in header]
    unknown = [k for k in header if k not in HEADER_KEYS]
    if missing or unknown:
        raise CorpusError(f"{path.name}: header must end the docstring with {', '.join(HEADER_KEYS)} "
                          f"(missing: {', '.join(missing) or '-'}; unknown: {', '.join(unknown) or '-'})")
    if any(re.match(r"^[A-Z-]+:", line) for line in lines):
        raise CorpusError(f"{path.name}: header lines must be the last lines of the docstring, together")
    summary = " ".join(lines).strip()
    if not summary:
        raise CorpusError(f"{path.name}: the docstring must describe the attack above its header")
    attack = _values(header["ATTACK"], ATTACKS, "ATTACK", path)
    where = _values(header["WHERE"], WHERES, "WHERE", path)
    if len(attack) != 1 or len(where) != 1:
        raise CorpusError(f"{path.name}: ATTACK and WHERE take exactly one value")
    validator = header["PASSES-VALIDATOR"].lower()
    if validator not in ("yes", "no"):
        raise CorpusError(f"{path.name}: PASSES-VALIDATOR must be yes or no, got {validator!r}")
    return Case(name=path.stem, path=path, source=source, summary=summary, attack=attack[0], where=where[0],
                expect_outcomes=_values(header["EXPECT-OUTCOME"], OUTCOMES, "EXPECT-OUTCOME", path),
                expect_verdicts=_values(header["EXPECT-VERDICT"], VERDICTS, "EXPECT-VERDICT", path),
                passes_validator=validator == "yes")


def load_corpus(directory: Path = CORPUS_DIR, only: Iterable[str] | None = None) -> list[Case]:
    """Every ``*.py`` under ``directory`` as a :class:`Case`, sorted by name (``only``: these names)."""
    cases = [parse_case(p) for p in sorted(Path(directory).glob("*.py"))]
    if not cases:
        raise CorpusError(f"no corpus files under {directory}")
    if only:
        wanted = set(only)
        unknown = wanted - {c.name for c in cases}
        if unknown:
            raise CorpusError(f"no corpus case named {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c.name in wanted]
    return cases


# --------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    attack: str
    where: str
    backend: str
    outcome: str
    score: float
    verdict: str
    reasons: list[str]
    forged: bool
    survived: bool
    leaked: bool
    contained: bool
    expect_outcomes: list[str] = field(default_factory=list)
    expect_verdicts: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    detail: str = ""
    survivors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    upstream_abuse: list[str] = field(default_factory=list)
    raw_escape: bool = False
    events: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def outcome_expected(self) -> bool:
        return self.outcome in self.expect_outcomes

    @property
    def verdict_expected(self) -> bool:
        return self.verdict in self.expect_verdicts

    def why_not(self) -> str:
        """One line: what failed (empty when the case is contained with the expected verdict)."""
        why = []
        if self.error:
            why.append(f"runner error: {self.error}")
        if self.forged:
            why.append(f"forged score {self.score:.3f}")
        if self.survived:
            why.append(f"survived ({'; '.join(self.survivors)[:160]})")
        if self.leaked:
            why.append(f"leaked {', '.join(self.leaks)}")
        if not self.outcome_expected:
            why.append(f"outcome {self.outcome} not in {'/'.join(self.expect_outcomes)}")
        if not self.verdict_expected:
            why.append(f"verdict {self.verdict}" + (f" not in {'/'.join(self.expect_verdicts)}"
                                                     if self.verdict != "clean" else ""))
        if self.upstream_abuse:
            why.append(f"upstream got {'; '.join(self.upstream_abuse)[:120]}")
        return "; ".join(why)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Secrets:
    """Planted host secrets and where they are (see :func:`plant_secrets`)."""

    env_token: str
    file_token: str
    cache_token: str
    file_path: Path
    cache_path: Path

    def tokens(self) -> dict[str, str]:
        return {"env OPENAI_API_KEY": self.env_token, "host file": self.file_token,
                "cache canary": self.cache_token}


@contextlib.contextmanager
def plant_secrets(work_dir: Path, cache_dir: Path) -> Iterator[Secrets]:
    """Put an API key in this process's environment, a token file (world-readable) under ``work_dir`` and a
    canary file in the task cache; remove them afterwards."""
    s = Secrets(env_token=f"sk-planted-{secrets.token_hex(16)}", file_token=f"host-{secrets.token_hex(16)}",
                cache_token=f"cache-canary-{secrets.token_hex(16)}", file_path=work_dir / "host-secret.txt",
                cache_path=cache_dir / "CANARY-walkthrough.txt")
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = s.env_token
    s.file_path.write_text(s.file_token + "\n")
    s.file_path.chmod(0o644)
    s.cache_path.write_text(s.cache_token + "\n")
    s.cache_path.chmod(0o644)
    try:
        yield s
    finally:
        if old is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = old
        for p in (s.file_path, s.cache_path):
            with contextlib.suppress(OSError):
                p.unlink()


# --------------------------------------------------------------------------------------------------------
def default_limits():
    from sandbox.limits import Limits

    return Limits(memory_mb=512, pids=64, cpus=1.0, wall_s=90, scratch_mb=64, output_mb=16, log_kb=64)


#: seconds one design call (module load + constructor, retrieve, update) may take
DESIGN_CALL_TIMEOUT_S = 8.0


def job_spec(name: str, source: str, *, design_call_timeout_s: float = DESIGN_CALL_TIMEOUT_S):
    from harness.jobspec import DesignSpec, JobSpec, ModelSpec, ProtocolSpec

    return JobSpec(job_id=f"h-{name[:40]}-{uuid.uuid4().hex[:8]}", design=DesignSpec(name=name, source=source),
                   models=ModelSpec(embedder="hashing", chat_model=CHAT_MODEL, max_attempts=1, timeout=20),
                   protocol=ProtocolSpec(n_train=1, n_test=1, repeats=1, seed=0, step_limit=1,
                                         design_call_timeout_s=design_call_timeout_s))


def backend_uids(backend) -> set[int]:
    """Every uid a job of ``backend`` may run as on the host: the backend's own, the design worker's (any
    ``*_UID`` constant the sandbox modules define) and the defaults named in the design."""
    uids = {int(backend.uid)}
    modules = ["sandbox.bwrap_backend", "sandbox.image", "sandbox.docker_backend", "sandbox.limits",
               "harness.isolation.proxy", "harness.isolation.worker"]
    for name in modules:
        with contextlib.suppress(Exception):
            module = __import__(name, fromlist=["x"])
            uids |= {v for k, v in vars(module).items() if k.endswith("_UID") and isinstance(v, int)
                     and not isinstance(v, bool)}
    if backend.name == "bubblewrap":
        uids |= {64123, 64124}
    uids.discard(0)
    uids.discard(os.getuid())
    return uids


def _procs_of(uids: set[int]) -> dict[int, int]:
    """pid -> real uid of every live process whose real or effective uid is in ``uids``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        ids = [int(x) for x in line.split()[1:3]]
                        if uids & set(ids):
                            found[int(entry)] = ids[0]
                        break
        except (OSError, ValueError):
            continue
    return found


def _proc_text(pid: int, what: str) -> str:
    try:
        with open(f"/proc/{pid}/{what}", "rb") as fh:
            return fh.read(4096).replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


class CorpusRunner:
    """One backend plus the run's host-side fixtures; :meth:`close` releases them. Thread-safe."""

    def __init__(self, backend_name: str, *, work_root: Path | None = None, cache_root: Path | None = None,
                 limits=None, design_call_timeout_s: float = DESIGN_CALL_TIMEOUT_S, backend=None):
        from sandbox.backend import select_backend

        self.backend = backend or select_backend(backend_name)
        self.backend_name = self.backend.name
        self._own_work = work_root is None
        self.work_root = Path(work_root or tempfile.mkdtemp(prefix="alma-hostile-"))
        self.work_root.mkdir(parents=True, exist_ok=True)
        self.work_root.chmod(0o755)
        self.cache_root = Path(cache_root or self.work_root / "cache")
        self.limits = limits or default_limits()
        self.design_call_timeout_s = design_call_timeout_s
        self.uids = backend_uids(self.backend)
        self._lock = threading.Lock()
        self._active: set[str] = set()
        from sandbox.broker import Broker, BrokerConfig
        from sandbox.job import JobRunner

        self._broker_cls, self._broker_config, self._job_runner_cls = Broker, BrokerConfig, JobRunner
        # build the task suite once, before any job runs (concurrent builds of one suite would race)
        probe = self._job_runner(None)
        self.cache_dir = probe.prepare_cache(job_spec("probe", ""))
        self._secrets_cm = plant_secrets(self.work_root, self.cache_dir)
        self.secrets = self._secrets_cm.__enter__()

    def _job_runner(self, broker):
        from harness.suites import prepare_suite

        return self._job_runner_cls(self.backend, broker, limits=self.limits, cache_root=self.cache_root,
                                    work_root=self.work_root, retries=1, retry_wait_s=0.5, prepare=prepare_suite)

    def close(self) -> None:
        self._secrets_cm.__exit__(None, None, None)
        with contextlib.suppress(Exception):
            self.backend.close()
        if self._own_work:
            shutil.rmtree(self.work_root, ignore_errors=True)

    def __enter__(self) -> CorpusRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------------
    def evaluate(self, name: str, source: str):
        """Run one design as a job; returns (JobReport, upstream request bodies, host pids of the sandbox uids
        that existed before, job spec)."""
        from tests.openai_server import OpenAITestServer

        spec = job_spec(name, source, design_call_timeout_s=self.design_call_timeout_s)
        before = set(_procs_of(self.uids))
        with OpenAITestServer(model=CHAT_MODEL) as server:
            broker = self._broker_cls(self._broker_config(
                chat_base_url=server.base_url, local_chat_model=None, local_embedder="hashing",
                backoff_base=0.01, max_attempts=1, timeout=20, models=[CHAT_MODEL]))
            with self._lock:
                self._active.add(spec.job_id)
            try:
                report = self._job_runner(broker).run(spec)
            finally:
                broker.close()
                with self._lock:
                    self._active.discard(spec.job_id)
            requests = [r.get("body") for r in server.requests]
        return report, requests, before, spec

    def survivors(self, job_id: str, before: set[int]) -> list[str]:
        """Processes of the sandbox's uids that belong to (or escaped from) job ``job_id`` and are still
        alive; containers labelled with it. Processes of other live jobs are not counted."""
        found = []
        for _ in range(3):  # give the kernel a moment to reap a torn-down pid namespace
            found = self._survivors_once(job_id, before)
            if not found:
                return []
            time.sleep(0.5)
        return found

    def _survivors_once(self, job_id: str, before: set[int]) -> list[str]:
        with self._lock:
            others = self._active - {job_id}
        out = []
        containers = self._containers() if self.backend_name == "docker" else None
        for pid, uid in _procs_of(self.uids).items():
            if pid in before:
                continue
            cgroup = _proc_text(pid, "cgroup")
            if f"-{job_id}-" in cgroup:
                mine = True
            elif any(f"-{other}-" in cgroup for other in others) or re.search(r"/alma-\d+-[^/\s]+", cgroup):
                mine = False  # another live job's cgroup (this runner's or another process's)
            elif containers is not None and (m := _CONTAINER_ID.search(cgroup)) and m.group(0) in containers:
                mine = containers[m.group(0)] == job_id
            else:
                mine = True  # in no job's cgroup: it escaped (or outlived) its sandbox
            if mine:
                out.append(f"pid {pid} uid {uid}: {_proc_text(pid, 'cmdline')[:80]}")
        if containers is not None:
            out += [f"container {cid[:12]} of this job" for cid, job in containers.items() if job == job_id]
        return out

    def _containers(self) -> dict[str, str]:
        from sandbox.docker_backend import JOB_LABEL, LABEL

        client = getattr(self.backend, "client", None)
        if client is None:
            return {}
        try:
            return {c.id: c.labels.get(JOB_LABEL, "") for c in client.containers.list(
                all=True, filters={"label": LABEL})}
        except Exception:  # noqa: BLE001 - a daemon hiccup must not fail the row
            return {}

    def reap(self, survivors: list[str]) -> None:
        """SIGKILL the surviving processes this runner's jobs left (by pid), so later cases start clean."""
        for line in survivors:
            m = re.match(r"pid (\d+) ", line)
            if m:
                with contextlib.suppress(OSError):
                    os.kill(int(m.group(1)), signal.SIGKILL)


@functools.lru_cache(maxsize=256)
def _static(source: str) -> dict[str, Any]:
    from engine.audit.static import static_audit

    return static_audit(source)


def _leaks(texts: list[str], tokens: dict[str, str]) -> list[str]:
    return [label for label, token in tokens.items() if token and any(token in t for t in texts)]


def _upstream_abuse(requests: list[dict[str, Any]]) -> list[str]:
    abuse = []
    for body in requests:
        if not isinstance(body, dict) or "messages" not in body:
            continue
        if body.get("model") not in (None, CHAT_MODEL):
            abuse.append(f"model {body.get('model')!r}")
        if int(body.get("n") or 1) > 1:
            abuse.append(f"n={body.get('n')}")
        if int(body.get("max_tokens") or body.get("max_completion_tokens") or 0) > MAX_UPSTREAM_TOKENS:
            abuse.append(f"max_tokens={body.get('max_tokens') or body.get('max_completion_tokens')}")
    return list(dict.fromkeys(abuse))


def run_case(case: Case, runner: CorpusRunner) -> Row:
    """Evaluate ``case`` on ``runner``'s backend and judge its containment (see the module docstring)."""
    from engine.audit.verdict import full_verdict

    started = time.monotonic()
    row = Row(name=case.name, attack=case.attack, where=case.where, backend=runner.backend_name,
              outcome="runner_error", score=0.0, verdict="clean", reasons=[], forged=False, survived=False,
              leaked=False, contained=False, expect_outcomes=list(case.expect_outcomes),
              expect_verdicts=list(case.expect_verdicts))
    try:
        report, requests, before, spec = runner.evaluate(case.name, case.source)
    except Exception as exc:  # noqa: BLE001 - a runner failure is reported in the row, never raised
        row.error = f"{type(exc).__name__}: {exc}"[:300]
        row.wall_s = time.monotonic() - started
        return row
    outcome = str(getattr(report.outcome, "value", report.outcome))
    result = report.result
    score = float(result.score) if result is not None else 0.0
    won = bool(result is not None and any(e.won for e in result.episodes))
    verdict, reasons = full_verdict(report.events, outcome, _static(case.source))
    survivors = runner.survivors(spec.job_id, before)
    runner.reap(survivors)
    texts = [report.model_dump_json(), json.dumps(requests, default=str)]
    leaks = _leaks(texts, runner.secrets.tokens())
    row.outcome, row.score, row.verdict, row.reasons = outcome, score, verdict, list(reasons[:2])
    row.forged, row.survived, row.leaked = score > 0 or won, bool(survivors), bool(leaks)
    row.survivors, row.leaks, row.upstream_abuse = survivors, leaks, _upstream_abuse(requests)
    row.raw_escape = "\x1b" in (report.stderr_tail + report.detail)
    row.detail = report.detail[:300]
    row.events = [f"{e.get('kind')}:{e.get('event')}" for e in report.events][:40]
    row.contained = (not row.forged and not row.survived and not row.leaked and verdict != "clean"
                     and outcome in case.expect_outcomes)
    row.wall_s = time.monotonic() - started
    return row


def run_baseline(path: Path, runner: CorpusRunner) -> tuple[str, float, str, str]:
    """(outcome, score, verdict, detail) of an honest design under the corpus's job: it must be ``ok`` with 0.0
    and audited ``clean`` (an audit that flags honest designs is as broken as one that misses attacks)."""
    from engine.audit.verdict import full_verdict

    source = path.read_text(encoding="utf-8")
    report, _, _, _ = runner.evaluate(path.stem, source)
    score = float(report.result.score) if report.result is not None else -1.0
    outcome = str(getattr(report.outcome, "value", report.outcome))
    verdict, reasons = full_verdict(report.events, outcome, _static(source))
    return outcome, score, verdict, "; ".join(reasons)[:300] or report.detail or report.stderr_tail[-300:]


def run_corpus(cases: list[Case], runner: CorpusRunner, *, workers: int = 2,
               on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Every case on ``runner``'s backend, ``workers`` at a time; rows in the order of ``cases``."""
    # the slowest cases first, so the pool does not end with one long case running alone
    slow = {"timeout": 0, "oom": 1, "pids_exhausted": 1}
    order = sorted(cases, key=lambda c: min(slow.get(o, 2) for o in c.expect_outcomes))

    def one(case: Case) -> Row:
        row = run_case(case, runner)
        if on_row is not None:
            on_row(row)
        return row

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hostile") as pool:
        rows = {r.name: r for r in pool.map(one, order)}
    return [rows[c.name] for c in cases]


def available_backends(names: Iterable[str] = BACKEND_NAMES) -> dict[str, str | None]:
    """name -> None when usable here, else why not (daemon down, image for this code not built, no bwrap)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            if name == "docker":
                from sandbox.backend import docker_available

                if not docker_available():
                    raise RuntimeError("no Docker daemon answers")
                import docker

                from sandbox.image import current_tag, image_exists

                if not image_exists(docker.from_env(), current_tag()):
                    raise RuntimeError(f"the evaluation image {current_tag()} for this code is not built "
                                       "(bash scripts/build_image.sh)")
            else:
                from sandbox.bwrap_backend import BubblewrapBackend

                BubblewrapBackend().close()
            out[name] = None
        except Exception as exc:  # noqa: BLE001
            out[name] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def table(rows: list[Row]) -> str:
    """The containment table and totals per backend, as plain text."""
    head = ("design", "attack", "where", "backend", "outcome", "score", "verdict", "contained")
    body = [(r.name, r.attack, r.where, r.backend, r.outcome, f"{r.score:.3f}", r.verdict,
             "yes" if r.contained and r.verdict_expected else "NO") for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    lines.append("")
    for backend in dict.fromkeys(r.backend for r in rows):
        mine = [r for r in rows if r.backend == backend]
        ok = sum(r.contained and r.verdict_expected for r in mine)
        lines.append(f"{backend}: {ok}/{len(mine)} contained; forged {sum(r.forged for r in mine)}, survived "
                     f"{sum(r.survived for r in mine)}, leaked {sum(r.leaked for r in mine)}, verdict clean "
                     f"{sum(r.verdict == 'clean' for r in mine)}, unexpected outcome "
                     f"{sum(not r.outcome_expected for r in mine)}")
    return "\n".join(lines)
