"""The evaluation image: content-hashed tag, host-side wheelhouse, offline build.

``python -m sandbox.image build`` builds ``alma-eval:<hash>`` from ``Dockerfile.eval`` unless that tag exists.
The hash covers the harness's files, ``Dockerfile.eval`` and the pinned dependency set (the closure of the
project's runtime dependencies and its ``benchmarks`` extra, at the versions installed on the host), so the
image is rebuilt exactly when one of them changes. The build itself has no network: Python packages come
from a wheelhouse made on the host with ``pip wheel`` (cached per dependency set), and the base image is the
official slim Python image when present or pullable, else a local Debian made by :mod:`sandbox.rootfs`.

Other commands: ``tag`` (print the current tag), ``status`` (whether it is built), ``prune`` (remove
older evaluation images and dangling build stages).

Plug-in benchmarks and agents (:mod:`harness.plugins`) go into the image too: ``build --with PROJECT_DIR``
(repeatable), the directories in ``$ALMA_IMAGE_WITH``, and every installed distribution with an alma-engine entry
point (:mod:`sandbox.image_plugins`); they are part of the hash, so the tag says which plug-ins it holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

import harness
from sandbox.errors import ImageError
from sandbox.image_plugins import PluginProject, build_wheels, dist_modules, hash_projects, image_plugins
from sandbox.plugins import IMAGE_LABEL

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile.eval"
IMAGE_REPOSITORY = "alma-eval"
IMAGE_UID = 10001
OFFICIAL_BASE = "python:3.11-slim"
#: Not needed inside the image (build tooling the closure drags in).
_EXCLUDE = frozenset({"pip", "setuptools", "wheel"})


def cache_root() -> Path:
    return Path(os.environ.get("ALMA_IMAGE_CACHE") or Path.home() / ".cache" / "alma-engine" / "image")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


#: Optional-dependency groups of pyproject.toml that the image holds besides the core dependencies: the
#: benchmarks (minihack/nle, alfworld and its planner), so that every benchmark runs inside the sandbox.
IMAGE_EXTRAS = ("benchmarks",)


def runtime_requirements() -> list[str]:
    """The image's root requirements: ``[project].dependencies`` plus the :data:`IMAGE_EXTRAS` groups."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        extras = project.get("optional-dependencies", {})
        return [*project["dependencies"], *(r for group in IMAGE_EXTRAS for r in extras.get(group, []))]
    dist = metadata.distribution("alma-engine")
    wanted = []
    for raw in dist.requires or []:
        req = Requirement(raw)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *IMAGE_EXTRAS)):
            req.marker = None
            wanted.append(str(req))
    return wanted


def pinned_dependencies(roots: list[str] | None = None) -> list[str]:
    """``name==version`` for every distribution in the closure of ``roots``, as installed on the host.

    A requirement's extras are followed (``textworld[pddl]`` brings what textworld's ``pddl`` extra needs)."""
    pins: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    stack = [(Requirement(r), "") for r in (roots or runtime_requirements())]
    while stack:
        req, via_extra = stack.pop()
        if req.marker and not req.marker.evaluate({"extra": via_extra}):
            continue
        key = _norm(req.name)
        todo = [extra for extra in ("", *sorted(req.extras)) if (key, extra) not in done]
        if key in _EXCLUDE or not todo:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise ImageError(f"dependency {req.name!r} is not installed on the host; install the project "
                             "(scripts/setup.sh, or pip install -e '.[benchmarks]') so the image can pin the "
                             "versions that were tested") from None
        pins[key] = dist.version
        for extra in todo:
            done.add((key, extra))
            stack.extend((Requirement(r), extra) for r in dist.requires or [])
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def harness_files() -> list[Path]:
    root = Path(harness.__file__).resolve().parent
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc", ".pyo"))


def image_inputs(with_dirs: list[str | Path] | None = None) -> tuple[list[str], list[PluginProject], list[str]]:
    """What the image is built from: (the pinned dependency set, plug-in projects built from source, plug-ins
    pinned from an index). The pins cover the plug-ins' dependencies too."""
    projects, index_pins = image_plugins(with_dirs)
    roots = [*runtime_requirements(), *(r for p in projects for r in p.requires), *index_pins]
    return pinned_dependencies(roots), projects, index_pins


def content_hash(pins: list[str] | None = None, plugins: list[PluginProject] | None = None) -> str:
    """sha256 over the harness files, Dockerfile.eval, the pinned dependency set and the plug-in projects' files
    (first 16 hex digits). ``None``: what :func:`image_inputs` finds (no ``--with`` directories)."""
    if pins is None:
        pins, found, _ = image_inputs()
        plugins = found if plugins is None else plugins
    elif plugins is None:
        plugins = image_plugins()[0]
    h = hashlib.sha256()
    root = Path(harness.__file__).resolve().parent
    for path in harness_files():
        h.update(f"harness/{path.relative_to(root).as_posix()}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(DOCKERFILE.read_bytes() if DOCKERFILE.is_file() else b"")
    h.update("\n".join(pins).encode())
    hash_projects(h, plugins)
    return h.hexdigest()[:16]


def current_tag(with_dirs: list[str | Path] | None = None) -> str:
    """The tag of the image for this code, its dependencies and its plug-ins (``with_dirs`` added)."""
    pins, projects, _ = image_inputs(with_dirs)
    return f"{IMAGE_REPOSITORY}:{content_hash(pins, projects)}"


def ensure_wheelhouse(pins: list[str], cache: Path | None = None) -> Path:
    """A directory with a wheel for every pin and a requirements.txt, made once per dependency set."""
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    house = (cache or cache_root()) / "wheelhouse" / digest
    if (house / "requirements.txt").is_file():
        return house
    house.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=house.parent))
    (tmp / "requirements.txt").write_text("\n".join(pins) + "\n")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp), "-r",
           str(tmp / "requirements.txt")]
    log.info("making the wheelhouse: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageError(f"pip wheel failed (exit {proc.returncode}); the host needs PyPI (or a local index) "
                         f"once to make the wheelhouse:\n{(proc.stdout + proc.stderr)[-3000:]}")
    os.replace(tmp, house)
    return house


def resolve_base(client, requested: str | None, *, pull: bool = True) -> str:
    """The base image to build on: ``requested`` (must be local or pullable), else the official slim image
    (local, then pulled), else a local debootstrapped Debian."""
    import docker.errors

    from sandbox.rootfs import ensure_base_image

    for candidate in ([requested] if requested else [OFFICIAL_BASE]):
        try:
            client.images.get(candidate)
            return candidate
        except docker.errors.ImageNotFound:
            pass
        if pull:
            try:
                client.images.pull(candidate)
                return candidate
            except docker.errors.APIError as exc:
                log.info("cannot pull %s (%s)", candidate, str(exc).splitlines()[0][:200])
        if requested:
            raise ImageError(f"base image {requested!r} is not present and cannot be pulled; load it "
                             "(docker load) or leave --base-image out to build a local Debian base")
    return ensure_base_image(client, cache_root())


def image_exists(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(client=None, *, base_image: str | None = None, force: bool = False, pull: bool = True,
                with_dirs: list[str | Path] | None = None) -> str:
    """Build the evaluation image unless its content-hashed tag exists; returns the tag. ``with_dirs``: plug-in
    projects to add (besides ``$ALMA_IMAGE_WITH`` and installed plug-ins)."""
    import docker

    client = client or docker.from_env(timeout=600)
    pins, projects, index_pins = image_inputs(with_dirs)
    tag = f"{IMAGE_REPOSITORY}:{content_hash(pins, projects)}"
    if not force and image_exists(client, tag):
        log.info("image %s is up to date", tag)
        return tag
    house = ensure_wheelhouse(pins)
    base = resolve_base(client, base_image, pull=pull)
    with tempfile.TemporaryDirectory(prefix="alma-image-ctx-") as ctx:
        ctx_path = Path(ctx)
        shutil.copy(DOCKERFILE, ctx_path / "Dockerfile.eval")
        shutil.copytree(Path(harness.__file__).resolve().parent, ctx_path / "harness",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(house, ctx_path / "wheelhouse", copy_function=os.link)
        modules = build_wheels(projects, ctx_path / "plugins")
        modules = sorted({*modules, *(m for pin in index_pins for m in dist_modules(pin))})
        (ctx_path / "plugins" / "README.txt").write_text("plug-in wheels (sandbox.image_plugins)\n")
        log.info("building %s on %s (no network)%s", tag, base, f"; plug-ins: {', '.join(modules)}" if modules else "")
        lines: list[str] = []
        try:
            for chunk in client.api.build(path=ctx, dockerfile="Dockerfile.eval", tag=tag, rm=True,
                                          forcerm=True, pull=False, network_mode="none", decode=True,
                                          buildargs={"BASE_IMAGE": base, "PLUGIN_MODULES": " ".join(modules)},
                                          labels={"org.alma-engine.hash": tag.split(":")[1],
                                                  "org.alma-engine.base": base,
                                                  IMAGE_LABEL: json.dumps(modules)}):
                if "stream" in chunk:
                    lines.append(chunk["stream"].rstrip())
                    log.debug("%s", lines[-1])
                if "error" in chunk:
                    raise ImageError(f"building {tag} failed: {chunk['error']}\n" + "\n".join(lines[-30:]))
        except docker.errors.APIError as exc:
            raise ImageError(f"building {tag} failed: {exc}") from exc
    if not image_exists(client, tag):
        raise ImageError(f"the build finished but {tag} is missing:\n" + "\n".join(lines[-30:]))
    return tag


def prune_images(client, keep: str) -> list[str]:
    """Remove evaluation images other than ``keep`` and the untagged build stages they left; returns tags."""
    import docker.errors

    removed = []
    for image in client.images.list(name=IMAGE_REPOSITORY):
        for tag in image.tags:
            if tag != keep:
                try:
                    client.images.remove(tag)
                    removed.append(tag)
                except docker.errors.APIError as exc:  # in use by a running container
                    log.info("keeping %s: %s", tag, exc)
    client.images.prune(filters={"dangling": True})
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.image", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the evaluation image if its tag is missing")
    b.add_argument("--base-image", help=f"base image (default: {OFFICIAL_BASE} if present or pullable, "
                                        "else a local debootstrapped Debian bookworm)")
    b.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    b.add_argument("--no-pull", action="store_true", help="never try a registry for the base image")
    t = sub.add_parser("tag", help="print the current content-hashed tag")
    st = sub.add_parser("status", help="print the tag and whether it is built (exit 1 when not)")
    for p in (b, t, st):
        p.add_argument("--with", dest="with_dirs", action="append", default=[], metavar="PROJECT_DIR",
                       help="a plug-in project to install in the image (repeatable; also $ALMA_IMAGE_WITH, "
                            "colon-separated); installed plug-ins are included without it")
    sub.add_parser("prune", help="remove older evaluation images and dangling build stages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "tag":
        try:
            print(current_tag(args.with_dirs))
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    import docker

    try:
        client = docker.from_env(timeout=600)
        if args.cmd == "status":
            tag = current_tag(args.with_dirs)
            built = image_exists(client, tag)
            print(f"{tag} {'built' if built else 'missing'}")
            return 0 if built else 1
        if args.cmd == "prune":
            for tag in prune_images(client, current_tag()):
                print(f"removed {tag}")
            return 0
        print(build_image(client, base_image=args.base_image, force=args.force, pull=not args.no_pull,
                          with_dirs=args.with_dirs))
        return 0
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except docker.errors.DockerException as exc:
        print(f"error: Docker is not available ({exc}); start it with scripts/start_docker.sh", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
