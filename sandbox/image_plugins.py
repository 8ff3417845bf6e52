"""Plug-ins in the evaluation image: which projects it holds, their part of its tag, and their wheels.

The image holds, besides the harness and the benchmark packages (:mod:`sandbox.image`):

* every project given with ``python -m sandbox.image build --with DIR`` (``scripts/build_image.sh --with DIR``)
  or listed in ``$ALMA_IMAGE_WITH`` (directories separated by ``:``): a local project (``pyproject.toml`` or
  ``setup.py``) that pip can build;
* every **installed** distribution that registers an ``alma_engine.benchmarks`` or ``alma_engine.agents``
  entry point: built from its source directory when it was installed from one (``pip install [-e] DIR``, as
  ``direct_url.json`` records), else pinned at its installed version like any dependency.

A project's files (and its dependencies, pinned at the host's versions) are part of the content hash, so the
tag changes when the plug-in does. Its wheel is built on the host (``pip wheel --no-deps
--no-build-isolation``: no network; the project's build backend, e.g. setuptools, must be installed) and
installed in the image without its dependencies, which come from the wheelhouse. The image's label
:data:`sandbox.plugins.IMAGE_LABEL` lists the top-level modules it holds, which jobs are checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sandbox.errors import ImageError

ENV_VAR = "ALMA_IMAGE_WITH"
GROUPS = ("alma_engine.benchmarks", "alma_engine.agents")
#: never hashed: build outputs and caches inside a project directory
_SKIP_DIRS = frozenset({"build", "dist", "__pycache__", ".git", ".venv", ".pytest_cache", ".ruff_cache"})
#: the host package itself: its harness is in the image already
_HOST = "alma-engine"


@dataclass(frozen=True)
class PluginProject:
    """A local project to build into the image: its directory, distribution name and declared dependencies."""

    path: Path
    name: str
    requires: tuple[str, ...] = ()


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def project_from_dir(path: str | Path) -> PluginProject:
    """The project in ``path``. Raises ImageError when there is none or its metadata cannot be read statically."""
    root = Path(path).expanduser().resolve()
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        if (root / "setup.py").is_file():
            return PluginProject(root, root.name)
        raise ImageError(f"{root} is not a Python project (no pyproject.toml or setup.py); --with and "
                         f"{ENV_VAR} take the directory of a project that `pip install DIR` accepts")
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImageError(f"cannot read {pyproject}: {exc}") from exc
    if "dependencies" in project.get("dynamic", []):
        raise ImageError(f"{pyproject} declares its dependencies as dynamic; list them in [project].dependencies "
                         "so that the image can pin them")
    requires = tuple(r for r in project.get("dependencies", []) if _norm(_req_name(r)) != _HOST)
    return PluginProject(root, str(project.get("name") or root.name), requires)


def _req_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name


def _source_dir(dist: metadata.Distribution) -> Path | None:
    """The local directory ``dist`` was installed from (PEP 610 ``direct_url.json``), if any and still there."""
    try:
        info = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    url = (info or {}).get("url", "")
    if not url.startswith("file://") or "dir_info" not in (info or {}):
        return None
    path = Path(url.removeprefix("file://"))
    return path if path.is_dir() else None


def installed_plugins() -> tuple[list[PluginProject], list[str]]:
    """Installed distributions with an alma-engine entry point: (projects built from their source directory,
    ``name==version`` pins of those installed from an index)."""
    projects: dict[str, PluginProject] = {}
    pins: set[str] = set()
    for group in GROUPS:
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            if dist is None or _norm(dist.name) == _HOST:
                continue
            source = _source_dir(dist)
            if source is not None:  # its installed metadata, not its pyproject: dynamic fields are resolved there
                requires = tuple(r for r in dist.requires or [] if _norm(_req_name(r)) != _HOST)
                projects.setdefault(str(source), PluginProject(source.resolve(), dist.name, requires))
            else:
                pins.add(f"{dist.name}=={dist.version}")
    return list(projects.values()), sorted(pins)


def requested_dirs(with_dirs: list[str | Path] | None = None) -> list[str | Path]:
    """``with_dirs`` plus the directories of ``$ALMA_IMAGE_WITH``."""
    env = [d for d in os.environ.get(ENV_VAR, "").split(os.pathsep) if d.strip()]
    return [*(with_dirs or []), *env]


def image_plugins(with_dirs: list[str | Path] | None = None) -> tuple[list[PluginProject], list[str]]:
    """Every plug-in the image should hold (see the module docstring): (local projects, index pins)."""
    projects = {str(p.path): p for p in (project_from_dir(d) for d in requested_dirs(with_dirs))}
    installed, pins = installed_plugins()
    for p in installed:
        projects.setdefault(str(p.path), p)
    return sorted(projects.values(), key=lambda p: str(p.path)), pins


def project_files(project: PluginProject) -> list[Path]:
    """The files of ``project`` that go into its wheel's hash (build outputs and caches left out)."""
    out = []
    for path in sorted(project.path.rglob("*")):
        rel = path.relative_to(project.path).parts
        if path.is_file() and not any(p in _SKIP_DIRS or p.endswith(".egg-info") for p in rel) \
                and path.suffix not in (".pyc", ".pyo"):
            out.append(path)
    return out


def hash_projects(h: hashlib._Hash, projects: list[PluginProject]) -> None:
    """Feed every project's name and files into ``h`` (part of the image's content hash)."""
    for project in projects:
        h.update(f"plugin:{project.name}\0".encode())
        for path in project_files(project):
            h.update(f"{path.relative_to(project.path).as_posix()}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())


def wheel_modules(wheel: Path) -> list[str]:
    """The top-level modules a wheel installs."""
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
    return sorted(t.removesuffix(".py") for t in tops
                  if not t.endswith((".dist-info", ".data")) and (t.endswith(".py") or "." not in t))


def dist_modules(pin: str) -> list[str]:
    """The top-level modules of an installed distribution (``name==version``)."""
    dist = metadata.distribution(pin.split("==")[0])
    listed = (dist.read_text("top_level.txt") or "").split()
    if listed:
        return sorted(listed)
    tops = {f.parts[0] for f in (dist.files or []) if len(f.parts) > 0}
    return sorted(t.removesuffix(".py") for t in tops
                  if not t.endswith((".dist-info", ".data")) and (t.endswith(".py") or "." not in t))


def build_wheels(projects: list[PluginProject], dest: Path) -> list[str]:
    """Build each project's wheel into ``dest`` (no network), from a copy of its hashed files so that the build
    leaves nothing in the project; returns the top-level modules the wheels install."""
    dest.mkdir(parents=True, exist_ok=True)
    modules: set[str] = set()
    for project in projects:
        before = set(dest.glob("*.whl"))
        with tempfile.TemporaryDirectory(prefix="alma-plugin-") as tmp:
            copy = Path(tmp) / project.path.name
            for path in project_files(project):
                target = copy / path.relative_to(project.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                   "--disable-pip-version-check", "--wheel-dir", str(dest), str(copy)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
        made = set(dest.glob("*.whl")) - before
        if proc.returncode != 0 or not made:
            raise ImageError(f"building the wheel of the plug-in {project.name} ({project.path}) failed (exit "
                             f"{proc.returncode}); its build backend must be installed on the host (pip install "
                             f"setuptools):\n{(proc.stdout + proc.stderr)[-2000:]}")
        for wheel in made:
            modules.update(wheel_modules(wheel))
    return sorted(modules)
