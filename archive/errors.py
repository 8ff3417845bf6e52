"""Exceptions raised by the archive. Every message says what failed, where, and what to do."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base class of every archive error."""


class ArchiveLocked(ArchiveError):
    """Another live process holds the run directory's lock.

    ``lock_path`` is the lock file, ``pid`` the holder's process id (``None`` when the holder had not yet
    written it).
    """

    def __init__(self, lock_path: str, pid: int | None, detail: str = ""):
        self.lock_path = lock_path
        self.pid = pid
        who = f"process {pid}" if pid is not None else "another process (pid not yet written)"
        extra = f" {detail}" if detail else ""
        super().__init__(
            f"archive is locked: {who} holds {lock_path}.{extra} Only one evolve/replay run may write to a "
            "run directory at a time: wait for that run to finish, stop it, or open the archive with "
            "lock=False for read-only inspection.")


class UnknownDesign(ArchiveError):
    """No design with this id (or id prefix) is in the archive."""

    def __init__(self, design: str, where: str, hint: str = ""):
        self.design = design
        self.where = where
        super().__init__(
            f"no design {design!r} in the archive at {where}. "
            + (hint or "List the designs (e.g. the run report) and pass a full id or a longer prefix."))


class AmbiguousDesign(UnknownDesign):
    """An id prefix matches more than one design."""

    def __init__(self, prefix: str, where: str, matches: list[str]):
        self.matches = matches
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        super().__init__(prefix, where, f"The prefix matches {len(matches)} designs ({shown}); "
                                        "pass a longer prefix.")


class DuplicateDesign(ArchiveError):
    """A design with the same id (the content hash of its source) is already archived."""

    def __init__(self, design: str, where: str):
        self.design = design
        super().__init__(
            f"design {design!r} is already in the archive at {where} (same source, same content hash). "
            "Skip the duplicate proposal, or pass exist_ok=True to get the archived record back.")


class InvalidTransition(ArchiveError):
    """A status change that the state machine does not allow (e.g. ``invalid -> evaluated``)."""

    def __init__(self, what: str, current: str, requested: str, allowed: tuple[str, ...] | list[str]):
        self.what = what
        self.current = current
        self.requested = requested
        self.allowed = tuple(allowed)
        options = ", ".join(self.allowed) if self.allowed else "none (final state)"
        super().__init__(
            f"{what}: cannot go from {current!r} to {requested!r}; allowed from {current!r}: {options}. "
            "This usually means a step ran twice or out of order; check the run's event log.")


class DuplicateEvaluation(ArchiveError):
    """The same (design, benchmark, split, attempt) was already recorded; it is never counted twice."""

    def __init__(self, design: str, benchmark: str, split: str, attempt: int, status: str):
        self.key = (design, benchmark, split, attempt)
        self.status = status
        super().__init__(
            f"evaluation of design {design!r} on {benchmark}/{split}, attempt {attempt}, already exists "
            f"(status {status!r}). Use Archive.running_evaluations() to resume an interrupted one, or begin "
            "a new attempt (attempt=None picks the next number).")
