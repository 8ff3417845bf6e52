"""Exceptions raised by the sandbox. Every message says what failed, where, and what to do about it.

Only :class:`InfraError` is transient: the job layer retries it and never scores it against the design.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class of every sandbox error."""


class SandboxUnavailable(SandboxError):
    """A backend cannot be used on this machine (no daemon, no bubblewrap, no writable cgroup, ...)."""


class InfraError(SandboxError):
    """The infrastructure failed while running a job (daemon gone, image missing, broker down, sandbox did not
    start). Retried by the job layer; the job ends as ``infra_error`` when the retries are used up."""


class ImageError(SandboxError):
    """The evaluation image could not be found or built."""


class BrokerError(SandboxError):
    """The host-side LLM broker could not start or serve."""


class CassetteMiss(BrokerError):
    """Replay mode: a request has no recorded response in the cassette."""
