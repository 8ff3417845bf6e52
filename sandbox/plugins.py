"""Making a job's plug-in benchmark or agent importable inside the sandbox, or refusing the job early.

A plug-in (``--benchmark my_pkg.envs:MyBenchmark``, an installed entry point, see :mod:`harness.plugins`) runs
in the scorer inside the sandbox, so its code must be there too. Per backend:

* **bubblewrap** sees the host's interpreter and venv read-only; a plug-in installed in that venv (``pip
  install``, not editable) needs nothing. Any other location of its top-level module (an editable install, a
  ``--target`` directory, a checkout on ``PYTHONPATH``) is bound read-only at ``/opt/alma/plugins/<n>/`` and put
  on the job's ``PYTHONPATH``. Only the module's own directory (or file) is bound, not its parent.
* **docker** runs the evaluation image, which must hold the plug-in: ``bash scripts/build_image.sh --with
  PROJECT_DIR`` (or ``ALMA_IMAGE_WITH=PROJECT_DIR``, or installing it on the host) builds one that does
  (:mod:`sandbox.image_plugins`); the image's label lists the top-level modules it holds.
* **none** runs on the host: the plug-in's directories go on ``PYTHONPATH``.

:func:`plugin_access` raises :class:`PluginUnavailable` before anything runs when the backend cannot be given
the plug-in; the message says how to add it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.jobspec import JobSpec
from harness.plugins import ImportLocation, harness_root, import_locations, plugin_names
from sandbox.errors import SandboxError
from sandbox.limits import Mount

#: where bubblewrap jobs find plug-ins (next to the harness at /opt/alma/harness)
PLUGINS_TARGET = "/opt/alma/plugins"
HARNESS_PARENT = "/opt/alma"
#: image label: JSON list of the top-level modules of the plug-ins an evaluation image holds
IMAGE_LABEL = "org.alma-engine.plugins"


class PluginUnavailable(SandboxError):
    """A job's plug-in cannot be made importable in this sandbox (the message says how to add it)."""


@dataclass
class PluginAccess:
    """What a job needs besides its usual mounts: read-only binds of plug-in code and environment variables."""

    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _locations(spec: JobSpec) -> list[tuple[str, str, ImportLocation]]:
    out = []
    for kind, name in plugin_names(spec.benchmark, spec.agent.kind):
        try:
            out.extend((kind, name, loc) for loc in import_locations(kind, name))
        except HarnessError as exc:
            raise PluginUnavailable(f"{exc} (the host must be able to import a plug-in to give it to a sandbox)") \
                from exc
    return out


def _visible(path: Path, roots: list[str]) -> bool:
    return any(path == Path(r) or Path(r) in path.parents for r in roots)


def image_modules(client: Any, image: str) -> set[str] | None:
    """The plug-in modules an evaluation image holds (its :data:`IMAGE_LABEL`), or None when it is not there."""
    try:
        labels = client.images.get(image).labels or {}
    except Exception:  # noqa: BLE001 - a missing image is reported by the backend itself
        return None
    try:
        return set(json.loads(labels.get(IMAGE_LABEL, "[]")))
    except ValueError:
        return set()


def plugin_access(backend: Any, spec: JobSpec) -> PluginAccess:
    """The mounts and environment that make ``spec``'s plug-ins importable in ``backend``'s sandbox (nothing for
    built-ins). Raises PluginUnavailable when that cannot be done."""
    found = _locations(spec)
    if not found:
        return PluginAccess()
    name = getattr(backend, "name", "")
    if not getattr(backend, "isolated", True):
        roots = list(dict.fromkeys(str(loc.root) for _, _, loc in found))
        return PluginAccess(env={"PYTHONPATH": ":".join(roots)})
    if name == "docker":
        held = image_modules(backend.client, backend.image)
        missing = [(kind, pname, loc) for kind, pname, loc in found if held is not None and loc.module not in held]
        if missing:
            kind, pname, loc = missing[0]
            project = _project_dir(loc.path) or "PROJECT_DIR"
            raise PluginUnavailable(
                f"the evaluation image {backend.image} does not hold the module {loc.module!r} of the {kind} "
                f"{pname!r}. Build an image that does: `bash scripts/build_image.sh --with {project}` and pass the "
                f"tag it prints (--image TAG), or export ALMA_IMAGE_WITH={project} so that the default image "
                "includes it (an installed plug-in, one with an entry point, is included by itself). Or run on "
                "bubblewrap (--backend bubblewrap), which binds it read-only.")
        return PluginAccess()
    visible = [*getattr(backend, "runtime_roots", []), getattr(backend, "harness_dir", "")]
    access, paths = PluginAccess(), []
    for _, _, loc in found:
        if _visible(loc.path, [v for v in visible if v]):
            continue
        n = len(paths)
        access.mounts.append(Mount(loc.path, f"{PLUGINS_TARGET}/{n}/{loc.path.name}"))
        paths.append(f"{PLUGINS_TARGET}/{n}")
    if paths:
        access.env["PYTHONPATH"] = ":".join([HARNESS_PARENT, *paths])
    return access


def _project_dir(path: Path) -> Path | None:
    """The nearest directory above ``path`` with a pyproject.toml or setup.py (a project pip can install); None
    when that is alma-engine's own project or ``path`` is installed in this interpreter's environment."""
    if Path(sys.prefix).resolve() in path.parents:
        return None
    for parent in [path, *path.parents]:
        if (parent / "pyproject.toml").is_file() or (parent / "setup.py").is_file():
            return None if parent == harness_root() else parent
    return None


def plugin_projects(spec: JobSpec) -> list[Path]:
    """The project directories of ``spec``'s plug-ins that are not installed here (for the image's ``--with``);
    installed plug-ins with an entry point are in the image by themselves."""
    return sorted({d for _, _, loc in _locations(spec) if (d := _project_dir(loc.path)) is not None})
