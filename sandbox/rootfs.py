"""A local base image for air-gapped hosts: debootstrap a minimal Debian with python3, then ``docker import``.

Used when the official ``python:3.11-slim`` image is neither present nor pullable. The rootfs tarball is
cached on disk by suite + package list (``<cache>/base/<tag>.tar``), so a wiped Docker store re-imports it in
seconds instead of re-running debootstrap (about 2 minutes). Debian bookworm's python3 is 3.11, so the cp311
wheels of the host's wheelhouse install in it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox.errors import ImageError

log = logging.getLogger(__name__)

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_REPOSITORY = "alma-base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Trimmed from the rootfs before it is imported: package caches, docs, manuals, translations.
_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
         "usr/share/locale")


def base_tag(suite: str = BASE_SUITE, packages: tuple[str, ...] = BASE_PACKAGES) -> str:
    digest = hashlib.sha256(f"{suite}\n{','.join(sorted(packages))}".encode()).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{suite}-{digest}"


def _image_exists(client, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def debootstrap_tarball(dest: Path, suite: str, packages: tuple[str, ...], mirror: str) -> Path:
    """Build a minbase rootfs with ``packages`` and write it as a tar file at ``dest`` (atomically)."""
    if not shutil.which("debootstrap"):
        raise ImageError("no base image and no debootstrap to make one: apt-get install debootstrap, or give "
                         "--base-image an image that is present locally (docker images)")
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to make the base image; run `python -m sandbox.image build` "
                         "as root once, or give --base-image an image that is present locally")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="alma-rootfs-", dir=dest.parent) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(root), mirror]
        log.info("debootstrap: %s", " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap {suite} from {mirror} failed (exit {proc.returncode}): "
                             f"{(proc.stdout + proc.stderr)[-2000:]}\nCheck that the Debian mirror is reachable "
                             "(ALMA_DEBIAN_MIRROR) or give --base-image an image present locally.")
        for rel in _TRIM:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        part = dest.with_suffix(".part")
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(part), "."], check=True)
        os.replace(part, dest)
    return dest


def ensure_base_image(client, cache_dir: Path, *, suite: str = BASE_SUITE,
                      packages: tuple[str, ...] = BASE_PACKAGES, mirror: str | None = None) -> str:
    """The tag of a local Debian+python3 base image, importing (and if needed debootstrapping) it first."""
    tag = base_tag(suite, packages)
    if _image_exists(client, tag):
        return tag
    tarball = cache_dir / "base" / f"{tag.replace(':', '_')}.tar"
    if not tarball.is_file():
        debootstrap_tarball(tarball, suite, packages, mirror or os.environ.get("ALMA_DEBIAN_MIRROR",
                                                                               DEFAULT_MIRROR))
    repository, _, version = tag.partition(":")
    log.info("importing %s as %s", tarball, tag)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=version)
    if not _image_exists(client, tag):
        raise ImageError(f"docker import of {tarball} did not produce {tag}")
    return tag
