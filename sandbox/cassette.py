"""Recorded model responses, keyed by a content hash of the request, so a job can be replayed offline.

Key: sha256 of the canonical JSON of ``{"endpoint", "body"}`` (sorted keys, no whitespace). Identical
requests within one job are told apart by their occurrence number (0, 1, ...), so sampled replies replay in
the order they were first given. One file per entry: ``<dir>/<key[:2]>/<key>-<n>.json`` holding the
endpoint, request body, response body and the time it was recorded; written atomically. Every stored entry is
also appended to ``<dir>/index.jsonl`` (its path and the sha256 of its bytes), so a replay can tell an entry that
was edited or added after recording from a genuine one (see ``engine.replay``).

Modes: ``off`` (forward, keep nothing), ``record`` (forward, keep everything), ``replay`` (cassette only: a
miss is an error inside the job, never a call upstream), ``auto`` (serve hits, forward and record misses).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

CassetteMode = Literal["off", "record", "replay", "auto"]
MODES: tuple[str, ...] = ("off", "record", "replay", "auto")
INDEX_NAME = "index.jsonl"


def request_key(endpoint: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Cassette:
    """A directory of recorded responses (see the module docstring). Thread-safe for distinct entries."""

    def __init__(self, root: str | Path, mode: CassetteMode = "auto"):
        if mode not in MODES:
            raise ValueError(f"cassette mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.root = Path(root)
        self.mode = mode
        if mode != "off":
            self.root.mkdir(parents=True, exist_ok=True)

    @property
    def reads(self) -> bool:
        return self.mode in ("replay", "auto")

    @property
    def writes(self) -> bool:
        return self.mode in ("record", "auto")

    def _path(self, key: str, occurrence: int) -> Path:
        return self.root / key[:2] / f"{key}-{occurrence}.json"

    def lookup(self, key: str, occurrence: int) -> dict[str, Any] | None:
        """The recorded response body, or None."""
        try:
            return json.loads(self._path(key, occurrence).read_text(encoding="utf-8"))["response"]
        except (OSError, ValueError, KeyError):
            return None

    def store(self, key: str, occurrence: int, endpoint: str, body: dict[str, Any],
              response: dict[str, Any]) -> Path:
        path = self._path(key, occurrence)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"endpoint": endpoint, "request": body, "response": response, "recorded_at": time.time()}
        data = json.dumps(entry, ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entry-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        line = json.dumps({"entry": path.relative_to(self.root).as_posix(),
                           "sha256": hashlib.sha256(data).hexdigest()}) + "\n"
        index = os.open(self.root / INDEX_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(index, line.encode("utf-8"))  # one short O_APPEND write: lines never interleave
        finally:
            os.close(index)
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0
