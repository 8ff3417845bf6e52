"""Exceptions raised by the harness. Every message says what failed, where, and what to do."""


class HarnessError(Exception):
    """Base class of every harness error."""


class DesignError(HarnessError):
    """A memory design could not be used. ``design`` names it (a path or a label)."""

    def __init__(self, design: str, message: str):
        self.design = design
        self.message = message
        super().__init__(f"memory design {design!r}: {message}")


class DesignLoadError(DesignError):
    """The design's source does not parse or raises while its module is executed."""


class ContractError(DesignError):
    """The design's module runs but does not satisfy the memory-design contract."""


class BenchmarkError(HarnessError):
    """A benchmark is unknown, not installed, or could not build or play a task."""


class PluginError(BenchmarkError):
    """A benchmark or agent name does not resolve, or its plug-in cannot be imported or constructed
    (:mod:`harness.plugins`); the message says what to install or fix."""


class ModelError(HarnessError):
    """An LLM or embedding endpoint failed after its retries, or is misconfigured."""


class BudgetExceeded(ModelError):
    """A token or request budget was used up."""
