"""Evaluations of genomes in the sandbox: one :class:`Evaluator` per run (a backend, a broker, a job runner).

The broker stays on the host with the task model (the configured endpoint, or the embedded local model started
on the first chat request) and records every call in the run's cassette. Each evaluation writes its job
report and result under ``runs/<id>/evals/<design-id>/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.code.genome import Genome
from engine.config import EvolveConfig
from engine.models import task_broker_config, task_model_spec
from harness.files import write_text_atomic
from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ProtocolSpec
from harness.suites import prepare_suite
from sandbox.backend import select_backend
from sandbox.broker import Broker, BrokerConfig, Budget
from sandbox.job import JobReport, JobRunner
from sandbox.limits import Limits
from sandbox.outcome import Outcome

#: the archive's split label of the final held-out evaluation (a fresh suite: see EvalConfig.heldout_seed)
HELDOUT = "heldout"
#: the archive's split label of the re-evaluation of the best candidates on another fresh suite before the final
#: pick (EvalConfig.validation_seed): the held-out suite is never used to choose
VALIDATION = "validation"


def artefact_dir(run_dir: Path, design_id: str, label: str) -> Path:
    """Where one evaluation's artefacts go: ``runs/<id>/evals/<design-id>/<label>`` (label: the split, or
    ``smoke``, or ``replay-<time>``). The one place that knows the layout."""
    return Path(run_dir) / "evals" / design_id / label


def store_artefacts(out: Path, spec: JobSpec, report: JobReport) -> None:
    """Write a job's ``report.json``, ``result.json`` (when it has one) and ``job.json`` into ``out``."""
    write_text_atomic(out / "report.json", report.model_dump_json(indent=2))
    if report.result is not None:
        write_text_atomic(out / "result.json", report.result.model_dump_json(indent=2))
    write_text_atomic(out / "job.json", json.dumps(spec.model_dump(), indent=2))


class Evaluator:
    """A run's sandbox backend, task-model broker and job runner, built from its config. ``backend``,
    ``broker_config`` and ``limits`` replace the config's (a replay serves its cassette under other limits)."""

    def __init__(self, config: EvolveConfig, run_dir: Path, *, backend: str | None = None,
                 broker_config: BrokerConfig | None = None, limits: Limits | None = None):
        self.config = config
        self.run_dir = Path(run_dir)
        c = config
        self.backend = select_backend(backend or c.sandbox.backend)
        if type(self.backend).__name__ == "DockerBackend":
            self._ensure_image()
        self.broker = Broker(broker_config or task_broker_config(c, cassette_dir=self.run_dir / "cassette"))
        self.runner = JobRunner(self.backend, self.broker, prepare=prepare_suite,
                                limits=limits or Limits(memory_mb=c.sandbox.memory_mb, pids=c.sandbox.pids,
                                                        cpus=c.sandbox.cpus, wall_s=c.sandbox.timeout_s),
                                budget=Budget(max_requests=None, max_tokens=None))
        #: broker usage of every smoke evaluation so far, summed (the meta agent's costs: engine.cost)
        self.smoke_usage: dict[str, int] = {}

    def _ensure_image(self) -> None:
        """Build the evaluation image when its content hash (harness + dependency set) has no image yet: offline,
        from the cached base and wheelhouse, seconds when only the harness changed."""
        from sandbox.image import build_image, image_exists

        if not image_exists(self.backend.client, self.backend.image):
            print(f"building the evaluation image {self.backend.image} (the harness changed)", flush=True)
            self.backend.image = build_image(self.backend.client)

    @property
    def backend_name(self) -> str:
        return getattr(self.backend, "name", type(self.backend).__name__)

    def job_spec(self, genome: Genome, split: str, *, smoke: bool = False, tag: str = "") -> JobSpec:
        e = self.config.eval
        heldout, validation = split == HELDOUT, split == VALIDATION
        n_test = ((e.heldout_n_test or e.n_test) if heldout
                  else (e.validation_n_test or e.heldout_n_test or e.n_test) if validation else e.n_test)
        protocol = ProtocolSpec(n_train=1 if smoke else e.n_train, n_test=1 if smoke else n_test,
                                repeats=1 if smoke else e.repeats, mode=e.mode,
                                split=e.heldout_split if heldout else e.split if validation else split,
                                seed=e.heldout_seed if heldout else e.validation_seed if validation else e.seed,
                                concurrency=e.episode_concurrency,
                                design_call_timeout_s=e.design_timeout_s, step_limit=10 if smoke else None)
        return JobSpec(
            job_id=f"{genome.id}-{split}{'-smoke' if smoke else ''}{tag}",
            design=DesignSpec(name=genome.name, source=genome.source), benchmark=e.benchmark,
            agent=AgentSpec(kind=e.agent, temperature=self.config.task.temperature,
                            max_tokens=min(self.config.task.max_tokens, 4096)),
            models=task_model_spec(self.config),
            protocol=protocol,
        )

    def evaluate(self, genome: Genome, split: str, *, smoke: bool = False, tag: str = "") -> tuple[JobReport, Path]:
        """Run one evaluation; returns the report and the directory its artefacts were written to."""
        spec = self.job_spec(genome, split, smoke=smoke, tag=tag)
        report = self.runner.run(spec)
        out = artefact_dir(self.run_dir, genome.id, f"smoke{tag}" if smoke else f"{split}{tag}")
        store_artefacts(out, spec, report)
        return report, out

    def smoke_error(self, genome: Genome) -> str | None:
        """None when a one-task smoke evaluation runs without a design error; else what went wrong."""
        report, _ = self.evaluate(genome, self.config.eval.split, smoke=True)
        for k, v in report.broker_usage.items():
            self.smoke_usage[k] = self.smoke_usage.get(k, 0) + int(v)
        if report.outcome is not Outcome.OK:
            return f"outcome {report.outcome.value}: {report.detail}\n{report.stderr_tail[-2000:]}"
        errors = [e.error for e in report.result.episodes if e.error] if report.result else []
        return errors[0][-3000:] if errors else None

    def close(self) -> None:
        self.broker.close()
        self.backend.close()
