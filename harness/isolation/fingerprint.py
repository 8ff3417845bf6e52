"""Which shared objects of the worker's interpreter a design rebound: an early warning, checked after each call.

A memory design has no reason to replace a builtin, a function of a module it shares with the worker (``json``,
``os``, ``sys``, the harness's own modules), a method of a harness class, or to add an import hook. The worker
takes a :class:`Fingerprint` of those objects before it loads the design and compares after the load and after
every call; what changed is reported as ``tamper`` (the design is then ``hostile``). Like the audit hook this
runs in the design's process and a design can defeat it: the uid and process boundary protect the score, this
only tells the truth about designs that did not bother to hide.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

#: standard modules whose functions the worker and the harness code in it rely on
WATCHED_MODULES = ("json", "json.encoder", "json.decoder", "os", "os.path", "posixpath", "io", "asyncio",
                   "threading", "traceback", "string")
#: the import machinery, compared by content (hooks are added in place)
WATCHED_LISTS = ("meta_path", "path_hooks")
#: names in ``sys`` that a design has no reason to rebind
WATCHED_SYS = ("audit", "addaudithook", "modules", "meta_path", "path_hooks", "path", "exit", "excepthook",
               "stderr", "stdout", "settrace", "setprofile")


def _ids(namespace: dict[str, Any]) -> dict[str, int]:
    return {k: id(v) for k, v in list(namespace.items())}


def _harness_namespaces() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every harness module's namespace, and every class defined in one (its ``__dict__``), by name."""
    modules: dict[str, dict[str, Any]] = {}
    classes: dict[str, dict[str, Any]] = {}
    for name, module in list(sys.modules.items()):
        if not (name == "harness" or name.startswith("harness.")) or module is None:
            continue
        namespace = vars(module)
        modules[name] = namespace
        for attr, value in list(namespace.items()):
            if isinstance(value, type) and getattr(value, "__module__", "") == name:
                classes[f"{name}.{attr}"] = dict(vars(value))
    return modules, classes


class Fingerprint:
    """Identity of the watched objects at one moment; :meth:`changes` names what differs now."""

    def __init__(self) -> None:
        self.builtins = _ids(vars(builtins))
        self.modules = {n: _ids(vars(sys.modules[n])) for n in WATCHED_MODULES if n in sys.modules}
        modules, classes = _harness_namespaces()
        self.harness = {n: _ids(ns) for n, ns in modules.items()}
        self.classes = {n: _ids(ns) for n, ns in classes.items()}
        self.lists = {n: [id(x) for x in getattr(sys, n)] for n in WATCHED_LISTS}
        self.sys = {n: id(getattr(sys, n, None)) for n in WATCHED_SYS}

    def changes(self, limit: int = 8) -> list[str]:
        """Names rebound, removed or (for builtins and harness classes) added since the fingerprint was taken."""
        found = _diff("builtins", self.builtins, _ids(vars(builtins)), added=True)
        for name, before in self.modules.items():
            module = sys.modules.get(name)
            found += [name] if module is None else _diff(name, before, _ids(vars(module)), added=False)
        modules, classes = _harness_namespaces()
        for name, before in self.harness.items():
            found += [name] if name not in modules else _diff(name, before, _ids(modules[name]), added=False)
        for name, before in self.classes.items():
            found += [name] if name not in classes else _diff(name, before, _ids(classes[name]), added=True)
        found += [f"sys.{n}" for n, ids in self.lists.items() if [id(x) for x in getattr(sys, n)] != ids]
        found += [f"sys.{n}" for n, i in self.sys.items() if id(getattr(sys, n, None)) != i]
        return found[:limit]


def _diff(prefix: str, before: dict[str, int], now: dict[str, int], *, added: bool) -> list[str]:
    out = [f"{prefix}.{k}" for k, v in before.items() if now.get(k) != v]
    if added:
        out += [f"{prefix}.{k} (added)" for k in now.keys() - before.keys()]
    return out
