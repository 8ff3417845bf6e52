"""Shared fixtures: an isolated cache directory per test session, and the local OpenAI-compatible server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Games and joined models are cached across the session; ALMA_CACHE_DIR from the caller wins (CI reuse)."""
    if not os.environ.get("ALMA_CACHE_DIR"):
        os.environ["ALMA_CACHE_DIR"] = str(tmp_path_factory.mktemp("alma-cache"))
    # tests count evaluations: none is answered from an earlier one unless a test asks for the cache
    os.environ["ALMA_EVAL_CACHE"] = "off"
    yield


@pytest.fixture
def openai_server():
    with OpenAITestServer() as server:
        yield server
