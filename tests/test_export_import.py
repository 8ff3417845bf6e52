"""engine.export (a design out of a run, as a module that loads with harness.loader) and engine.alma.importer
(official-ALMA designs in, converted, validated, loaded and played by the real harness; the ones that cannot be
converted are explained)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from archive import Archive
from engine import export
from engine.alma import importer as import_alma
from engine.code.genome import Genome
from harness.design import contract_text
from harness.loader import load_design_file, source_hash
from tests.conftest import REPO
from tests.openai_server import OpenAITestServer

ALMA = Path(__file__).parent / "alma_designs"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run archive with an evaluated, audited seed and a hostile design (recorded through the Archive API)."""
    run = tmp_path / "run"
    with Archive.open(run, lock=True) as archive:
        for name, audit in (("trajectory_retrieval", "clean"), ("no_memory", "hostile")):
            g = Genome.from_file(REPO / "seeds" / f"{name}.py")
            archive.add_design(g.id, g.source, proposer="seed", name=name)
            archive.set_status(g.id, "evaluating")
            ev = archive.begin_evaluation(g.id, "babaisai", "id")
            archive.finish_evaluation(ev.id, outcome="ok", score=0.5, stderr=0.1, successes={"t": 0.5})
            archive.set_status(g.id, "evaluated")
            archive.set_audit(g.id, audit, "runtime network: socket.connect" if audit == "hostile" else None)
    return run


def ids(run: Path) -> dict[str, str]:
    with Archive.open(run, lock=False) as archive:
        return {d.name: d.id for d in archive.designs()}


def test_export_writes_a_module_that_loads_and_a_readme(run_dir, tmp_path):
    design = ids(run_dir)["trajectory_retrieval"]
    out = tmp_path / "export"
    assert export.main([str(run_dir), design[:6], "--out", str(out)]) == 0
    module = out / "trajectory_retrieval.py"
    cls = load_design_file(module)
    assert cls.__name__ == "TrajectoryRetrieval"
    assert source_hash(module.read_text()) == design  # byte for byte the archived design
    readme = (out / "README.md").read_text()
    assert "| babaisai | id | 0.500 ± 0.100 |" in readme and "Verdict: **clean**" in readme
    assert contract_text() in readme and "python -m engine.replay" in readme
    assert "imports: __future__, harness.design, harness.types, json, numpy, re, sqlite3" in readme


def test_export_refuses_hostile_and_tampered_designs(run_dir, tmp_path):
    hostile = ids(run_dir)["no_memory"]
    assert export.main([str(run_dir), hostile, "--out", str(tmp_path / "h")]) == export.EXIT_HOSTILE
    assert not (tmp_path / "h").exists()
    assert export.main([str(run_dir), hostile, "--out", str(tmp_path / "h"), "--force"]) == 0
    con = sqlite3.connect(run_dir / "archive.sqlite")
    con.execute("UPDATE designs SET source = source || '# x\n' WHERE name = 'trajectory_retrieval'")
    con.commit()
    con.close()
    tampered = ids(run_dir)["trajectory_retrieval"]
    assert export.main([str(run_dir), tampered, "--out", str(tmp_path / "t")]) == export.EXIT_INTEGRITY
    assert export.main([str(tmp_path / "nowhere"), "abc"]) == export.EXIT_INPUT


@pytest.mark.parametrize("name, memo", [("trajectory_notes", "TrajectoryNotesMemo"),
                                        ("insight_bank", "InsightBankMemo")])
def test_import_alma_converts_validates_and_loads(tmp_path, name, memo):
    out = tmp_path / f"{name}_ours.py"
    assert import_alma.main([str(ALMA / f"{name}.py"), "--out", str(out)]) == 0
    conv = import_alma.convert((ALMA / f"{name}.py").read_text(), f"{name}.py")
    assert conv.ok and conv.memo_class == memo and conv.validation.ok
    cls = load_design_file(out)
    assert cls.__name__ == f"{memo}Design"
    assert out.read_text() == conv.source
    if name == "insight_bank":
        assert "Recorder = Basic_Recorder" in conv.source  # the aliased import still names the recorder


def test_converted_design_plays_in_the_harness_and_carries_memory_to_deployment(tmp_path):
    from harness.jobspec import AgentSpec, DesignSpec, JobSpec, ModelSpec, ProtocolSpec
    from harness.models.factory import ModelSettings, open_models
    from harness.protocol import ProtocolRun

    conv = import_alma.convert((ALMA / "insight_bank.py").read_text(), "insight_bank.py")
    job = JobSpec(job_id="alma-import", design=DesignSpec(name="insight_bank", source=conv.source),
                  benchmark="babaisai", agent=AgentSpec(kind="heuristic"),
                  models=ModelSpec(chat_model="test-model", embedder="hashing"),
                  protocol=ProtocolSpec(n_train=2, n_test=1, repeats=1, seed=0))
    with OpenAITestServer() as server:
        settings = ModelSettings(chat_base_url=server.base_url, chat_model="test-model", embedder="hashing",
                                 max_attempts=1)
        with open_models(settings) as models:
            result = ProtocolRun(job, models).run_sync()
        asked = server.chat_requests()
    assert result.design_errors == 0, [e.error for e in result.episodes]
    assert len(asked) == 2 and "JSON schema" in asked[0]["messages"][-1]["content"]  # one insight per train task
    deploy = [e for e in result.episodes if e.phase == "deploy"]
    # the deployment instance is new: it rebuilt the memory from the scratch journal, without asking the LLM again
    text = deploy[0].retrieved["text"]
    assert "look around, then take the needed object" in text and json.loads(text)["known"] == 2


def test_import_alma_explains_what_it_cannot_convert(tmp_path, capsys):
    out = tmp_path / "graph.py"
    assert import_alma.main([str(ALMA / "graph_chroma.py"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    conv = import_alma.convert((ALMA / "graph_chroma.py").read_text(), "graph_chroma.py")
    assert not conv.ok and not conv.validation.ok
    found = {(p.kind, p.line) for p in conv.errors}
    src = (ALMA / "graph_chroma.py").read_text().splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(src, 1) if text in line)

    for kind, anchor in [("external-library", "import networkx"), ("external-library", "langchain_chroma"),
                         ("forbidden-import", "import os"), ("recorder-api", "recorder.user_id"),
                         ("recorder-init", "long_term_context"), ("sync-async", "self.rooms.update("),
                         ("nested-event-loop", "asyncio.run("), ("memo-structure", "def __init__(self, persist")]:
        assert (kind, line_of(anchor)) in found, (kind, anchor, sorted(found))
    assert "Chroma vector database" in err and "without await" in err and "recorder.user_id" in err
    not_alma = tmp_path / "plain.py"
    not_alma.write_text("class X:\n    pass\n")
    assert import_alma.main([str(not_alma)]) == 2
    assert not (tmp_path / "plain_converted.py").exists()
