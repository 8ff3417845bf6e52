"""Plug-ins: benchmarks and task agents named by the user, resolved in one place.

A benchmark or agent name is one of three things, tried in this order:

1. a **built-in** name: the benchmarks of :data:`BUILTIN_BENCHMARKS` (``textworld`` ...) and the agents of
   :data:`BUILTIN_AGENTS` (``heuristic``, ``llm``, ``random``);
2. the name of an **entry point** of an installed distribution, in the group :data:`BENCHMARK_GROUP`
   (``alma_engine.benchmarks``) or :data:`AGENT_GROUP` (``alma_engine.agents``); a package registers one in its
   ``pyproject.toml``::

       [project.entry-points."alma_engine.benchmarks"]
       support_desk = "support_desk.envs:SupportDesk"

3. a **module path** ``module:Class`` (``my_pkg.envs:SupportDesk``), imported from ``sys.path``.

:func:`load_benchmark_class` / :func:`load_agent_class` return the class; :func:`get_benchmark`
(re-exported by :mod:`harness.envs`) and :func:`harness.agents.factory.make_agent` build instances. Every
failure is a :class:`harness.errors.PluginError` (agents too: an agent that cannot be loaded makes the
benchmark unplayable) whose message says what to install or fix.

:func:`import_locations` tells the sandbox which host files a plug-in's code lives in, so that an isolated
evaluation can make them importable (bubblewrap binds them read-only; Docker checks that its image holds them).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator

from harness.errors import BenchmarkError, PluginError

BENCHMARK_GROUP = "alma_engine.benchmarks"
AGENT_GROUP = "alma_engine.agents"

#: built-in benchmark name -> "module:Class"; imported lazily so a missing optional package only hurts its user
BUILTIN_BENCHMARKS: dict[str, str] = {
    "textworld": "harness.envs.textworld_env:TextWorldBenchmark",
    "babaisai": "harness.envs.babaisai.benchmark:BabaIsAIBenchmark",
    "minihack": "harness.envs.minihack_env:MiniHackBenchmark",
    "alfworld": "harness.envs.alfworld_env:ALFWorldBenchmark",
}
#: built-in agent name -> "module:Class"
BUILTIN_AGENTS: dict[str, str] = {
    "heuristic": "harness.agents.heuristic:HeuristicAgent",
    "llm": "harness.agents.llm_agent:LLMAgent",
    "random": "harness.agents.random_agent:RandomAgent",
}

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
                          r"(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_KINDS = {"benchmark": (BUILTIN_BENCHMARKS, BENCHMARK_GROUP), "agent": (BUILTIN_AGENTS, AGENT_GROUP)}


def check_name(name: str) -> str:
    """``name`` if it is syntactically a plug-in name (a plain name, or ``module:Class``); else ValueError.

    Only the shape is checked: whether the name resolves is known only where the plug-in is installed (the
    host, or the sandbox's image), so job documents validate anywhere."""
    if not isinstance(name, str) or not (_PLAIN_NAME.match(name) or _MODULE_PATH.match(name)):
        raise ValueError(f"{name!r} is not a benchmark/agent name: use a built-in or installed plug-in's name "
                         "(letters, digits, _ . -) or a module path such as 'my_pkg.envs:MyBenchmark'")
    return name


#: a str that must be a plug-in name (pydantic field type for job specs and configs)
PluginName = Annotated[str, AfterValidator(check_name)]


def is_module_path(name: str) -> bool:
    return ":" in name


def entry_points(kind: str) -> dict[str, metadata.EntryPoint]:
    """The installed entry points of ``kind`` ("benchmark" or "agent"), by name (first one wins)."""
    _, group = _KINDS[kind]
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def known_names(kind: str) -> list[str]:
    """Built-in names, then installed plug-ins' names, of ``kind``."""
    builtins, _ = _KINDS[kind]
    return [*builtins, *sorted(set(entry_points(kind)) - set(builtins))]


@dataclass(frozen=True)
class Origin:
    """Where a name resolves to: ``target`` is ``module:Class``; ``via`` is "builtin", "entry point" or
    "module path"; ``distribution`` names the installed distribution of an entry point."""

    name: str
    target: str
    via: str
    distribution: str | None = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def builtin(self) -> bool:
        return self.via == "builtin"


def resolve(kind: str, name: str) -> Origin:
    """Where the ``kind`` plug-in ``name`` comes from (nothing is imported). Raises PluginError for an unknown
    name, listing the known ones."""
    builtins, group = _KINDS[kind]
    if name in builtins:
        return Origin(name, builtins[name], "builtin")
    if is_module_path(name):
        try:
            check_name(name)
        except ValueError as exc:
            raise PluginError(str(exc)) from None
        return Origin(name, name, "module path")
    ep = entry_points(kind).get(name)
    if ep is None:
        raise PluginError(
            f"unknown {kind} {name!r}; known: {', '.join(known_names(kind))}. A plug-in is named by its "
            f"installed entry point (group {group!r}) or by its module path, e.g. 'my_pkg.module:ClassName'")
    dist = getattr(ep, "dist", None)
    return Origin(name, ep.value.replace(" ", ""), "entry point", dist.name if dist is not None else None)


def _import_target(kind: str, origin: Origin) -> Any:
    module_name, _, attr = origin.target.partition(":")
    where = f"{kind} {origin.name!r}" + (f" (from the distribution {origin.distribution!r})"
                                         if origin.distribution else "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or module_name
        if origin.builtin:
            hint = "run the README's setup command (scripts/setup.sh) to install the benchmark packages"
        elif missing.split(".")[0] == module_name.split(".")[0]:
            hint = (f"install the package that provides {module_name!r} (pip install PATH_OR_NAME) or put its "
                    "directory on PYTHONPATH")
        else:
            hint = f"install its dependency {missing!r}"
        error = BenchmarkError if origin.builtin else PluginError  # a built-in: a setup problem, not bad input
        raise error(f"{where} needs the module {missing!r}, which cannot be imported ({exc}); {hint}") from exc
    except Exception as exc:  # noqa: BLE001 - a plug-in's module may raise anything at import time
        raise PluginError(f"{where}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"{where}: the module {module_name!r} has no attribute {attr!r}; check the "
                                 "name after the colon") from None
    if not callable(obj):
        raise PluginError(f"{where}: {origin.target!r} is a {type(obj).__name__}, not a class")
    return obj


def load_benchmark_class(name: str) -> Any:
    """The class (or zero-argument factory) of the benchmark ``name``; see the module docstring."""
    return _import_target("benchmark", resolve("benchmark", name))


def load_agent_class(name: str) -> Any:
    """The class of the task agent ``name``; see the module docstring and :mod:`harness.agents.factory`."""
    return _import_target("agent", resolve("agent", name))


def get_benchmark(name: str):
    """A new instance of the benchmark ``name`` (built-in, entry point or ``module:Class``). Raises PluginError
    when it cannot be loaded or constructed without arguments (BenchmarkError when a built-in's optional
    package is missing)."""
    cls = load_benchmark_class(name)
    try:
        return cls()
    except Exception as exc:  # noqa: BLE001 - a plug-in's constructor may raise anything
        raise PluginError(f"benchmark {name!r}: constructing {getattr(cls, '__name__', cls)!r}() raised "
                          f"{type(exc).__name__}: {exc}; a benchmark class must construct without arguments") \
            from exc


# ---------------------------------------------------------------------------------------------- for the sandbox
@dataclass(frozen=True)
class ImportLocation:
    """A plug-in's top-level module ``module`` lives at ``path`` on the host (a package directory or a module
    file) under the ``sys.path`` entry ``root``."""

    module: str
    path: Path
    root: Path


def plugin_names(benchmark: str, agent: str) -> list[tuple[str, str]]:
    """The (kind, name) pairs of a job that are not built-in."""
    pairs = [("benchmark", benchmark), ("agent", agent)]
    return [(k, n) for k, n in pairs if n not in _KINDS[k][0]]


def import_locations(kind: str, name: str) -> list[ImportLocation]:
    """Where the code of the ``kind`` plug-in ``name`` lives on this host: its top-level module's package
    directories (several for a namespace package) or module file. Built-ins live in the harness: [].

    Raises PluginError when the module cannot be found here."""
    origin = resolve(kind, name)
    if origin.builtin:
        return []
    top = origin.module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise PluginError(f"{kind} {name!r}: cannot locate the module {top!r}: {exc}") from exc
    if spec is None:
        raise PluginError(f"{kind} {name!r}: the module {top!r} is not importable on this host; install the "
                             "plug-in (pip install PATH) or put its directory on PYTHONPATH")
    paths = [Path(p) for p in (spec.submodule_search_locations or [])] if spec.submodule_search_locations \
        else [Path(spec.origin)] if spec.origin and spec.has_location else []
    if not paths:
        raise PluginError(f"{kind} {name!r}: the module {top!r} has no files on this host (built into the "
                             "interpreter?), so a sandbox cannot be given it")
    locations = [ImportLocation(top, p.resolve(), p.resolve().parent) for p in paths]
    meta = _metadata_dir(origin)
    if meta is not None:  # an entry point's name resolves only where its distribution's metadata is found
        locations.append(ImportLocation(top, meta, meta.parent))
    return locations


def _metadata_dir(origin: Origin) -> Path | None:
    """The ``*.dist-info`` directory of an entry point's distribution, or None."""
    if origin.distribution is None:
        return None
    try:
        files = metadata.distribution(origin.distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "entry_points.txt" and str(f.parent).endswith(".dist-info"):
            return Path(f.locate()).resolve().parent
    return None


def harness_root() -> Path:
    """The directory holding the ``harness`` package (a plug-in there needs nothing extra in a sandbox)."""
    return Path(sys.modules["harness"].__file__).resolve().parents[1]
