"""An experiment's directory, ``experiments/<id>/``, and the records that make it resumable.

::

    experiment.json            the plan: every invocation's command line, every run (cell) with its evolve config
    seeds/                     the baselines the runs start from (copied once: the runs' seeds_dir)
    runs/<cell>/               one engine.api.evolve run directory per cell (archive.sqlite, heldout.json, ...)
    finished/<cell>.json       written (atomically) once the run ended: what the claims read from it
    transfer/<cell>/<design>-<agent>.json   one claim-3 evaluation each, written atomically when it finished
    claims.json, claims.html   the summary (rewritten from the records at the end of every invocation)

A record is written only after what it describes is complete, and replaces its file in one rename, so after a
``kill -9`` a file is either absent (redo it) or whole (skip it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.files import write_json_atomic

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class ExperimentError(ValueError):
    """Bad input or an experiment directory that cannot be used (the message says what to do)."""


class Experiment:
    """Paths and records of one experiment directory."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def plan_path(self) -> Path:
        return self.root / "experiment.json"

    @property
    def seeds_dir(self) -> Path:
        return self.root / "seeds"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, key: str) -> Path:
        return self.runs_dir / key

    def exists(self) -> bool:
        return self.plan_path.is_file()

    # ------------------------------------------------------------------ the plan
    def read_plan(self) -> dict:
        try:
            return json.loads(self.plan_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ExperimentError(f"{self.root} has no readable experiment.json ({exc.strerror}): it is not an "
                                  "experiment directory") from exc
        except ValueError as exc:
            raise ExperimentError(f"{self.plan_path} is not valid JSON: {exc}") from exc

    def write_plan(self, plan: dict) -> None:
        write_json_atomic(self.plan_path, plan)

    # ------------------------------------------------------------------ finished runs
    def finished_path(self, key: str) -> Path:
        return self.root / "finished" / f"{key}.json"

    def finished(self, key: str) -> dict | None:
        """The record of a finished run, or None (not finished, or never started)."""
        return _read(self.finished_path(key))

    def write_finished(self, key: str, record: dict) -> None:
        write_json_atomic(self.finished_path(key), record)

    # ------------------------------------------------------------------ claim-3 evaluations
    def transfer_path(self, key: str, design_id: str, agent: str) -> Path:
        return self.root / "transfer" / key / f"{design_id}-{agent}.json"

    def transfer(self, key: str, design_id: str, agent: str) -> dict | None:
        return _read(self.transfer_path(key, design_id, agent))

    def read_record(self, path: Path) -> dict | None:
        return _read(path)

    def write_transfer(self, key: str, design_id: str, agent: str, record: dict) -> None:
        write_json_atomic(self.transfer_path(key, design_id, agent), record)

    # ------------------------------------------------------------------ outputs
    @property
    def claims_json(self) -> Path:
        return self.root / "claims.json"

    @property
    def claims_html(self) -> Path:
        return self.root / "claims.html"


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_id(name: str) -> str:
    if not ID_RE.match(name or ""):
        raise ExperimentError(f"bad experiment id {name!r}: use letters, digits, '.', '_' and '-' (at most 81 "
                              "characters, starting with a letter or digit)")
    return name
