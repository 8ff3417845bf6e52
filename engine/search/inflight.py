"""The evaluations a run has in flight: submitted to its job executor, their results not yet archived.

The evolve loop (:mod:`engine.search.loop`) keeps up to ``limit`` of them (``config.concurrency``). This module
is only the driver's bookkeeping; the archive stays the truth: an evaluation is recorded ``running`` before it
is submitted and finished when its result is archived, so after a crash the archive's ``running`` evaluations
are exactly the ones that were in flight (or about to be), and a resumed run re-runs each on its own row.

The executor is driven through its public :class:`~engine.search.executors.Executor` interface (``submit``,
``wait``): ``wait`` hands back every result that is ready, each once, without blocking on the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.search.evaluator import store_artefacts
from engine.search.executors import EvaluationJob, JobDone, JobExecutor


@dataclass(frozen=True)
class Flight:
    """One evaluation in flight: its archive row, design and split, the executor's job, and what the loop
    does once it is archived (``role``: ``seed`` logs the seed's score, ``step`` finishes ``step``)."""

    evaluation_id: int
    design_id: str
    split: str
    job: EvaluationJob
    role: str = ""
    step: int | None = None


class InFlight:
    """Up to ``limit`` evaluations on ``jobs`` (a :class:`JobExecutor`), keyed by their evaluation id."""

    def __init__(self, jobs: JobExecutor, limit: int):
        if limit < 1:
            raise ValueError(f"at least one evaluation must be allowed in flight, got {limit}")
        self.jobs, self.limit = jobs, limit
        self._flights: dict[str, Flight] = {}
        self._ready: list[tuple[Flight, JobDone]] = []  # answered without the executor (the evaluation cache)

    def __len__(self) -> int:
        return len(self._flights) + len(self._ready)

    @property
    def full(self) -> bool:
        """True when no further evaluation may start before one is archived."""
        return len(self._flights) >= self.limit

    def _all(self) -> list[Flight]:
        return [*self._flights.values(), *(f for f, _ in self._ready)]

    def find(self, design_id: str, split: str) -> Flight | None:
        """The flight evaluating ``design_id`` on ``split``, if any (a design is never in flight twice)."""
        return next((f for f in self._all() if (f.design_id, f.split) == (design_id, split)), None)

    def steps(self) -> set[int]:
        """The steps whose design is being evaluated."""
        return {f.step for f in self._all() if f.step is not None}

    def answer(self, flight: Flight, report) -> None:
        """Finish ``flight`` without the executor, with a known ``report`` (a cached one): its artefacts are
        written now and the next :meth:`wait` hands it back first."""
        if self.find(flight.design_id, flight.split):
            raise ValueError(f"{flight.design_id} ({flight.split}) is already in flight")
        store_artefacts(flight.job.out_dir, flight.job.spec, report)
        self._ready.append((flight, JobDone(flight.job, report, None, False, "cache", 0.0)))

    def submit(self, flight: Flight) -> None:
        """Start ``flight``'s job on the executor; the caller has recorded its evaluation as ``running``."""
        key = str(flight.evaluation_id)
        if key in self._flights or self.find(flight.design_id, flight.split):
            raise ValueError(f"evaluation {key} of {flight.design_id} ({flight.split}) is already in flight")
        self.jobs.executor.submit(key, flight.job.spec.model_dump_json())
        self._flights[key] = flight

    def wait(self, block: bool = True) -> list[tuple[Flight, JobDone]]:
        """The flights that finished (their artefacts written), each once. ``block``: wait until one has;
        otherwise return at once, maybe with none."""
        out, self._ready = self._ready, []
        if out or not self._flights:
            return out
        for r in self.jobs.executor.wait(None if block else 0):
            flight = self._flights.pop(r.key)
            out.append((flight, _job_done(flight.job, r)))
        return out


def _job_done(job: EvaluationJob, r) -> JobDone:
    """An executor's result as a :class:`JobDone`, its report's artefacts written to the job's ``out_dir``
    (as :meth:`JobExecutor.as_completed` does)."""
    from sandbox.job import JobReport

    report = JobReport.model_validate_json(r.value) if r.ok else None
    if report is not None:
        store_artefacts(job.out_dir, job.spec, report)
    return JobDone(job, report, r.error, r.lost, r.where, r.wall_s)
