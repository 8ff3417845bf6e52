"""Running harness jobs in isolation, and the host-side model broker they talk to.

Layers (each module one concern):

- :mod:`sandbox.limits` / :mod:`sandbox.outcome`: what a backend runs (:class:`~sandbox.limits.JobRun`: any
  command, bind mounts, :class:`~sandbox.limits.Limits`) and how it ended (:class:`~sandbox.outcome.Outcome`,
  :class:`~sandbox.outcome.SandboxOutcome`, the classification rules).
- backends, ``backend.run(JobRun) -> SandboxOutcome``: :mod:`sandbox.docker_backend` (one container per job),
  :mod:`sandbox.bwrap_backend` (bubblewrap + :mod:`sandbox.cgroups` + rlimits, no daemon), the unisolated
  development backend and :func:`~sandbox.backend.select_backend` in :mod:`sandbox.backend`.
- :mod:`sandbox.image` (+ :mod:`sandbox.rootfs`): the content-hashed evaluation image, built offline.
- :mod:`sandbox.broker` (+ :mod:`sandbox.upstream`, :mod:`sandbox.cassette`): OpenAI-compatible HTTP on a Unix
  socket per job; keys stay on the host; budgets; a cassette for offline replay.
- :mod:`sandbox.job`: a harness :class:`~harness.jobspec.JobSpec` in, a validated
  :class:`~sandbox.job.JobReport` out, infrastructure failures retried; :mod:`sandbox.run` is its CLI.

This package imports ``harness`` (to hash, mount and validate it) and never ``engine`` or ``archive``.
"""
