"""The official ALFWorld games, when ``$ALFWORLD_DATA`` holds them (``alfworld-download`` lays them out).

Layout: ``$ALFWORLD_DATA/json_2.1.1/{train,valid_seen,valid_unseen}/<task>-<obj>-<mrecep>-<recep>-<scene>/
<trial>/game.tw-pddl`` (+ ``traj_data.json``). As ALFWorld's own text environment does, games under a
``movable`` or ``Sliced`` task folder are skipped, and so are game files not marked ``solvable``. Splits map to
ours as ``train`` -> train, ``valid_seen`` -> id (in-distribution), ``valid_unseen`` -> ood (unseen rooms).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from harness.envs.alfworld_pddl import alfworld_data_dir
from harness.envs.alfworld_scenes import TASK_TYPES, derive_seed
from harness.errors import BenchmarkError

OFFICIAL_SPLITS = {"train": "train", "id": "valid_seen", "ood": "valid_unseen"}
GAME_FILE = "game.tw-pddl"


def official_root() -> Path | None:
    """``$ALFWORLD_DATA/json_2.1.1`` if it holds the three official splits with game files, else None."""
    root = alfworld_data_dir() / "json_2.1.1"
    for folder in OFFICIAL_SPLITS.values():
        split = root / folder
        if not split.is_dir() or next(split.glob(f"*/*/{GAME_FILE}"), None) is None:
            return None
    return root


def _usable(game_file: Path) -> bool:
    task_dir = game_file.parent.parent.name
    if "movable" in task_dir or "Sliced" in task_dir or task_dir.split("-", 1)[0] not in TASK_TYPES:
        return False
    try:
        return bool(json.loads(game_file.read_text()).get("solvable"))
    except (OSError, ValueError):
        return False


def floor_plan_of(game_file: Path) -> str | None:
    """The game's floor plan, from ``traj_data.json`` (``scene.floor_plan``) or the task folder's suffix."""
    traj = game_file.parent / "traj_data.json"
    try:
        plan = json.loads(traj.read_text()).get("scene", {}).get("floor_plan")
        if plan:
            return str(plan)
    except (OSError, ValueError, AttributeError):
        pass
    match = re.search(r"-(\d+)$", game_file.parent.parent.name)
    return f"FloorPlan{match.group(1)}" if match else None


def official_tasks(root: Path, split: str, seed: int, count: int) -> list[tuple[str, str | None, Path]]:
    """``count`` usable games of ``split`` (ours: train / id / ood) as (task id, floor plan, game file).

    The order is deterministic for ``seed``: the sorted game paths, shuffled by a seed-derived RNG; only the
    games actually taken are read. Raises BenchmarkError if the split has fewer usable games."""
    folder = OFFICIAL_SPLITS[split]
    files = sorted((root / folder).glob(f"*/*/{GAME_FILE}"))
    random.Random(derive_seed("alfworld-official", seed, split)).shuffle(files)
    chosen: list[tuple[str, str | None, Path]] = []
    for game_file in files:
        if len(chosen) == count:
            break
        if _usable(game_file):
            rel = game_file.parent.relative_to(root)
            chosen.append((f"alfworld/{split}/{rel.as_posix()}", floor_plan_of(game_file), game_file))
    if len(chosen) < count:
        raise BenchmarkError(f"alfworld: {root / folder} has only {len(chosen)} usable games, {count} requested; "
                             "ask for fewer tasks, or unset ALFWORLD_DATA to use generated games")
    return chosen
