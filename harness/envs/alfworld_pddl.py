"""The ALFWorld runtime: importing the package safely and opening its PDDL text environment.

* :func:`require_alfworld` imports ``alfworld`` (and its planner, ``fast_downward``) after pointing
  ``ALFWORLD_DATA`` at a folder under our cache, because importing alfworld creates that folder (by default
  ``~/.cache/alfworld``). A missing package raises :class:`~harness.errors.BenchmarkError` saying what to install.
* :func:`open_pddl_env` builds what ALFWorld's own text environment builds: ``textworld.envs.PddlEnv`` wrapped
  with ALFWorld's ``AlfredDemangler`` (entity ids -> "cabinet 3") and ``AlfredInfos``.
* :func:`pddl_session` must surround every ``load``/``reset`` of such an environment, and :data:`PDDL_LOCK`
  every ``step``. Neither library is thread-safe: fast-downward's PDDL translator rebinds ``sys.argv``, swaps
  ``sys.stdout`` and keeps options in module globals, and textworld's PDDL text generation parses every
  derivation (each step) with one module-wide parser. So all calls are serialised by one process-wide lock
  (they are pure Python under the GIL: nothing is lost). And since ``PddlEnv`` translates the same problem
  four times for a first ``load`` + ``reset`` (twice each), translations are memoised per (domain, problem,
  options) while a session is open.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import BenchmarkError

#: Install hint used in every "package missing" message.
INSTALL_HINT = ("install it into the harness environment with `pip install alfworld` (its planner, "
                "fast-downward-textworld, compiles from source in about 2 minutes)")

#: Serialises every use of textworld's PDDL environment in this process (see the module docstring).
PDDL_LOCK = threading.RLock()
_MEMO: OrderedDict[tuple[bool, str, str], Any] = OrderedDict()
_MEMO_SIZE = 8
_depth = 0


def default_cache_root() -> Path:
    """``$ALMA_CACHE_DIR/alfworld`` if set, else ``~/.cache/alma-engine/alfworld``."""
    root = os.environ.get("ALMA_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "alma-engine"
    return base / "alfworld"


def alfworld_data_dir() -> Path:
    """``$ALFWORLD_DATA``; when unset it is set (before alfworld is imported, which creates the folder) to
    ``<cache>/data``, or to a folder under the temp dir when the cache is read-only (inside the sandbox)."""
    value = os.environ.get("ALFWORLD_DATA")
    if not value:
        folder = default_cache_root() / "data"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = Path(tempfile.gettempdir()) / "alma-alfworld-data"
        value = str(folder)
        os.environ["ALFWORLD_DATA"] = value
    return Path(value)


def require_alfworld():
    """Import and return the ``alfworld`` package (and check its planner). Raises BenchmarkError if missing."""
    alfworld_data_dir()
    try:
        import alfworld
        import alfworld.gen.constants  # noqa: F401
        import alfworld.gen.goal_library  # noqa: F401
    except ImportError as exc:
        raise BenchmarkError(f"the alfworld benchmark needs the `alfworld` package ({exc}); {INSTALL_HINT}") from exc
    try:
        import fast_downward  # noqa: F401
        from textworld.envs.pddl import PddlEnv  # noqa: F401
    except ImportError as exc:
        raise BenchmarkError(f"alfworld is installed but its planner is not ({exc}); install "
                             "`textworld[pddl]` / `fast-downward-textworld`, or reinstall alfworld: "
                             f"{INSTALL_HINT}") from exc
    return alfworld


def alfworld_version() -> str:
    return str(getattr(require_alfworld(), "__version__", "unknown"))


def builtin_paths() -> dict[str, Path]:
    """The files alfworld ships: PDDL domain, text grammar and the floor-plan layout folder."""
    require_alfworld()
    import alfworld.gen.constants as constants
    import alfworld.info as info

    return {"domain": Path(info.ALFRED_PDDL_PATH), "grammar": Path(info.ALFRED_TWL2_PATH),
            "layouts": Path(constants.__file__).parent / "layouts"}


class _MemoisedTranslator:
    """Stands in for the ``fast_downward`` module inside textworld's PDDL logic while a session is open."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def pddl2sas(self, domain: str, problem: str, verbose: bool = False, optimize: bool = False):
        key = (bool(optimize), hashlib.sha1(domain.encode()).hexdigest(), hashlib.sha1(problem.encode()).hexdigest())
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
        argv, stdout = sys.argv, sys.stdout
        try:
            result = self._real.pddl2sas(domain, problem, verbose=verbose, optimize=optimize)
        except SystemExit as exc:  # the translator exits on malformed problems
            raise RuntimeError(f"fast-downward's translator rejected the PDDL problem (exit {exc.code})") from None
        finally:
            sys.argv, sys.stdout = argv, stdout
        _MEMO[key] = result
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
        return result


@contextmanager
def pddl_session():
    """Hold the translation lock and memoise translations (re-entrant). Wrap every load/reset in it."""
    global _depth
    from textworld.envs.pddl import logic

    with PDDL_LOCK:
        if _depth == 0:
            real = logic.fast_downward
            logic.fast_downward = _MemoisedTranslator(real)
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                logic.fast_downward = logic.fast_downward._real


def open_pddl_env(plan: bool = False):
    """A fresh ALFWorld text environment: ``PddlEnv`` + ``AlfredDemangler`` + ``AlfredInfos``.

    ``plan=True`` also requests the planner's ``policy_commands`` (generation and tests only: never given to an
    agent). Each instance holds its own copy of fast-downward's library; release it with :func:`close_pddl_env`.
    """
    require_alfworld()
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    infos = textworld.EnvInfos(admissible_commands=True, won=True, policy_commands=plan)
    return AlfredInfos(AlfredDemangler(PddlEnv(infos), shuffle=False))


def close_pddl_env(env) -> None:
    """Release the environment's planner state (safe on a half-built or already closed environment).

    The library copy itself stays mapped until the process exits: unloading it (``fast_downward.close_lib``,
    i.e. ``dlclose``) after a search makes the interpreter crash at exit."""
    if env is None:
        return
    inner = env.unwrapped if hasattr(env, "unwrapped") else env
    lib = getattr(inner, "downward_lib", None)
    if lib is not None:
        try:
            lib.cleanup()
        finally:
            inner.downward_lib = None
