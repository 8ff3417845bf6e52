"""The genome layer's static side: normalisation + content hash (engine.code.genome) and validation (engine.code.validate).

Every seed must pass the validator; every file in tests/bad_designs/ must be rejected with the rule named in its
first line (``# expect: <rule>``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.code.genome import Genome, GenomeError, extract_code, normalise_source
from engine.code.validate import Finding, load_policy, policy_text, validate
from harness.design import CONTRACT, contract_text
from harness.loader import load_design_source, source_hash

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted(p for p in (ROOT / "seeds").glob("*.py") if p.name != "__init__.py")
BAD = sorted((Path(__file__).parent / "bad_designs").glob("*.py"))

MINIMAL = '''from harness.design import MemoryDesign


class Tiny(MemoryDesign):
    async def retrieve(self, task):
        return {"text": "remember"}

    async def update(self, episode):
        return None
'''


def expected_rule(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# expect: ([a-z0-9-]+)", first)
    assert match, f"{path.name}: the first line must be '# expect: <rule>'"
    return match.group(1)


# -------------------------------------------------------------------------------- seeds and the bad corpus


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_every_seed_passes(path):
    report = validate(path.read_text(encoding="utf-8"))
    assert report.ok, report.text()
    assert not report.errors


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_design_is_rejected_with_its_rule(path):
    rule = expected_rule(path)
    report = validate(path.read_text(encoding="utf-8"))
    assert not report.ok
    assert rule in {f.rule for f in report.errors}, report.text()


def test_bad_corpus_covers_the_required_cases():
    rules = {p.stem: expected_rule(p) for p in BAD}
    assert len(rules) >= 15
    required = {
        "eval_call": "forbidden-call", "exec_call": "forbidden-call", "dunder_import_call": "forbidden-call",
        "os_system": "forbidden-call", "subprocess_import": "forbidden-import", "socket_import": "forbidden-import",
        "ctypes_import": "forbidden-import", "absolute_open": "forbidden-path",
        "dunder_reach_through": "dunder-access", "rebind_open": "builtin-rebind",
        "two_design_classes": "multiple-design-classes", "missing_update": "missing-method",
        "sync_retrieve": "method-not-async", "wrong_update_signature": "wrong-signature",
        "undefined_name": "undefined-name", "syntax_error": "syntax-error", "too_large": "size-limit",
        "requests_import": "disallowed-import",
    }
    assert {name: rules.get(name) for name in required} == required


def test_findings_point_at_the_offending_line():
    report = validate((Path(__file__).parent / "bad_designs" / "eval_call.py").read_text(encoding="utf-8"))
    (finding,) = [f for f in report.findings if f.rule == "forbidden-call"]
    assert (finding.line, finding.col) == (16, 29)  # 1-based: the "e" of eval
    assert re.match(r"^line 16: \[forbidden-call\] eval\(\) is not allowed: ", report.text())
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["findings"][0] == {"rule": "forbidden-call", "line": 16, "col": 29, "severity": "error",
                                   "message": finding.message}


# -------------------------------------------------------------------------------- what is allowed


def test_allowed_constructs_pass():
    source = '''"""Uses what the policy allows, close to the edges."""
from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np

from harness.design import MemoryDesign, Toolkit
from harness.types import Episode, Task


class Notes(MemoryDesign):
    def __init__(self, toolkit: Toolkit, limit: int = 5):
        super().__init__(toolkit)
        self.limit = limit
        self.counts: Counter = Counter()

    async def retrieve(self, task: Task) -> dict:
        path = self.toolkit.scratch_dir / "notes.json"
        notes = json.loads(path.read_text()) if path.exists() else []
        label = type(self).__name__
        size = getattr(task, "goal", "")
        return {"text": f"{label}: {notes[-self.limit:]} {math.sqrt(len(size)):.1f} {np.zeros(2).sum()}"}

    async def update(self, episode: Episode) -> None:
        with open(self.toolkit.scratch_dir / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(episode.task.goal + "\\n")
        self.counts[episode.task.benchmark] += 1


if __name__ == "__main__":
    print(Notes.__doc__)
'''
    report = validate(source)
    assert report.ok and not report.findings, report.text()
    assert load_design_source(source, "allowed").__name__ == "Notes"


@pytest.mark.parametrize("snippet, rule", [
    ("f = getattr", "dynamic-attribute"),
    ("x = '{0.__class__}'.format(self)", "dunder-access"),
    ("x = self.__dict__", "dunder-access"),
    ("x = [1 for open in range(3)]", "builtin-rebind"),
    ("open(file='/etc/passwd')", "forbidden-path"),
    ("x = vars", "forbidden-call"),
])
def test_more_escapes_are_caught(snippet, rule):
    source = MINIMAL.replace('return {"text": "remember"}', f"{snippet}\n        return {{}}")
    report = validate(source)
    assert not report.ok and rule in report.rules, report.text()


def test_noqa_comments_cannot_hide_ruff_findings():
    source = "# ruff: noqa\n" + MINIMAL.replace('"remember"}', "undefined_thing}  # noqa: F821")
    report = validate(source)
    assert "undefined-name" in report.rules


def test_size_limits_come_from_the_policy():
    policy = load_policy()
    long = MINIMAL + "\n".join(f"X{i} = {i}" for i in range(policy.limits_max_lines + 1)) + "\n"
    assert "size-limit" in validate(long).rules
    big = MINIMAL + f"TEXT = {'x' * policy.limits_max_bytes!r}\n"
    assert "size-limit" in validate(big).rules


def test_contract_is_read_from_CONTRACT(monkeypatch):
    monkeypatch.setitem(CONTRACT["methods"], "forget", {"async": True, "params": ["self", "item"],
                                                        "returns": "None"})
    report = validate(MINIMAL)
    assert [f.rule for f in report.errors] == ["missing-method"]
    assert "async def forget(self, item)" in report.errors[0].message


def test_missing_super_init_is_a_warning():
    source = MINIMAL.replace("class Tiny(MemoryDesign):\n",
                             "class Tiny(MemoryDesign):\n    def __init__(self, toolkit):\n"
                             "        self.toolkit = toolkit\n\n")
    report = validate(source)
    assert report.ok and [f.rule for f in report.findings] == ["missing-super-init"]
    assert "(warning)" in report.text()


def test_policy_text_renders_the_policy():
    text = policy_text()
    policy = load_policy()
    for name in (*policy.imports_allowed, *policy.calls_forbidden_builtins, *policy.builtins_protected):
        assert name in text
    prompt = contract_text() + "\n\n" + text
    assert CONTRACT["base_class"] in prompt and "numpy" in prompt


def test_finding_text_format():
    assert Finding("forbidden-call", 12, 5, "eval() is not allowed: x").text() == (
        "line 12: [forbidden-call] eval() is not allowed: x")
    assert Finding("size-limit", 0, 0, "too big", "warning").text() == "module: [size-limit] (warning) too big"


# -------------------------------------------------------------------------------- genome: normalisation + hash


def test_fenced_and_unfenced_sources_hash_equal():
    fenced = f"Here is my design.\n\n```python\n{MINIMAL}```\n\nIt remembers things.\n"
    assert Genome.from_text(fenced).id == Genome.from_text(MINIMAL).id
    shell = f"```bash\nls -la\n```\n\n```py\n{MINIMAL}```\n"
    assert Genome.from_text(shell).source == normalise_source(MINIMAL)
    untagged = f"```\nx = 1\n```\n\n```\n{MINIMAL}```\n"
    assert extract_code(untagged).strip() == MINIMAL.strip()
    unclosed = "Here is the change:\n```python\n" + MINIMAL  # the model never closed its fence
    assert extract_code(unclosed).strip() == MINIMAL.strip()


def test_layout_differences_hash_equal():
    messy = "\n\n" + MINIMAL.replace("\n", "   \r\n").replace("    ", "\t") + "\n\n\n"
    genome = Genome.from_text(messy)
    assert genome.id == Genome.from_text(MINIMAL).id
    assert genome.id == source_hash(genome.source)
    assert genome.name == "Tiny"


def test_string_contents_are_not_normalised():
    one = 'PROMPT = """keep   \n\tthis"""\n'
    assert normalise_source(one) == one
    assert Genome.from_text(one).id != Genome.from_text(one.replace("keep   ", "keep")).id


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_normalisation_is_idempotent_on_seeds(path):
    genome = Genome.from_file(path)
    assert normalise_source(genome.source) == genome.source
    assert genome.operator == "seed" and genome.id == source_hash(genome.source)


def test_genome_rejects_an_id_that_is_not_its_hash():
    genome = Genome.from_text(MINIMAL)
    with pytest.raises(GenomeError, match="not the hash"):
        Genome(genome.source, "0" * 16, "Tiny")
