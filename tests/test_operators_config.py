"""``operators`` in the config: structural steps use only the named operators; an unknown name is refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from archive import Archive
from engine.config import ConfigError, load_config
from tests.conftest import REPO

CONFIG = """
steps = 3
seed = 1
meta_share = 0.0
smoke_test = false
budget_minutes = 600
runs_dir = "{runs}"
operators = ["mutate:constants"]

[eval]
benchmark = "babaisai"
n_train = 2
n_test = 2

[sandbox]
backend = "none"

[task]
base_url = "{task_url}"
model = "test-model"
"""


def test_an_unknown_or_empty_operator_list_is_refused():
    with pytest.raises(ConfigError, match="unknown or no operators"):
        load_config(None, {"operators": ["mutate:nothing"]})
    with pytest.raises(ConfigError, match="unknown or no operators"):
        load_config(None, {"operators": []})


def test_steps_use_only_the_configured_operators(tmp_path, openai_server):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", task_url=openai_server.base_url))
    proc = subprocess.run([sys.executable, "-m", "engine.evolve", "--config", str(cfg), "--name", "r"], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Archive.open(tmp_path / "runs" / "r", lock=False) as archive:
        children = [d for d in archive.designs() if d.proposer != "seed"]
    assert children and {d.proposer for d in children} == {"mutate:constants"}
