"""The Support Desk benchmark: resolve help-desk tickets whose right fix depends on the customer's account.

A ticket names the customer and the issue; the console offers every fix (each phrased ``<fix> for
<customer>``) and a change-approval request. A wrong fix does nothing; the right one resolves the ticket. Some
customers' contracts refuse any fix before a change approval: a refused fix waits for it, and the approval
applies it. Backlog (train) tickets allow 15 actions, live
(id, ood) tickets 3, so a live ticket is solved reliably only by remembering what fixed this customer's issue
before (see :mod:`support_desk.tickets`).

Use it by name once installed (``pip install ./examples/support_desk`` registers the entry point
``support_desk``), or by module path (``support_desk.envs:SupportDesk``) with its directory on ``PYTHONPATH``.
"""

from __future__ import annotations

import random

from harness.envs.base import Observation, StepResult, TaskSpec, TaskSuite
from harness.errors import BenchmarkError
from support_desk.tickets import APPROVAL, FIXES, ISSUES, LIVE_ACTIONS, suite_params

_REQUIRED = ("customer", "issue", "fix", "needs_approval", "ticket", "wording", "order", "step_limit")


class SupportDeskEnv:
    """One help-desk console (see the module docstring). Text only; deterministic from the task's params."""

    def __init__(self) -> None:
        self.params: dict | None = None
        self.actions: list[str] = []
        self.approved = False
        self.pending: str | None = None
        self.done = True

    def reset(self, task: TaskSpec) -> Observation:
        """Open ``task``'s ticket: the ticket text, the goal, and the commands of the console."""
        p = task.params
        missing = [k for k in _REQUIRED if k not in p]
        if missing or p.get("issue") not in ISSUES or p.get("fix") not in FIXES:
            raise BenchmarkError(f"support_desk: task {task.task_id!r} is not a Support Desk ticket (missing or "
                                 f"unknown params: {', '.join(missing) or 'issue/fix'}); build it with "
                                 "SupportDesk().build_suite(seed, n_train, n_test)")
        self.params, self.approved, self.pending, self.done = dict(p), False, None, False
        who = p["customer"].capitalize()
        self.actions = [f"{fix} for {p['customer']}" for fix in FIXES] + [f"{APPROVAL} for {p['customer']}"]
        random.Random(p["order"]).shuffle(self.actions)
        label, wordings = ISSUES[p["issue"]]
        text = (f"Ticket #{p['ticket']} | Customer: {who} | Issue: {label}\n"
                f"\"{wordings[p['wording']]}\"\n"
                f"SLA: resolve within {p['step_limit']} actions.")
        goal = f"Resolve ticket #{p['ticket']} from {who}: {label}."
        return Observation(text=text, goal=goal, admissible_actions=list(self.actions))

    def _result(self, text: str, *, reward: float = 0.0, won: bool = False) -> StepResult:
        p = self.params
        progress = 1.0 if won else (0.5 if p["needs_approval"] and self.approved else 0.0)
        self.done = won
        return StepResult(observation=text, reward=reward, done=won, won=won,
                          admissible_actions=[] if won else list(self.actions), progress=progress)

    def step(self, action: str) -> StepResult:
        """Run one console command (an unknown one is answered, not raised)."""
        if self.params is None or self.done:
            raise BenchmarkError("support_desk: step() before reset() or after the ticket was resolved")
        p = self.params
        who = p["customer"].capitalize()
        command = " ".join(str(action).lower().split())
        if command not in self.actions:
            return self._result("That's not a command the console knows.")
        if command.startswith(APPROVAL):
            if not p["needs_approval"]:
                return self._result(f"{who}'s contract needs no change approval.")
            if self.approved:
                return self._result(f"An approval for {who} is already on file.")
            self.approved = True
            if self.pending is None:
                return self._result(f"Approved: fixes may now be applied to {who}'s account.")
            command, self.pending = self.pending, None
            return self._fix(command, prefix="Approved; the waiting fix runs. ")
        if p["needs_approval"] and not self.approved:
            self.pending = command
            return self._result(f"You can't change {who}'s account yet: their contract requires a change "
                                "approval first. The fix waits for it.")
        return self._fix(command)

    def _fix(self, command: str, prefix: str = "") -> StepResult:
        p = self.params
        who, label = p["customer"].capitalize(), ISSUES[p["issue"]][0]
        if command == f"{p['fix']} for {p['customer']}":
            return self._result(f"{prefix}{who} confirms the {label} are gone. Ticket #{p['ticket']} resolved.",
                                reward=1.0, won=True)
        return self._result(f"{prefix}Nothing happens: {who} still reports {label}.")

    def close(self) -> None:
        """Nothing to release."""
        self.params = None


class SupportDesk:
    """The benchmark: a deterministic ticket suite per seed and a console factory (see the module docstring)."""

    name = "support_desk"
    step_limit = LIVE_ACTIONS  # tasks carry their own (backlog 15, live 3)

    def build_suite(self, seed: int, n_train: int, n_test: int, cache_dir: str | None = None) -> TaskSuite:
        """Tickets for ``seed`` (no files: ``cache_dir`` is not used)."""
        params = suite_params(seed, n_train, n_test)
        suite = TaskSuite(benchmark=self.name, seed=seed)
        for split, tickets in params.items():
            specs = [TaskSpec(task_id=f"sd-{seed}-{split}-{k:03d}", benchmark=self.name, split=split,
                              world_id=t["customer"], params=t) for k, t in enumerate(tickets)]
            setattr(suite, split, specs)
        return suite

    def make_env(self) -> SupportDeskEnv:
        """A new console."""
        return SupportDeskEnv()
