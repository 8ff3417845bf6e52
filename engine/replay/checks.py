"""What a replay checks before it runs anything: that the archived design, its evaluation's ``job.json`` and
``result.json`` and the run's cassette are what the run recorded.

* the design's source still hashes to its id, and ``job.json`` carries exactly that source;
* ``job.json``, ``result.json``, the archive's evaluation row and the run's ``config.toml`` agree on the
  benchmark, split, mode, seed and protocol sizes (an edited ``job.json`` or ``result.json`` disagrees);
* every cassette entry's request still hashes to the key it is filed under, and its bytes still have the
  sha256 the broker wrote to ``cassette/index.jsonl`` when it recorded them (an edited, renamed or added
  entry is caught). Entries that pass are copied to a private snapshot the replay is served from, so nothing
  can change them while the job runs.

The index is a tripwire against accidental or naive edits, not a signature: someone who rewrites an entry
*and* its index line is not detected (use file-system permissions or a signed copy of the run for that).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from archive import Design, Evaluation
from engine.config import EvolveConfig
from engine.search.evaluator import HELDOUT
from harness.jobspec import EvalResult, JobSpec
from harness.loader import source_hash
from sandbox.cassette import INDEX_NAME, request_key


def job_problems(design: Design, evaluation: Evaluation, job: JobSpec, result: EvalResult | None,
                 config: EvolveConfig | None) -> tuple[list[str], list[str]]:
    """(problems, warnings) about the design, its job spec and its archived result. Problems block a replay."""
    problems: list[str] = []
    warnings: list[str] = []
    now = source_hash(design.source)
    if now != design.id:
        problems.append(f"the archived source of design {design.id} no longer hashes to its id (it hashes to "
                        f"{now}): the archive was edited after the design was recorded")
    if job.design.source != design.source:
        problems.append(f"job.json carries a different design source (hash {source_hash(job.design.source)}) "
                        f"than the archived design {design.id}: job.json was edited")
    if not job.job_id.startswith(design.id):
        problems.append(f"job.json is for job {job.job_id!r}, not for design {design.id}")
    p = job.protocol
    heldout = evaluation.split == HELDOUT  # the final table's fresh suite: its own split and seed (config)
    split = (config.eval.heldout_split if config else p.split) if heldout else evaluation.split
    for what, recorded, claimed in (("benchmark", evaluation.benchmark, job.benchmark),
                                    ("split", split, p.split), ("mode", evaluation.mode, p.mode)):
        if recorded != claimed:
            problems.append(f"job.json says {what} {claimed!r} but the archive recorded this evaluation on "
                            f"{recorded!r}: job.json was edited")
    if result is not None:
        for what, got, want in (("job id", result.job_id, job.job_id), ("design hash", result.design_hash, design.id),
                                ("benchmark", result.benchmark, job.benchmark), ("split", result.split, p.split),
                                ("mode", result.mode, p.mode), ("seed", result.seed, p.seed),
                                ("repeats", result.repeats, p.repeats), ("agent", result.agent, job.agent.kind)):
            if got != want:
                problems.append(f"result.json has {what} {got!r} but job.json has {want!r}: one of them was edited")
        if evaluation.status == "done" and evaluation.score is not None and evaluation.score != result.score:
            problems.append(f"result.json has score {result.score!r} but the archive recorded {evaluation.score!r} "
                            "for this evaluation: result.json was edited")
    if config is not None:
        e = config.eval
        for what, want, got in (("n_train", e.n_train, p.n_train), ("n_test", e.n_test, p.n_test),
                                ("repeats", e.repeats, p.repeats),
                                ("seed", e.heldout_seed if heldout else e.seed, p.seed),
                                ("design timeout", e.design_timeout_s, p.design_call_timeout_s)):
            if want != got:
                problems.append(f"job.json has {what} {got!r} but the run's config.toml has {want!r}: job.json "
                                "was edited")
        if job.agent.kind != e.agent:
            warnings.append(f"job.json's agent {job.agent.kind!r} differs from config.toml's {e.agent!r} (a resume "
                            "with --agent?)")
        if job.benchmark != e.benchmark:
            warnings.append(f"evaluated on {job.benchmark!r}; config.toml now says {e.benchmark!r}")
    return problems, warnings


def _index(root: Path) -> tuple[dict[str, str] | None, list[str]]:
    path = root / INDEX_NAME
    if not path.is_file():
        return None, []
    index: dict[str, str] = {}
    bad = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        try:
            item = json.loads(line)
            index[str(item["entry"])] = str(item["sha256"])
        except (ValueError, KeyError, TypeError):
            bad.append(f"cassette index line {n} is not a valid index record: the index was edited")
    return index, bad


def verify_cassette(root: Path, snapshot: Path) -> dict[str, Any]:
    """Check every entry of the cassette at ``root`` and copy the good ones to ``snapshot``.

    Returns ``{"entries", "verified", "indexed", "problems", "warnings"}``; any problem means the cassette was
    tampered with (the replay refuses to run).
    """
    problems: list[str] = []
    warnings: list[str] = []
    files = sorted(root.glob("*/*.json")) if root.is_dir() else []
    blobs: dict[str, bytes] = {}
    for path in files:
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        key = path.name.rsplit("-", 1)[0]
        try:
            entry = json.loads(data)
            ok = (request_key(entry["endpoint"], entry["request"]) == key and path.parent.name == key[:2]
                  and isinstance(entry["response"], dict))
        except (ValueError, KeyError, TypeError):
            problems.append(f"cassette entry {rel} is not a valid entry (not JSON or missing fields)")
            continue
        if not ok:
            problems.append(f"cassette entry {rel}: its request does not hash to the key it is filed under "
                            "(the request was edited or the file renamed)")
            continue
        blobs[rel] = data
    index, bad = _index(root)  # read after the entries: the broker indexes an entry only after writing it
    problems += bad
    if index is None:
        if files:
            warnings.append(f"the cassette has no {INDEX_NAME} (recorded before integrity indexing): request keys "
                            "were checked, recorded responses cannot be")
    else:
        for rel, data in list(blobs.items()):
            digest = hashlib.sha256(data).hexdigest()
            if rel not in index:
                problems.append(f"cassette entry {rel} is not in {INDEX_NAME}: it was added after recording")
                del blobs[rel]
            elif index[rel] != digest:
                problems.append(f"cassette entry {rel} changed since it was recorded (sha256 {digest[:16]}..., "
                                f"recorded {index[rel][:16]}...): its response was edited")
                del blobs[rel]
        missing = [rel for rel in index if not (root / rel).is_file()]
        if missing:
            warnings.append(f"{len(missing)} indexed cassette entr{'y is' if len(missing) == 1 else 'ies are'} "
                            f"missing (e.g. {missing[0]}); a request that needs one fails as a cassette miss")
    for rel, data in blobs.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return {"entries": len(files), "verified": len(blobs), "indexed": index is not None, "problems": problems,
            "warnings": warnings}
