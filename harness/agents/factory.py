"""Building a job's task agent, built-in or plug-in, one instance per episode.

:func:`make_agent` resolves the job's agent name through :mod:`harness.plugins` and calls the class with the
keyword arguments its ``__init__`` declares (see :mod:`harness.agents.base`): ``seed``, ``chat``, ``history``,
``temperature``, ``max_tokens``. :func:`reads_memory` is what the meta agent is told about the agent.
"""

from __future__ import annotations

import inspect
from typing import Any

from harness.errors import PluginError
from harness.plugins import load_agent_class

#: what a plug-in agent's __init__ may declare
AGENT_KWARGS = ("seed", "chat", "history", "temperature", "max_tokens")


class LazyChat:
    """A chat client that asks ``models.chat`` for the real one on the first call, so that declaring ``chat``
    starts no model for an agent that never speaks (the embedded model starts on first use)."""

    def __init__(self, models: Any):
        self._models = models

    def chat(self, *args, **kwargs) -> str:
        return self._models.chat.chat(*args, **kwargs)


def declared_kwargs(cls: Any) -> tuple[set[str], bool]:
    """The names of :data:`AGENT_KWARGS` that ``cls.__init__`` names, and whether it takes ``**kwargs`` (then it
    gets all of them; ``chat`` only where there is a model)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return set(), False
    named = {p.name for p in params if p.name in AGENT_KWARGS
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def make_agent(spec: Any, *, seed: int, models: Any = None, cls: Any = None):
    """A new agent for one episode. ``spec`` is a :class:`harness.jobspec.AgentSpec` (``kind`` = the agent's
    name); ``models`` gives ``chat`` (a :class:`harness.models.factory.Models`, or None when no agent may talk);
    ``cls``: the agent's class when already loaded (``load_agent_class(spec.kind)``).

    Raises PluginError when the agent cannot be loaded or constructed."""
    cls = cls if cls is not None else load_agent_class(spec.kind)
    named, takes_all = declared_kwargs(cls)
    values = {"seed": seed, "history": spec.history, "temperature": spec.temperature,
              "max_tokens": spec.max_tokens}
    kwargs = {k: v for k, v in values.items() if k in named or takes_all}
    if "chat" in named and models is None:
        raise PluginError(f"agent {spec.kind!r} needs a chat model and none was given")
    if models is not None and ("chat" in named or takes_all):
        kwargs["chat"] = LazyChat(models)
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - a plug-in's constructor may raise anything
        raise PluginError(f"agent {spec.kind!r}: constructing {getattr(cls, '__name__', cls)}"
                             f"({', '.join(kwargs)}) raised {type(exc).__name__}: {exc}; an agent's __init__ may "
                             f"declare any of {', '.join(AGENT_KWARGS)} and must need nothing else") from exc


def reads_memory(name: str) -> str:
    """What the agent ``name`` says about how it reads memory text: its class's ``reads_memory`` attribute, else
    its class docstring (the built-in heuristic and LLM agents' notes are prompt files instead, see
    :func:`harness.agents.prompts.memory_notes`). Raises PluginError when it cannot be loaded."""
    cls = load_agent_class(name)
    text = getattr(cls, "reads_memory", None) or inspect.getdoc(cls) or ""
    return str(text).strip() or ("The task agent is a plug-in with no description of how it reads memory; "
                                 "write plain, specific text: the commands and facts that solved similar tasks.")
