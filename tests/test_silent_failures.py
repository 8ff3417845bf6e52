"""Silent failures are loud: a task model that answers nothing (or nothing that parses) stops the run with a clear message instead of
being scored (engine.search.loop + sandbox.model_health), and what was archived before stays."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from archive import Archive
from tests.conftest import REPO

CONFIG = """
steps = 2
seed = 0
meta_share = 0.0
smoke_test = false
eval_cache = false
runs_dir = "{runs}"
seeds_dir = "{seeds}"

[eval]
benchmark = "babaisai"
agent = "llm"
n_train = 1
n_test = 1

[sandbox]
backend = "none"
timeout_s = 300

[task]
base_url = "{url}"
model = "test-model"
"""


@pytest.mark.parametrize(("content", "message"), [
    ("", "replies were empty"),
    ("Let me think about the puzzle first, step by step.", "replies named no admissible action"),
], ids=["empty", "unparsed"])
def test_a_model_whose_replies_are_useless_stops_the_run(tmp_path, openai_server, content, message):
    """Empty replies (counted by the broker) and replies that name no action (counted by the agent, summed by
    the host from the episode records) both stop the run after the first evaluation that shows them."""
    openai_server.script_chat(lambda request: {"content": content, "finish_reason": "stop"})
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(REPO / "seeds" / "no_memory.py", seeds / "no_memory.py")
    cfg = tmp_path / "evolve.toml"
    cfg.write_text(CONFIG.format(runs=tmp_path / "runs", seeds=seeds, url=openai_server.base_url))
    proc = subprocess.run([sys.executable, "-m", "engine.evolve", "--config", str(cfg), "--name", "silent"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert message in proc.stderr and "test-model" in proc.stderr, proc.stderr[-2000:]
    assert "--resume" in proc.stderr
    with Archive.open(tmp_path / "runs" / "silent", lock=False) as archive:
        done = [e for e in archive.evaluations() if e.status == "done"]
        assert len(done) == 1  # the evaluation that showed it is archived, nothing after it ran
